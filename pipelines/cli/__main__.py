"""`python -m pipelines.cli ...` runs the command line as the console script does."""

import sys

from pipelines.cli.main import main

sys.exit(main())
