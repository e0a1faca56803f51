"""What `EdgeStore.compact()` (a vacuum of every segment with a deleted point) costs, and what it changes.

The edge engine's BM25 IDF counts deleted points until their segment is vacuumed; `compact()` vacuums. For
each size N the store gets N chunks in documents of 10 (German 60-word windows from ../shared/data with their
BM25 sparse vectors, hash-seeded random 1024-d float16 vectors, real payloads with document fields) through
`upsert_chunks`. Then, each on a copy of that store:

- delete one document (10 points), 1 % and 20 % of the points with `delete_doc`, then `compact()`: seconds
  for the deletes, the vacuum, a second (idle) compact and a reopen; query p50 before and after;
- `--hnsw-max` sizes and below: `optimize()` (HNSW), then one document deleted and `compact()` (a plain
  rebuild: HNSW dropped) against a vacuum that rebuilds HNSW;
- the upsert rate with today's optimizer config against the shard's former default config.

    .venv/bin/python -m benchmarks.edge_vacuum_bench                    # 1k, 10k, 100k
    .venv/bin/python -m benchmarks.edge_vacuum_bench --sizes 1000 --json /tmp/x.json
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import qdrant_edge as qe

from benchmarks.common import finish, machine, markdown_table, percentile, write_outputs
from benchmarks.common import timed as common_timed
from benchmarks.store_engines_bench import unique_windows
from ingest.schema import Chunk, P, make_chunk_id, sha256_text
from ingest.sparse import SparseEncoder
from ingest.store.base import StoreOptions
from ingest.store.edge import EdgeStore
from ingest.store.edge_build import HNSW_KB, LEGACY_INDEX, PLAIN_KB, shard_config

DOC = 10  # chunks per document
WINDOWS = 4000  # distinct texts (sparse vectors encoded once), reused in a cycle
QUERIES = ["Bundesregierung Verordnung Gesetz", "Kündigung Frist Arbeitsvertrag", "Stadt Rat Haushalt Millionen",
           "Polizei Unfall Straße", "Schule Lehrer Kinder", "Steuer Einkommen Erklärung", "Gericht Urteil Klage",
           "Energie Strom Preise", "Wahl Partei Stimmen", "Krankenhaus Ärzte Patienten"]


def documents(n: int, texts: list[str], sparse: list, seed: int = 7):
    """(chunks, dense, sparse, fields) per document of DOC chunks; vectors from one seeded generator."""
    rng = np.random.default_rng(seed)
    for d in range(0, n // DOC):
        doc_id, source = f"doc-{d:06d}", f"akten/quelle-{d:06d}.txt"
        chunks, sparses = [], []
        for j in range(DOC):
            text = texts[(d * DOC + j) % len(texts)]
            start = j * 1000
            chunks.append(Chunk(make_chunk_id(doc_id, start, start + len(text)), doc_id, source, text, start,
                                start + len(text), j, 1 + j // 4, ("Teil", f"Abschnitt {j % 3}"), sha256_text(text),
                                60))
            sparses.append(sparse[(d * DOC + j) % len(texts)])
        dense = rng.standard_normal((DOC, 1024), dtype=np.float32)
        dense /= np.linalg.norm(dense, axis=1, keepdims=True)
        fields = {P.TITLE: f"Akte {d}", P.LANGUAGE: "de", P.FILE_TYPE: "txt", P.FILE_SIZE: 4096 + d}
        yield chunks, dense.tolist(), sparses, fields


def build(path: Path, n: int, texts: list[str], sparse: list) -> float:
    """A store of n points; returns the upsert rate (points/s, vectors made beforehand per document)."""
    store = EdgeStore(StoreOptions(collection="bench", path=str(path), batch_size=256))
    store.ensure_collection("bench-model", 1024)
    seconds = 0.0
    for chunks, dense, sparses, fields in documents(n, texts, sparse):
        started = time.perf_counter()
        store.upsert_chunks(chunks, dense, sparses, doc_hash="h", fields=fields)
        seconds += time.perf_counter() - started
    store.close()
    return n / seconds


def latencies(store: EdgeStore, encoder: SparseEncoder, reps: int = 3) -> dict[str, float]:
    """p50 ms of dense, bm25 and hybrid top-10 over QUERIES (encoded beforehand)."""
    rng = np.random.default_rng(1)
    qs = [(rng.standard_normal(1024).tolist(), encoder.encode_query(q)) for q in QUERIES]
    runs: dict[str, list[float]] = {"dense": [], "bm25": [], "hybrid": []}
    calls: dict[str, Callable] = {"dense": lambda d, s: store.search_dense(d, 10),
                                  "bm25": lambda d, s: store.search_sparse(*s, 10),
                                  "hybrid": lambda d, s: store.search_hybrid(d, s, 10)}
    for _ in range(reps):
        for d, s in qs:
            for mode, call in calls.items():
                started = time.perf_counter()
                call(d, s)
                runs[mode].append((time.perf_counter() - started) * 1000)
    return {mode: round(percentile(v, 50), 2) for mode, v in runs.items()}


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    seconds, out = common_timed(fn)
    return round(seconds, 4), out


def delete_and_compact(base: Path, work: Path, n: int, docs: int, encoder: SparseEncoder) -> dict:
    shutil.copytree(base, work)
    opts = StoreOptions(collection="bench", path=str(work))
    store = EdgeStore(opts)
    open_s, _ = timed(store.count)
    before = latencies(store, encoder)
    step = max(1, (n // DOC) // docs)
    delete_s, deleted = timed(lambda: sum(store.delete_doc(f"doc-{d:06d}") for d in range(0, step * docs, step)))
    compact_s, _ = timed(store.compact)
    idle_s, _ = timed(store.compact)
    info = store.shard.info()
    after = latencies(store, encoder)
    store.close()
    reopen_s, _ = timed(lambda: EdgeStore(opts).count())
    shutil.rmtree(work)
    return {"n": n, "deleted": deleted, "open_s": open_s, "delete_s": delete_s, "compact_s": compact_s,
            "idle_compact_s": idle_s, "reopen_s": reopen_s, "segments": info.segments_count,
            "p50_before_ms": before, "p50_after_ms": after}


def hnsw_case(base: Path, work: Path, n: int, encoder: SparseEncoder) -> dict:
    """optimize() builds HNSW; then one document deleted: compact() (plain) against a vacuum keeping HNSW."""
    out: dict = {"n": n}
    for keep in (False, True):
        shutil.copytree(base, work)
        store = EdgeStore(StoreOptions(collection="bench", path=str(work)))
        out["hnsw_build_s"], _ = timed(store.optimize)
        out["p50_hnsw_ms"] = latencies(store, encoder)
        store.delete_doc("doc-000003")
        if keep:  # what compact() would cost if it kept HNSW
            out["vacuum_keeping_hnsw_s"], _ = timed(lambda s=store: s._reconfigure(HNSW_KB).optimize())
            store._reconfigure(PLAIN_KB)
        else:
            out["compact_plain_s"], _ = timed(store.compact)
            out["p50_after_plain_compact_ms"] = latencies(store, encoder)
        store.close()
        shutil.rmtree(work)
    return out


def ingest_configs(root: Path, n: int, texts: list[str], sparse: list) -> dict:
    """Upsert rate of the same points into a shard with today's optimizer config and with Qdrant's defaults."""
    out: dict[str, int] = {}
    configs = [("compact_config", shard_config(LEGACY_INDEX, PLAIN_KB).optimizers), ("defaults", None)]
    for i, (name, optimizers) in enumerate(configs * 3):  # alternating, best of three each
        cfg = qe.EdgeConfig(vectors={"dense": qe.EdgeVectorParams(size=1024, distance=qe.Distance.Cosine,
                                                                  datatype=qe.VectorStorageDatatype.Float16)},
                            sparse_vectors={"bm25": qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
                            optimizers=optimizers)
        shard = qe.EdgeShard.create(str(root / f"{name}-{i}"), cfg)
        points = [qe.Point(c.chunk_id, {"dense": d, "bm25": qe.SparseVector(*s)}, {P.TEXT: c.text})
                  for chunks, dense, sparses, _ in documents(n, texts, sparse)
                  for c, d, s in zip(chunks, dense, sparses, strict=True)]
        started = time.perf_counter()
        for i in range(0, len(points), 256):
            shard.update(qe.UpdateOperation.upsert_points(points[i : i + 256]))
        out[name] = max(out.get(name, 0), round(n / (time.perf_counter() - started)))
        shard.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    ap.add_argument("--hnsw-max", type=int, default=10_000, help="HNSW case only up to this size (minutes above)")
    ap.add_argument("--json", help="write results here (default docs/bench/edge_vacuum-<machine>.json, .md beside)")
    args = ap.parse_args()
    info = machine()
    encoder = SparseEncoder()
    texts = unique_windows()[:WINDOWS]
    sparse = [encoder.encode_document(t) for t in texts]
    rows, hnsw, ingest = [], [], {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for n in args.sizes:
            base = root / f"base-{n}"
            rate = build(base, n, texts, sparse)
            for docs in sorted({1, max(1, n // DOC // 100), n // DOC // 5}):
                row = delete_and_compact(base, root / "work", n, docs, encoder)
                rows.append({**row, "upsert_points_per_s": round(rate)})
                print(row, flush=True)
            if n <= args.hnsw_max:
                hnsw.append(hnsw_case(base, root / "work", n, encoder))
                print(hnsw[-1], flush=True)
            shutil.rmtree(base)
        ingest = ingest_configs(root, min(10_000, max(args.sizes)), texts, sparse)
        print(ingest)
    result = {"rows": rows, "hnsw": hnsw, "ingest_points_per_s": ingest}
    table = markdown_table(
        ["N", "deleted", "delete s", "compact s", "idle compact s", "reopen s", "segments",
         "bm25 p50 ms before/after", "dense p50 before/after", "hybrid p50 before/after"],
        [[r["n"], r["deleted"], r["delete_s"], r["compact_s"], r["idle_compact_s"], r["reopen_s"], r["segments"],
          f"{r['p50_before_ms']['bm25']} / {r['p50_after_ms']['bm25']}",
          f"{r['p50_before_ms']['dense']} / {r['p50_after_ms']['dense']}",
          f"{r['p50_before_ms']['hybrid']} / {r['p50_after_ms']['hybrid']}"] for r in rows])
    print(write_outputs("edge_vacuum", finish(info), result, table, args.json))


if __name__ == "__main__":
    main()
