"""Search latency of the embedded store: dense, BM25 and hybrid at growing collection sizes.

    .venv/bin/python benchmarks/query_bench.py                      # 10k and 100k chunks, 50 queries each
    .venv/bin/python benchmarks/query_bench.py --quick              # 2k chunks, 20 queries
    .venv/bin/python benchmarks/query_bench.py --engine edge        # another embedded engine (qdrant_engine)
    .venv/bin/python benchmarks/query_bench.py --model-dir DIR      # also time the query's model (batch 1)

The store comes from `pipelines.build.build_store(settings)`, so whatever engine the settings select is
what gets timed. Points carry 1024-d hash-seeded random unit vectors (search cost does not depend on the
values), real German chunk texts as payload and BM25 sparse vectors from those texts through
`ingest.sparse.SparseEncoder`. Queries are the xquad-de questions: sparse from their text, dense a
hash-seeded vector of it. Search time excludes the query's model time, which is reported apart.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import DATA, finish, german_documents, machine, markdown_table, percentile, write_outputs


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10000,100000", help="comma list of collection sizes, ascending")
    p.add_argument("--queries", type=int, default=50, help="queries per mode and size")
    p.add_argument("--dim", type=int, default=1024, help="dense vector size")
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--candidates", type=int, default=50, help="hits per leg before hybrid fusion")
    p.add_argument("--engine", help="qdrant_engine setting (default: the settings' default)")
    p.add_argument("--path", help="store folder (default: a temporary folder, removed afterwards)")
    p.add_argument("--model-dir", help="time batch-1 query embedding with this model (reported apart)")
    p.add_argument("--quick", action="store_true", help="2000 chunks, 20 queries")
    p.add_argument("--json", help="output JSON path (default docs/bench/query-<machine>.json)")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.queries = "2000", min(args.queries, 20)
    return args


def unit_vector(key: str, dim: int) -> list[float]:
    """A hash-seeded random unit vector: a fair stand-in for search timing (no ties, no structure)."""
    seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return (v / np.linalg.norm(v)).tolist()


def passages(words_per: int = 120) -> list[str]:
    """Real German text windows (laws and news) of about `words_per` words: the stored chunk texts."""
    out: list[str] = []
    for _name, text in german_documents():
        words = text.split()
        out += [" ".join(words[i : i + words_per]) for i in range(0, len(words), words_per)]
    return [p for p in out if len(p) > 40]


def questions(n: int) -> list[str]:
    data = json.loads((DATA / "xquad-de" / "xquad.de.json").read_text(encoding="utf-8"))
    qs = [qa["question"] for art in data["data"] for para in art["paragraphs"] for qa in para["qas"]]
    return qs[:: max(1, len(qs) // n)][:n]


def make_settings(args: argparse.Namespace, path: str):
    from pipelines.config import load_settings

    extra = {"qdrant_engine": args.engine} if args.engine else {}
    return load_settings(qdrant_path=path, collection="bench", qdrant_url="", **extra)


def fill(store, start: int, end: int, texts: list[str], sparse_of, dim: int) -> float:
    """Write points start..end-1 (texts cycled); returns seconds spent in the store."""
    from ingest.schema import Chunk

    spent = 0.0
    for lo in range(start, end, 1000):
        ids = range(lo, min(end, lo + 1000))
        chunks = [Chunk(str(uuid.uuid5(uuid.NAMESPACE_OID, f"bench-{i}")), f"doc-{i // 20}", f"bench/{i // 20}.txt",
                        texts[i % len(texts)], 0, len(texts[i % len(texts)]), i % 20, None, (), f"h{i}", 0)
                 for i in ids]
        dense = [unit_vector(f"chunk-{i}", dim) for i in ids]
        sparse = [sparse_of(i % len(texts)) for i in ids]
        t0 = time.perf_counter()
        store.upsert_chunks(chunks, dense, sparse, doc_hash="bench")
        spent += time.perf_counter() - t0
    return spent


class HashQueries:
    """The retriever's query embedder for timing: the same hash vector per question as the other modes."""

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def embed_query(self, text: str, truncate: bool = False) -> list[float]:
        return unit_vector(f"query-{text}", self.dim)


