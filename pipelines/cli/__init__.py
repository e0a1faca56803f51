"""The command line (`german-rag`): argument parsing and the exit-code table in main.py, one function per
command in commands.py. `main` is the console script's entry point."""

from pipelines.cli.main import main

__all__ = ["main"]
