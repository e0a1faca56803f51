"""`german-rag optimize`: build the collection's HNSW index and quantized copies now (ingest and sync do it by
themselves past `optimize_threshold`; pipelines/indexing/index_build.py)."""

from __future__ import annotations

import argparse

from ingest.errors import ErrorKind
from pipelines.build import build_store
from pipelines.cli.output import out
from pipelines.config import Settings


def optimize_cmd(args: argparse.Namespace, settings: Settings) -> ErrorKind | None:
    """Build the index now, with progress; print before and after."""
    from pipelines.indexing.index_build import optimize

    store = build_store(settings)
    try:
        store.require_collection()
        build = optimize(store, progress=not args.json)
    finally:
        store.close()
    out(args, {"collection": settings.collection, **build.to_dict()},
        f"{'built' if build.changed else 'nothing to build'}; {build.summary()}")
    return None
