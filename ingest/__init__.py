"""Ingestion: files -> Documents -> chunks -> vectors -> Qdrant points."""
