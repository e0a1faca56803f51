"""The embedded default at 100k and 1M chunks, on real embeddings: ingest-to-searchable, index build, disk, RSS,
latency of the default retrieve path (dense, bm25, hybrid) and recall@10 against exact search, with and without a
tenant filter of 1 % selectivity, quantization on and off.

Vectors (benchmarks/scale_corpus.py, run it first): 101,239 real units of ../shared/data (laws, news, Wikipedia,
GermanDPR passages and STS sentences: passages, paragraphs, 1-3 sentence windows) embedded by two real models,
MiniLM (384-d) and multilingual USE (512-d); 2,206 real questions (xquad-de, germandpr) as queries. `--vectors`:

- `minilm`, `use`: each model's own vectors;
- `combined` (default): the product's dimension, 1024: both models' unit vectors side by side, scaled by 1/sqrt 2
  and turned into 1024-d by a fixed random orthonormal map. Inner products are kept exactly, so the cosine of two
  units is the mean of the two models' cosines: real neighbourhoods, at the size the default German model has.

The 1M tier adds 898,761 points to the 101,239 real ones. Each is made from a real unit i and one of its 10 nearest
real neighbours j: normalize(l * x_i + (1 - l) * x_j + s * g), l ~ U(0.5, 1), g Gaussian; s is set so that a new
point's cosine to x_i has the median of a real unit's cosine to its nearest real neighbour. So every new point lies
where real text lies (between two real neighbours, at a real near-neighbour distance), as a ten times larger
archive on the same topics would: denser neighbourhoods, which is the harder case for HNSW and quantization
(more near-ties to tell apart), not an easier one like uniform noise would be. Its text and BM25 vector are its
source unit's (posting lists ten times longer, as a ten times larger archive of similar text has).

Every point is written through the product's store adapter (`EdgeStore.upsert_chunks`: payload and all, 50
chunks per document, one tenant of 100 per document) in a child process; then `optimize()` (HNSW + quantized
copies); a second child opens the store afresh and measures: searches through the product's retriever
(`pipelines.build.build_retriever`: default fusion, candidates, question frame, citation leg), query vectors
precomputed by the real models (embedding time is not in the figures: see docs/bench/cpu-embedding.md).

    .venv/bin/python -m benchmarks.scale_corpus --out .cache/scale
    .venv/bin/python -m benchmarks.scale_bench --tier 100k --quantization none,scalar,binary2,turbo4
    .venv/bin/python -m benchmarks.scale_bench --tier 1m --quantization scalar
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmarks.common import finish, machine, markdown_table, percentile, write_outputs

if TYPE_CHECKING:
    from ingest.store.base import StoreOptions, VectorStore
    from retrieval.hybrid import HybridRetriever

CACHE = Path(".cache/scale")
REAL = 101_239
TIERS = {"10k": 10_000, "100k": REAL, "1m": 1_000_000}
DOC = 50  # chunks per document
TENANTS = 100  # one tenant per document in turn: a tenant filter keeps 1 % of the points
K = 10


# -- vectors ----------------------------------------------------------------------------------------------------
def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def real_vectors(kind: str, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """(units, queries) of one vector set, unit length, float32."""
    if kind in ("minilm", "use"):
        data = np.load(cache / ("minilm.npz" if kind == "minilm" else "usem3.npz"))
        return _unit(data["docs"]), _unit(data["queries"])
    m, u = np.load(cache / "minilm.npz"), np.load(cache / "usem3.npz")
    rot = np.linalg.qr(np.random.default_rng(1024).standard_normal((1024, 384 + 512)))[0].astype(np.float32)

    def combine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return _unit(np.concatenate([_unit(a), _unit(b)], axis=1) / np.sqrt(2)) @ rot.T

    return combine(m["docs"], u["docs"]), combine(m["queries"], u["queries"])


def neighbours(x: np.ndarray, cache: Path, kind: str, k: int = 10) -> np.ndarray:
    """Each real unit's k nearest other real units (exact, blockwise), cached."""
    path = cache / f"knn-{kind}.npy"
    if path.exists():
        return np.load(path)
    out = np.empty((len(x), k), np.int32)
    for a in range(0, len(x), 2048):
        s = x[a:a + 2048] @ x.T
        s[np.arange(len(s)), np.arange(a, a + len(s))] = -2  # not itself
        top = np.argpartition(-s, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(s, top, 1), axis=1)
        out[a:a + 2048] = np.take_along_axis(top, order, 1)
    np.save(path, out)
    return out


