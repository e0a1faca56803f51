"""Imported by the parse workers' fork server: unstructured and spaCy loaded once, inherited by each worker."""

from __future__ import annotations

from ingest.parse import prepare_parsers

prepare_parsers(hide_torch=True)  # a process of its own: no other thread imports torch here
