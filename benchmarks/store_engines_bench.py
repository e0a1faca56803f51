"""Embedded store engines side by side: qdrant-client local mode against qdrant-edge (Qdrant's engine in-process).

For each size N: both stores get the same N chunks (German text from ../shared/data in 60-word windows, reused
in a cycle when N exceeds them, BM25 sparse vectors from `ingest.sparse.SparseEncoder`, hash-seeded random
unit vectors of 1024-d) through the real adapters (`upsert_chunks`, payload and all). Then:

- upsert points/s and peak RSS of the build, each engine in its own child process;
- reopen: a fresh child opens the store and runs one query (seconds to the first answer, peak RSS);
- query latency p50/p99 of dense, bm25 and hybrid (RRF) search, engines alternating query by query in one
  process; search time only (the query's sparse vector is encoded beforehand, the dense one is a hash vector).

    .venv/bin/python -m benchmarks.store_engines_bench                # 10k and 100k
    .venv/bin/python -m benchmarks.store_engines_bench --sizes 2000 --queries 20 --json /tmp/x.json

Edge runs without `optimize()` (plain segments: an exact scan in Rust), i.e. the same results as local mode.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import (
    DATA,
    finish,
    german_documents,
    machine,
    markdown_table,
    percentile,
    public,
    timed,
    write_outputs,
)
from ingest.schema import Chunk, make_chunk_id, sha256_text
from ingest.sparse import SparseEncoder
from ingest.store.base import StoreOptions, VectorStore
from ingest.store.qdrant import QdrantStore

ENGINES = ("local", "edge")
MODES = ("dense", "bm25", "hybrid")
WORDS = 60
BATCH = 256
DOC_CHUNKS = 256  # chunks per document: one upsert_chunks call each


def open_store(engine: str, path: Path) -> VectorStore:
    opts = StoreOptions(collection="bench", path=str(path), batch_size=BATCH)
    if engine == "edge":
        from ingest.store.edge import EdgeStore

        return EdgeStore(opts)
    return QdrantStore(opts)


def unique_windows() -> list[str]:
    """60-word windows of every German document in ../shared/data (laws, then news)."""
    out = []
    for _name, text in german_documents():
        words = text.split()
        out += [" ".join(words[i : i + WORDS]) for i in range(0, len(words) - WORDS // 2, WORDS)]
    return out


def dense_vector(key: str, dim: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
    v = np.random.default_rng(seed).standard_normal(dim, dtype=np.float32)
    return v / np.linalg.norm(v)


def corpus(n: int, windows: list[str], sparse: list[tuple[list[int], list[float]]]):
    """n chunks in documents of DOC_CHUNKS; chunk i reuses window i mod len(windows) under its own id and vector."""
    for start in range(0, n, DOC_CHUNKS):
        doc_id = f"doc-{start // DOC_CHUNKS:06d}"
        chunks, vectors, sparses = [], [], []
        for j, i in enumerate(range(start, min(n, start + DOC_CHUNKS))):
            text = windows[i % len(windows)]
            cid = make_chunk_id(doc_id, j * 1000, j * 1000 + len(text))
            source = f"quelle-{start // DOC_CHUNKS:05d}.txt"
            chunks.append(Chunk(cid, doc_id, source, text, j * 1000, j * 1000 + len(text), j, 1 + j // 10,
                                ("Teil", f"Abschnitt {j % 7}"), sha256_text(text), WORDS))
            vectors.append(dense_vector(cid, 1024))
            sparses.append(sparse[i % len(windows)])
        yield chunks, vectors, sparses


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(engine: str, path: Path, n: int, windows, sparse, out) -> None:
    """Child process: create and fill one store; report the upsert rate and peak RSS."""
    store = open_store(engine, path)
    store.ensure_collection("bench-model", 1024)
    base = rss_mib()
    started = time.perf_counter()
    for chunks, vectors, sparses in corpus(n, windows, sparse):
        store.upsert_chunks(chunks, [v.tolist() for v in vectors], sparses, doc_hash="h")
    seconds = time.perf_counter() - started
    store.close()
    out.put({"upsert_s": seconds, "points_per_s": n / seconds, "build_peak_rss_mib": rss_mib(),
             "rss_before_mib": base, "disk_mib": sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20})


def reopen(engine: str, path: Path, query, out) -> None:
    """Child process: open the stored collection and answer one hybrid query (a CLI query's cold start)."""
    started = time.perf_counter()
    store = open_store(engine, path)
    store.require_collection()
    store.search_hybrid(query[0], query[1], 10)
    seconds = time.perf_counter() - started
    out.put({"reopen_first_query_s": seconds, "reopen_peak_rss_mib": rss_mib(), "count": store.count()})
    store.close()


def in_child(target, *args) -> dict:
    ctx = mp.get_context("fork")  # the children inherit the encoded corpus instead of re-encoding it
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def search(store: VectorStore, mode: str, dense: list[float], sparse) -> None:
    if mode == "dense":
        store.search_dense(dense, 10)
    elif mode == "bm25":
        store.search_sparse(sparse[0], sparse[1], 10)
    else:
        store.search_hybrid(dense, sparse, 10, fusion="rrf", rrf_k=60, candidates=50)


def latencies(paths: dict[str, Path], queries, rounds: int = 3) -> dict[str, dict[str, dict[str, float]]]:
    """p50/p99 per engine and mode. Engines take turns in rounds (each round: every query and mode on one
    engine, then on the next), so load drifts hit both alike; query-by-query alternation in one process let
    local mode's numpy (OpenBLAS threads spinning after each call) steal the cores from the edge engine's
    searches that followed."""
    stores = {e: open_store(e, p) for e, p in paths.items()}
    times: dict[str, dict[str, list[float]]] = {e: {m: [] for m in MODES} for e in stores}
    for _ in range(rounds):
        for e, s in stores.items():
            for mode in MODES:
                search(s, mode, *queries[-1])  # warm-up, not counted
                for dense, sparse in queries:
                    t = time.perf_counter()
                    search(s, mode, dense, sparse)
                    times[e][mode].append((time.perf_counter() - t) * 1000)
    for s in stores.values():
        s.close()
    return {e: {m: {"p50_ms": percentile(v, 50), "p99_ms": percentile(v, 99), "n": len(v)}
                for m, v in per.items()} for e, per in times.items()}


def hnsw_probe(n: int, windows, sparse, queries, root: Path) -> dict:
    """Edge after `optimize()` (HNSW built, m=16, ef_construct=100): build time, latency and dense recall@10
    against the exact scan. Uniform random vectors are HNSW's worst case; real embeddings recall better."""
    from ingest.store.edge import EdgeSearch, EdgeStore

    path = root / f"edge-hnsw-{n}"
    opts = StoreOptions(collection="bench", path=str(path), batch_size=BATCH)
    store = EdgeStore(opts)
    store.ensure_collection("bench-model", 1024)
    for chunks, vectors, sparses in corpus(n, windows, sparse):
        store.upsert_chunks(chunks, [v.tolist() for v in vectors], sparses, doc_hash="h")
    seconds, _ = timed(store.optimize)
    store.close()
    out: dict = {"points": n, "optimize_s": seconds}
    for ef in (128, 512):
        hnsw, exact = EdgeStore(opts, EdgeSearch(hnsw_ef=ef)), EdgeStore(opts, EdgeSearch(exact=True))
        times: dict[str, list[float]] = {m: [] for m in MODES}
        search(hnsw, "hybrid", *queries[-1])  # warm-up
        for dense, sp in queries:
            for mode in MODES:
                t = time.perf_counter()
                search(hnsw, mode, dense, sp)
                times[mode].append((time.perf_counter() - t) * 1000)
        found = [{h.chunk_id for h in hnsw.search_dense(dense, 10)} for dense, _ in queries]
        hnsw.close()  # one open handle per path (the lock)
        recall = [len(f & {h.chunk_id for h in exact.search_dense(dense, 10)}) / 10
                  for f, (dense, _) in zip(found, queries, strict=True)]
        exact.close()
        out[f"ef{ef}"] = {"recall_at_10": statistics.fmean(recall),
                          **{f"{m}_p50_ms": percentile(v, 50) for m, v in times.items()}}
    shutil.rmtree(path, ignore_errors=True)
    return out


def questions(n: int) -> list[str]:
    data = json.loads((DATA / "xquad-de" / "xquad.de.json").read_text(encoding="utf-8"))
    qs = [qa["question"] for art in data["data"] for par in art["paragraphs"] for qa in par["qas"]]
    return qs[:: max(1, len(qs) // n)][:n]


def run_size(n: int, windows, sparse, queries, root: Path, engines: list[str]) -> dict:
    paths = {e: root / f"{e}-{n}" for e in engines}
    result: dict = {"points": n}
    for e in engines:
        result[e] = in_child(build, e, paths[e], n, windows, sparse)
        result[e].update(in_child(reopen, e, paths[e], queries[0]))
        print(f"  {e} {n}: {result[e]}", flush=True)
    for e, modes in latencies(paths, queries).items():
        result[e]["query"] = modes
    for p in paths.values():
        shutil.rmtree(p, ignore_errors=True)
    return result


def table(results: list[dict]) -> str:
    rows = []
    for r in results:
        for e in (e for e in ENGINES if e in r):
            x = r[e]
            q = x["query"]
            rows.append([e, f"{r['points']:,}", f"{x['points_per_s']:,.0f}",
                         *(f"{q[m]['p50_ms']:.1f} / {q[m]['p99_ms']:.1f}" for m in MODES),
                         f"{x['reopen_first_query_s']:.2f}", f"{x['build_peak_rss_mib']:,.0f}",
                         f"{x['reopen_peak_rss_mib']:,.0f}", f"{x['disk_mib']:,.0f}"])
    return markdown_table(["engine", "points", "upsert points/s", "dense p50 / p99 ms", "bm25 p50 / p99 ms",
                           "hybrid p50 / p99 ms", "reopen + 1st query s", "build peak RSS MiB",
                           "reopen peak RSS MiB", "disk MiB"], rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    ap.add_argument("--hnsw", action="store_true", help="only the edge engine after optimize() (HNSW)")
    ap.add_argument("--json", help="output JSON path (default docs/bench/store_engines-<machine>.json)")
    args = ap.parse_args(argv)
    info = machine()
    windows = unique_windows()[: max(args.sizes)]
    encoder = SparseEncoder()
    t = time.perf_counter()
    sparse = encoder.encode_documents(windows)
    print(f"{len(windows)} unique German chunks, BM25-encoded in {time.perf_counter() - t:.1f} s", flush=True)
    queries = [(dense_vector(q, 1024).tolist(), encoder.encode_query(q)) for q in questions(args.queries)]
    results: list[dict] = []
    if args.hnsw:
        with tempfile.TemporaryDirectory(prefix="store-engines-") as tmp:
            hnsw = [hnsw_probe(n, windows, sparse, queries, Path(tmp)) for n in args.sizes]
        print(json.dumps(hnsw, indent=2))
        finish(info)
        out = public({"machine": info, "hnsw": hnsw})
        Path(args.json or "store_engines_hnsw.json").write_text(json.dumps(out, indent=2))
        return 0
    with tempfile.TemporaryDirectory(prefix="store-engines-") as tmp:
        for n in args.sizes:  # outputs rewritten after each size, so a long run leaves what it measured
            results.append(run_size(n, windows, sparse, queries, Path(tmp), args.engines))
            path = report(info, results, len(queries), len(windows), args.json)
    print(path.with_suffix(".md").read_text())
    print(f"wrote {path} and {path.with_suffix('.md')}")
    return 0


def report(info: dict, results: list[dict], n_queries: int, n_windows: int, json_path: str | None) -> Path:
    finish(info)
    md = table(results)
    md += ("\n\nSearch time only (no model), top 10, hybrid = dense + bm25 prefetch (50 each) fused by RRF in the "
           f"engine; {n_queries} xquad-de questions x 3 rounds, engines taking turns per round; "
           f"{n_windows:,} unique 60-word German chunks reused in a cycle up to N, 1024-d hash-seeded random unit "
           "vectors. Edge without optimize(): exact scan, same results as local mode. RSS is each child process's peak "
           "(Python, numpy and the corpus included).\n")
    return write_outputs("store_engines", info, {"results": results}, md, json_path)


if __name__ == "__main__":
    raise SystemExit(main())