def extend(x: np.ndarray, knn: np.ndarray, total: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray, float]:
    """`total` points: the real ones, then made ones (module docstring); (vectors, source unit of each, sigma)."""
    rng = np.random.default_rng(seed)
    n, d = x.shape
    nn1 = np.einsum("ij,ij->i", x, x[knn[:, 0]])
    target = float(np.median(nn1))
    base = rng.integers(0, n, total - n)
    other = knn[base, rng.integers(0, knn.shape[1], total - n)]
    lam = rng.uniform(0.5, 1.0, (total - n, 1)).astype(np.float32)
    sigma = _sigma(x, base[:4000], other[:4000], lam[:4000], target, rng)
    made = np.empty((total - n, d), np.float32)
    for a in range(0, total - n, 100_000):
        b = slice(a, a + 100_000)
        g = rng.standard_normal((len(base[b]), d)).astype(np.float32) / np.sqrt(d)
        made[b] = _unit(lam[b] * x[base[b]] + (1 - lam[b]) * x[other[b]] + sigma * g)
    return np.concatenate([x, made]), np.concatenate([np.arange(n), base]), sigma


def _sigma(x: np.ndarray, base: np.ndarray, other: np.ndarray, lam: np.ndarray, target: float,
           rng: np.random.Generator) -> float:
    """The noise scale at which a made point's median cosine to its source unit is `target` (bisection)."""
    d = x.shape[1]
    g = rng.standard_normal((len(base), d)).astype(np.float32) / np.sqrt(d)
    lo, hi = 0.0, 4.0
    for _ in range(30):
        mid = (lo + hi) / 2
        v = _unit(lam * x[base] + (1 - lam) * x[other] + mid * g)
        lo, hi = (mid, hi) if np.median(np.einsum("ij,ij->i", v, x[base])) > target else (lo, mid)
    return (lo + hi) / 2


def dataset(tier: str, kind: str, cache: Path) -> dict[str, Any]:
    """Vectors of a tier (memory-mapped .npy, built once), the source unit of each point, and the queries."""
    path = cache / f"points-{tier}-{kind}.npy"
    x, q = real_vectors(kind, cache)
    meta = cache / f"points-{tier}-{kind}.json"
    if not path.exists():
        if TIERS[tier] <= len(x):
            points, source, sigma = x[:TIERS[tier]], np.arange(TIERS[tier]), 0.0
        else:
            points, source, sigma = extend(x, neighbours(x, cache, kind), TIERS[tier])
        np.save(path, points.astype(np.float32))
        np.save(cache / f"source-{tier}-{kind}.npy", source)
        meta.write_text(json.dumps({"sigma": sigma, "real": min(len(x), TIERS[tier])}))
    qpath = cache / f"queries-{kind}.npy"
    if not qpath.exists():
        np.save(qpath, q)
    return {"points": np.load(path, mmap_mode="r"), "source": np.load(cache / f"source-{tier}-{kind}.npy"),
            "queries": q, **json.loads(meta.read_text())}


# -- the store ---------------------------------------------------------------------------------------------------
def options(path: Path, quantization: str, m: int, efc: int, ef: int = 128, oversampling: float = 2.0
            ) -> StoreOptions:
    from ingest.store.base import IndexOptions, StoreOptions

    return StoreOptions(collection="scale", path=str(path), batch_size=512,
                        index=IndexOptions(hnsw_m=m, hnsw_ef_construct=efc, hnsw_ef=ef, quantization=quantization,
                                           oversampling=oversampling, optimize_threshold=0))


