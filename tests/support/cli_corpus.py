"""A folder of German texts ingested through the CLI (`german-rag ingest DIR --json`), for tests that then query
the collection the way a user does."""

from __future__ import annotations

from pathlib import Path

from pipelines.cli.main import main


def ingest_texts(folder: Path, texts: dict[str, str], capsys) -> Path:  # type: ignore[no-untyped-def]
    """Write `texts` (file name -> content) into `folder`, ingest it into the configured store, and drop the
    command's output; returns `folder`."""
    folder.mkdir()
    for name, text in texts.items():
        (folder / name).write_text(text, encoding="utf-8")
    assert main(["ingest", str(folder), "--json"]) == 0
    capsys.readouterr()
    return folder
