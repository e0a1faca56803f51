"""Ingest runs over files and folders: discover.py (which files), run.py (IngestRunner: triage, parse
worker, chunk, embed, write), stages.py (the stages one file goes through), report.py (the per-file
report whose counts must balance), verify.py (a collection checked against its source files)."""
