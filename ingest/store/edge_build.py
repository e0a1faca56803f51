"""The edge engine's shard configuration, and its optimizers run in a child process.

`qdrant-edge`'s `optimize()` holds Python's GIL for the whole build (minutes at a million points): in the
process that calls it nothing else runs, not a progress bar, not a health check. So `EdgeStore.optimize()`
closes its shard (keeping the path's lock), runs this module as a child process on the same folder, reports
progress while it waits, and opens the shard again. The child takes no lock: its parent holds it.

    python -m ingest.store.edge_build SHARD_DIR '{"index": {...}, "indexing_kb": 10000, "deleted_threshold": 0.2}'
"""

from __future__ import annotations

import json
import sys
from typing import Any

import qdrant_edge as qe

from ingest.store.base import SPARSE

# KB of vectors a segment holds before it gets HNSW: Qdrant's default (about 5,000 1024-d float16 vectors)
HNSW_KB = 10_000
PLAIN_KB = 0  # what writes and vacuums of a never-indexed collection use: no graph is built
# Qdrant's default vacuum rule, for collections with an index: rebuilding a segment's graph for one deleted point
# would cost minutes at scale; its BM25 IDF counts the deleted points (under 20 %) until then
INDEXED_DELETED_THRESHOLD = 0.2
INDEXED_VACUUM_MIN = 1000
# what collections created before the index settings existed were built with (Qdrant's HNSW defaults, no
# quantization)
LEGACY_INDEX = {"hnsw_m": 16, "hnsw_ef_construct": 100, "quantization": "none"}


BINARY = {"binary": qe.BinaryQuantizationEncoding.OneBit, "binary2": qe.BinaryQuantizationEncoding.TwoBits}
TURBO = {"turbo2": qe.TurboQuantBitSize.Bits2, "turbo4": qe.TurboQuantBitSize.Bits4}


def quantization_config(kind: str) -> Any:
    """The engine's quantization for a setting's name; None for `none`."""
    pinned = qe.Memory.Pinned  # the compressed copies live in RAM: every search reads them
    if kind == "scalar":
        return qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8, quantile=0.99, memory=pinned)
    if kind in BINARY:
        return qe.BinaryQuantizationConfig(encoding=BINARY[kind], memory=pinned)
    if kind in TURBO:
        return qe.TurboQuantQuantizationConfig(bits=TURBO[kind], memory=pinned)
    return None


def shard_config(index: dict[str, Any], indexing_kb: int, deleted_threshold: float = 0.0,
                 vacuum_min: int = 1) -> qe.EdgeConfig:
    """The config a shard is loaded with: its recorded HNSW and quantization, our optimizers; the vectors as
    stored (the sparse one, unchanged, only because the binding needs one)."""
    m = int(index.get("hnsw_m", 16))
    return qe.EdgeConfig(
        sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        hnsw_config=qe.HnswIndexConfig(m=m, ef_construct=int(index.get("hnsw_ef_construct", 100)),
                                       full_scan_threshold=HNSW_KB),
        quantization_config=quantization_config(str(index.get("quantization", "none"))),
        optimizers=qe.EdgeOptimizersConfig(deleted_threshold=deleted_threshold, vacuum_min_vector_number=vacuum_min,
                                           indexing_threshold=indexing_kb),
    )


def run(shard_dir: str, spec: dict[str, Any]) -> dict[str, Any]:
    config = shard_config(spec["index"], int(spec["indexing_kb"]), float(spec.get("deleted_threshold", 0.0)),
                          int(spec.get("vacuum_min", 1)))
    shard = qe.EdgeShard.load(shard_dir, config)
    try:
        changed = bool(shard.optimize())
        shard.flush()
        info = shard.info()
        return {"changed": changed, "points": info.points_count, "indexed": info.indexed_vectors_count,
                "segments": info.segments_count}
    finally:
        shard.close()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m ingest.store.edge_build SHARD_DIR SPEC_JSON", file=sys.stderr)
        return 2
    print(json.dumps(run(argv[0], json.loads(argv[1]))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
