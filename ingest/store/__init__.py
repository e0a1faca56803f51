"""The store: one `VectorStore` contract (base.py), one neutral filter spec (filters.py), one module per
engine (qdrant.py: qdrant-client, server or local mode; edge.py: Qdrant's engine in-process) and what the
engines share (engine.py). Import the submodule you need: only qdrant.py imports qdrant-client."""
