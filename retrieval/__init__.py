"""Retrieval: a query -> the top passages with their sources and per-stage scores."""