def load(args: argparse.Namespace) -> dict[str, Any]:
    """Child: write every point through the adapter, then optimize(); times, disk, peak RSS."""
    from ingest.schema import Access, Chunk, make_chunk_id, sha256_text
    from ingest.store.edge import EdgeStore

    data = dataset(args.tier, args.vectors, Path(args.cache))
    texts = json.loads((Path(args.cache) / "units.json").read_text(encoding="utf-8"))["texts"]
    sp = np.load(Path(args.cache) / "sparse.npz")
    offsets, indices, values = sp["offsets"], sp["indices"], sp["values"]
    points, source = data["points"], data["source"]
    store = EdgeStore(options(Path(args.store), args.quantization, args.m, args.efc))
    store.ensure_collection("scale-" + args.vectors, points.shape[1])
    started = time.perf_counter()
    for d, a in enumerate(range(0, len(points), DOC)):
        rows = range(a, min(len(points), a + DOC))
        doc = f"doc{d:06d}"
        chunks, sparse = [], []
        for k, r in enumerate(rows):
            text, u = texts[source[r]], source[r]
            chunks.append(Chunk(make_chunk_id(doc, k * 2000, k * 2000 + len(text)), doc, f"docs/{doc}.txt", text,
                                k * 2000, k * 2000 + len(text), k, None, (), sha256_text(text), 64))
            lo, hi = offsets[u], offsets[u + 1]
            sparse.append((indices[lo:hi].tolist(), values[lo:hi].tolist()))
        store.upsert_chunks(chunks, points[a:a + DOC].tolist(), sparse, doc_hash=doc,
                            access=Access(tenant=f"t{d % TENANTS:02d}"))
    store.shard.flush()
    write_s = time.perf_counter() - started
    started = time.perf_counter()
    store.optimize()
    build_s = time.perf_counter() - started
    state = store.index_state()
    store.close()
    return {"points": len(points), "write_s": round(write_s, 1), "build_s": round(build_s, 1),
            "ingest_to_searchable_s": round(write_s + build_s, 1), "indexed": state.indexed,
            "segments": state.segments, "disk_mb": round(_du(Path(args.store)) / 2**20, 1),
            "disk_wal_mb": round(sum(_du(w) for w in Path(args.store).rglob("wal")) / 2**20, 1),
            "load_peak_rss_mb": round(_status("VmHWM") / 1024, 1)}


def _unquantized() -> type:
    from ingest.store.edge import EdgeStore

    class Unquantized(EdgeStore):
        """The same collection searched without its quantized copies (HNSW over the originals): quantization
        off at search time, on the same graph."""

        def _params(self) -> Any:
            import qdrant_edge as qe

            params = super()._params()
            return qe.SearchParams(exact=params.exact, hnsw_ef=params.hnsw_ef,
                                   quantization=qe.QuantizationSearchParams(ignore=True))

    return Unquantized