def time_modes(store, qs: list[str], encoder, args, settings) -> dict:
    from pipelines.build import build_retriever

    encoded = [(q, unit_vector(f"query-{q}", args.dim), encoder.encode_query(q)) for q in qs]
    retriever = build_retriever(settings, HashQueries(args.dim), store)
    modes = {
        "dense": lambda q, d, s: store.search_dense(d, args.top_k),
        "bm25": lambda q, d, s: store.search_sparse(s[0], s[1], args.top_k),
        "hybrid": lambda q, d, s: store.search_hybrid(d, s, args.top_k, candidates=args.candidates),
        # the default retrieval path end to end (weighted DBSF fused on the client, BM25 analysis included)
        "retrieve": lambda q, d, s: retriever.retrieve(q, args.top_k),
    }
    out = {}
    for mode, fn in modes.items():
        fn(*encoded[0])  # warm-up
        times, hits = [], []
        for q, d, s in encoded:
            t0 = time.perf_counter()
            hits.append(len(fn(q, d, s)))
            times.append((time.perf_counter() - t0) * 1000)
        # hits per query: a search that silently returns nothing would otherwise look fast
        out[mode] = {"p50_ms": percentile(times, 50), "p99_ms": percentile(times, 99), "mean_ms": float(np.mean(times)),
                     "min_hits": min(hits)}
    return out


def model_times(args, qs: list[str], encoder) -> dict:
    """Query-side model costs, apart from search: BM25 analysis always, dense embedding if a model is given."""
    out = {}
    t = []
    for q in qs:
        t0 = time.perf_counter()
        encoder.encode_query(q)
        t.append((time.perf_counter() - t0) * 1000)
    out["bm25_encode_p50_ms"] = percentile(t, 50)
    if args.model_dir:
        from ingest.embed import EmbedderOptions, HFEmbedder

        emb = HFEmbedder(EmbedderOptions(model=args.model_dir))
        emb.embed_query(qs[0])
        t = []
        for q in qs[:20]:
            t0 = time.perf_counter()
            emb.embed_query(q)
            t.append((time.perf_counter() - t0) * 1000)
        out["dense_embed_p50_ms"] = percentile(t, 50)
        out["dense_model"] = args.model_dir
    return out


def main(argv: list[str] | None = None) -> dict:
    from ingest.sparse import SparseEncoder
    from pipelines.build import build_sparse_encoder, build_store

    args = parse_args(argv)
    info = machine()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    texts = passages()
    qs = questions(args.queries)
    with tempfile.TemporaryDirectory(prefix="query-bench-") as tmp:
        settings = make_settings(args, args.path or str(Path(tmp) / "qdrant"))
        encoder: SparseEncoder = build_sparse_encoder(settings)
        cache: dict[int, tuple] = {}

        def sparse_of(i: int):
            if i not in cache:
                cache[i] = encoder.encode_document(texts[i])
            return cache[i]

        store = build_store(settings)
        store.ensure_collection("bench-random-unit-vectors", args.dim)
        rows, written, upsert_s = [], 0, 0.0
        for size in sizes:
            upsert_s += fill(store, written, size, texts, sparse_of, args.dim)
            written = size
            timing = time_modes(store, qs, encoder, args, settings)
            rows.append({"chunks": size, "upsert_points_per_s": size / upsert_s, **timing})
            print(f"{size}: " + ", ".join(f"{m} p50 {v['p50_ms']:.1f} ms" for m, v in timing.items()
                                          if isinstance(v, dict)), flush=True)
        engine = type(store).__name__
        store.close()
    result = {"engine": engine, "engine_setting": args.engine, "dim": args.dim, "top_k": args.top_k,
              "queries": len(qs), "unique_texts": len(texts), "model_time": model_times(args, qs, encoder),
              "command": " ".join(sys.argv), "results": rows}
    finish(info)
    path = write_outputs("query", info, result, render(result), args.json)
    print(render(result))
    print(f"\nwritten {path}")
    return result


def render(result: dict) -> str:
    modes = [m for m in ("dense", "bm25", "hybrid", "retrieve") if m in result["results"][0]]
    rows = [[r["chunks"], r["upsert_points_per_s"], *(r[m][k] for m in modes for k in ("p50_ms", "p99_ms"))]
            for r in result["results"]]
    mt = result["model_time"]
    model = (f"Query model time (apart from search): BM25 analysis p50 {mt['bm25_encode_p50_ms']:.2f} ms"
             + (f", dense embedding p50 {mt['dense_embed_p50_ms']:.0f} ms ({mt['dense_model']})"
                if "dense_embed_p50_ms" in mt else "") + ".")
    head = (f"Store engine: {result['engine']}; {result['dim']}-d vectors, top {result['top_k']}, "
            f"{result['queries']} xquad-de questions per mode.\n\n")
    headers = ["chunks", "upsert points/s", *(f"{m} {k} ms" for m in modes for k in ("p50", "p99"))]
    note = ("hybrid = both legs fused by RRF inside the engine (one request); retrieve = the default "
            "`german-rag query` path (hybrid, DBSF with the dense leg at 0.3, fused on the client from two "
            "searches, BM25 analysis included), with the question's hash vector instead of a model.\n\n")
    return head + markdown_table(headers, rows) + "\n\n" + note + model


if __name__ == "__main__":
    main()
