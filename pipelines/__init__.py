"""Pipelines: configuration, wiring, the CLI and the jobs that compose ingest and retrieval."""