class _QueryVectors:
    """The real models' query vectors, looked up by question (and by the question without its frame, which
    hybrid's dense leg asks for: the same vector, the latency is what is measured)."""

    def __init__(self, questions: list[str], vectors: np.ndarray) -> None:
        from retrieval.question import strip_question

        self._by = {q: v for q, v in zip(questions, vectors.tolist(), strict=True)}
        self._by.update({strip_question(q): v for q, v in zip(questions, vectors.tolist(), strict=True)})

    def embed_query(self, text: str, truncate: bool = False) -> list[float]:
        return self._by[text]


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Child: open the store afresh; latency and recall@10 of the retriever against exact search."""
    from ingest.store.access import Principal
    from ingest.store.edge import EdgeSearch, EdgeStore
    from pipelines.build import build_retriever, retriever_over
    from pipelines.config import load_settings

    # only what a service holds: the questions' vectors, not the corpus (the driver built it beforehand)
    questions = json.loads((Path(args.cache) / "units.json").read_text(encoding="utf-8"))["queries"]
    pick = np.random.default_rng(3).permutation(len(questions))[:args.queries]
    qs = [questions[i] for i in pick]
    embedder = _QueryVectors(questions, np.load(Path(args.cache) / f"queries-{args.vectors}.npy"))
    import gc

    gc.collect()
    baseline = _rss_mb()  # Python, the libraries, the query vectors: before the store is opened
    opened = time.perf_counter()
    store_class = _unquantized() if args.quant_off else EdgeStore
    store = store_class(options(Path(args.store), args.quantization, args.m, args.efc, args.ef, args.oversampling))
    store.count()
    out: dict[str, Any] = {"open_s": round(time.perf_counter() - opened, 2), "rss_before_open_mb": baseline,
                           "rss_open_mb": _rss_mb()}
    exact = EdgeStore(store.options, EdgeSearch(exact=True))
    exact._conn = store._conn  # the same shard, searched exactly over the originals
    settings = load_settings(None, top_k=K)
    fast, truth = build_retriever(settings, embedder, store), build_retriever(settings, embedder, exact)
    tenants = [f"t{i % TENANTS:02d}" for i in range(len(qs))]
    runs = [(mode, flt) for flt in ("none", "tenant") for mode in ("dense", "bm25", "hybrid")]
    got: dict[tuple[str, str], list[list[str]]] = {}
    for mode, flt in runs:
        lat, got[mode, flt] = _run(fast, store, qs, mode, tenants if flt == "tenant" else None, retriever_over,
                                   Principal)
        out[f"{mode}/{flt}"] = {"p50_ms": round(percentile(lat, 50), 2), "p95_ms": round(percentile(lat, 95), 2)}
    # memory as a service holds it, before the exact searches below read every original vector
    out["rss_after_queries_mb"] = _rss_mb()
    # anonymous memory (heap: the engine's own structures) and file pages mapped and touched (the page cache of
    # memory-mapped segments: the kernel can drop them under pressure and read them again)
    out["rss_anon_mb"] = round(_status("RssAnon") / 1024, 1)
    out["rss_file_mb"] = round(_status("RssFile") / 1024, 1)
    n = min(len(qs), args.recall)
    for mode, flt in runs:
        if mode == "bm25" or not n:
            continue
        _, want = _run(truth, exact, qs[:n], mode, tenants[:n] if flt == "tenant" else None, retriever_over,
                       Principal, warm=0)
        out[f"{mode}/{flt}"]["recall_at_10"] = round(float(np.mean(
            [len(set(a) & set(b)) / max(1, len(b)) for a, b in zip(got[mode, flt][:n], want, strict=True)])), 4)
    out["peak_rss_mb"] = round(_status("VmHWM") / 1024, 1)
    return out


def _run(retriever: HybridRetriever, store: VectorStore, qs: list[str], mode: str, tenants: list[str] | None,
         over: Callable[..., HybridRetriever], principal: type, warm: int = 20) -> tuple[list[float], list[list[str]]]:
    """Latencies (ms) and top-10 ids of each question, the first `warm` asked once before timing."""
    views: dict[str, HybridRetriever] = {}
    for q in qs[:warm]:
        retriever.retrieve(q, top_k=K, mode=mode)
    lat, ids = [], []
    for i, q in enumerate(qs):
        r = retriever
        if tenants:
            t = tenants[i]
            r = views.get(t) or views.setdefault(t, over(retriever, store.scoped(principal(tenant=t))))
        start = time.perf_counter()
        hits = r.retrieve(q, top_k=K, mode=mode)
        lat.append((time.perf_counter() - start) * 1000)
        ids.append([p.chunk_id for p in hits])
    return lat, ids


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _rss_mb() -> float:
    return round(_status("VmRSS") / 1024, 1)


# -- driver ------------------------------------------------------------------------------------------------------
def child(phase: str, args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    argv = [sys.executable, "-m", "benchmarks.scale_bench", "--phase", phase]
    for key, value in {**vars(args), **extra}.items():
        if key not in ("phase", "json", "keep", "efs", "with_quant_off") and value is not None:
            argv += [f"--{key.replace('_', '-')}", str(value)]
    res = subprocess.run(argv, capture_output=True, text=True, check=False)
    if res.returncode:
        raise RuntimeError(f"{phase} failed: {res.stderr[-3000:]}")
    return dict(json.loads(res.stdout.strip().splitlines()[-1]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tier", choices=list(TIERS), default="100k")
    p.add_argument("--vectors", choices=["combined", "minilm", "use"], default="combined")
    p.add_argument("--quantization", default="scalar", help="comma-separated: none, scalar, binary, binary2, ...")
    p.add_argument("--m", type=int, default=16)
    p.add_argument("--efc", type=int, default=100)
    p.add_argument("--ef", type=int, default=128)
    p.add_argument("--efs", default="", help="more hnsw_ef values to measure on the same build")
    p.add_argument("--oversampling", type=float, default=2.0)
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--recall", type=int, default=200, help="questions compared with exact search (0: none)")
    p.add_argument("--cache", default=str(CACHE))
    p.add_argument("--store", default=None, help="store folder (default: under --cache)")
    p.add_argument("--keep", action="store_true", help="keep the store after measuring")
    p.add_argument("--with-quant-off", action="store_true", help="also search a quantized build without its "
                   "quantized copies (quantization off, same graph)")
    p.add_argument("--quant-off", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--phase", choices=["load", "measure"], default=None)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    if args.phase:
        print(json.dumps(load(args) if args.phase == "load" else measure(args)))
        return
    info = machine()
    dataset(args.tier, args.vectors, Path(args.cache))  # built once, before anything is timed
    rows = []
    for quant in args.quantization.split(","):
        store = Path(args.store or Path(args.cache) / f"store-{args.tier}-{args.vectors}-{quant}-{args.m}-{args.efc}")
        shutil.rmtree(store, ignore_errors=True)
        loaded = child("load", args, quantization=quant, store=store)
        runs = [(args.ef, 0), *[(int(e), 0) for e in args.efs.split(",") if e]]
        if quant != "none" and args.with_quant_off:
            runs.append((args.ef, 1))
        for ef, off in runs:
            measured = child("measure", args, quantization=quant, store=store, ef=ef, quant_off=off)
            rows.append({"quantization": quant, "searched": "originals (quantization ignored)" if off else quant,
                         "m": args.m, "ef_construct": args.efc, "ef": ef, "oversampling": args.oversampling,
                         **loaded, **measured})
            print(json.dumps(rows[-1]), flush=True)
        if not args.keep:
            shutil.rmtree(store, ignore_errors=True)
    meta = json.loads((Path(args.cache) / f"points-{args.tier}-{args.vectors}.json").read_text())
    result = {"tier": args.tier, "vectors": args.vectors, "dataset": meta, "rows": rows, "queries": args.queries,
              "recall_queries": args.recall}
    name = f"scale-{args.tier}-{args.vectors}"
    write_outputs(name, finish(info), result, report(result), args.json)


def report(result: dict[str, Any]) -> str:
    head = ["quant", "m/efc/ef", "write s", "build s", "disk MB", "RSS MB (open/after/peak)"]
    modes = [f"{m}/{f}" for f in ("none", "tenant") for m in ("dense", "bm25", "hybrid")]
    table = [[r["quantization"], f"{r['m']}/{r['ef_construct']}/{r['ef']}", r["write_s"], r["build_s"],
              r["disk_mb"], f"{r['rss_open_mb']}/{r['rss_after_queries_mb']}/{r['peak_rss_mb']}"]
             for r in rows_of(result)]
    lat = [[r["searched"], r["ef"], *[_cell(r[m]) for m in modes]] for r in rows_of(result)]
    return (f"Tier {result['tier']}, vectors {result['vectors']} ({result['dataset']}), {result['queries']} real "
            f"questions timed, {result['recall_queries']} compared with exact search.\n\n"
            + markdown_table(head, table) + "\n\np50 / p95 ms, recall@10 against exact (tenant: a 1 % filter)\n\n"
            + markdown_table(["searched", "ef", *modes], lat))


def rows_of(result: dict[str, Any]) -> list[dict[str, Any]]:
    return list(result["rows"])


def _cell(row: dict[str, Any]) -> str:
    recall = f", R {row['recall_at_10']:.3f}" if "recall_at_10" in row else ""
    return f"{row['p50_ms']:.1f} / {row['p95_ms']:.1f}{recall}"


if __name__ == "__main__":
    os.environ.setdefault("GERMAN_RAG_LOG_LEVEL", "WARNING")
    main()
