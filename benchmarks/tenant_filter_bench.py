"""The access filter's cost (#12): hybrid p50 over N chunks of T tenants, unfiltered against scoped to one tenant.

The same corpus as store_engines_bench (German 60-word windows with BM25 sparse vectors, 1024-d hash-seeded
random unit vectors: speed only) in documents of DOC_CHUNKS chunks; every document gets a random tenant of
T (`mandant-000` ...) and, half of them, one of GROUPS. Queries run as:

- `owner`: the local owner, no filter (what every query cost before #12);
- `tenant`: a random tenant with every group (the filter `tenant = T`: a tenant's ingest runs);
- `tenant+groups`: a random tenant and one random group (`tenant = T AND (groups empty OR groups ∋ g)`: a
  user's query, the filter every scoped read carries).

Stores: `edge` (the default engine, payload indexes on every filter field as ensure_collection makes them),
`edge-noindex` (the same engine with the payload indexes dropped: what the index is worth) and, opt-in,
`local` (qdrant-client's local mode, which has no payload indexes; slow to build beyond 10k). Variants take
turns query by query inside a round, stores round by round.

    .venv/bin/python -m benchmarks.tenant_filter_bench                      # 100k chunks, 100 tenants, edge
    .venv/bin/python -m benchmarks.tenant_filter_bench --points 10000 --stores edge local
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.common import finish, machine, markdown_table, percentile, write_outputs
from benchmarks.store_engines_bench import (
    BATCH,
    MODES,
    dense_vector,
    in_child,
    questions,
    rss_mib,
    search,
    unique_windows,
)
from ingest.schema import FILTER_FIELDS, Access, Chunk, make_chunk_id, sha256_text
from ingest.sparse import SparseEncoder
from ingest.store.access import OWNER, Principal
from ingest.store.base import StoreOptions
from ingest.store.qdrant import QdrantStore

if TYPE_CHECKING:
    from ingest.store.edge import EdgeStore

    Store = EdgeStore | QdrantStore

STORES = ("edge", "edge-noindex", "local")
VARIANTS = ("owner", "tenant", "tenant+groups")
GROUPS = ("hr", "vertrieb", "recht", "einkauf")
DOC_CHUNKS = 32  # chunks per document: 100k chunks are 3,125 documents, about 31 per tenant of 100


def open_store(kind: str, path: Path) -> Store:
    opts = StoreOptions(collection="bench", path=str(path), batch_size=BATCH)
    if kind.startswith("edge"):
        from ingest.store.edge import EdgeStore

        return EdgeStore(opts)
    return QdrantStore(opts)


def doc_access(doc: int, tenants: int) -> Access:
    """A document's random (seeded by its number) tenant, and for half of them one group."""
    rng = random.Random(doc)
    tenant = f"mandant-{rng.randrange(tenants):03d}"
    return Access(tenant, (rng.choice(GROUPS),) if rng.random() < 0.5 else ())


def corpus(n: int, tenants: int, windows: list[str], sparse) -> Iterator[tuple[list[Chunk], list, list, Access]]:
    for start in range(0, n, DOC_CHUNKS):
        doc = start // DOC_CHUNKS
        doc_id = f"doc-{doc:06d}"
        chunks, vectors, sparses = [], [], []
        for j, i in enumerate(range(start, min(n, start + DOC_CHUNKS))):
            text = windows[i % len(windows)]
            cid = make_chunk_id(doc_id, j * 1000, j * 1000 + len(text))
            chunks.append(Chunk(cid, doc_id, f"quelle-{doc:05d}.txt", text, j * 1000, j * 1000 + len(text), j, 1,
                                ("Teil", f"Abschnitt {j % 7}"), sha256_text(text), 60))
            vectors.append(dense_vector(cid, 1024).tolist())
            sparses.append(sparse[i % len(windows)])
        yield chunks, vectors, sparses, doc_access(doc, tenants)


def build(kind: str, path: Path, n: int, tenants: int, windows, sparse, out) -> None:
    """Child process: create and fill one store (for `edge-noindex`, drop the payload indexes first)."""
    store = open_store(kind, path)
    store.ensure_collection("bench-model", 1024)
    if kind == "edge-noindex":
        import qdrant_edge as qe

        from ingest.store.edge import EdgeStore

        assert isinstance(store, EdgeStore)
        for key in FILTER_FIELDS:
            store.shard.update(qe.UpdateOperation.delete_field_index(key))
    started = time.perf_counter()
    for chunks, vectors, sparses, access in corpus(n, tenants, windows, sparse):
        store.upsert_chunks(chunks, vectors, sparses, doc_hash="h", access=access)
    seconds = time.perf_counter() - started
    store.close()
    out.put({"upsert_s": seconds, "points_per_s": n / seconds, "build_peak_rss_mib": rss_mib()})


def principal(variant: str, rng: random.Random, tenants: int) -> Principal:
    if variant == "owner":
        return OWNER
    tenant = f"mandant-{rng.randrange(tenants):03d}"
    if variant == "tenant":
        return Principal(tenant, every_group=True)
    return Principal(tenant, frozenset({rng.choice(GROUPS)}))


def check_scoped(store: Store, who: Principal, hits) -> None:
    """Every hit of a scoped query is the principal's (a benchmark that measured a leak would be worthless)."""
    for h in hits:
        if who.tenant is not None and (h.payload.get("tenant") != who.tenant or
                                       (h.payload.get("groups") and not who.every_group
                                        and not set(h.payload["groups"]) & who.groups)):
            raise AssertionError(f"{h.chunk_id} of {h.payload.get('tenant')!r} answered {who}")


def latencies(paths: dict[str, Path], queries, tenants: int, rounds: int) -> dict:
    """p50/p99 per store, variant and mode; each query runs as every variant in turn (a fresh random tenant)."""
    stores = {k: open_store(k, p) for k, p in paths.items()}
    times: dict = {k: {v: {m: [] for m in MODES} for v in VARIANTS} for k in stores}
    hits: dict = {k: {v: [] for v in VARIANTS} for k in stores}
    rng = random.Random(12)
    for _ in range(rounds):
        for k, store in stores.items():
            search(store, "hybrid", *queries[-1])  # warm-up, not counted
            for dense, sp in queries:
                for variant in VARIANTS:
                    who = principal(variant, rng, tenants)
                    view = store.scoped(who)
                    for mode in MODES:
                        t = time.perf_counter()
                        search(view, mode, dense, sp)
                        times[k][variant][mode].append((time.perf_counter() - t) * 1000)
                    found = view.search_hybrid(dense, sp, 10, candidates=50)
                    check_scoped(store, who, found)
                    hits[k][variant].append(len(found))
    for s in stores.values():
        s.close()
    return {k: {v: {m: {"p50_ms": percentile(x, 50), "p99_ms": percentile(x, 99), "n": len(x)}
                    for m, x in per_mode.items()} | {"mean_hybrid_hits": sum(hits[k][v]) / len(hits[k][v])}
                for v, per_mode in per_variant.items()} for k, per_variant in times.items()}


def table(result: dict) -> str:
    rows = []
    for kind, per_variant in result["query"].items():
        base = per_variant["owner"]["hybrid"]["p50_ms"]
        for variant, q in per_variant.items():
            rows.append([kind, variant, *(f"{q[m]['p50_ms']:.1f} / {q[m]['p99_ms']:.1f}" for m in MODES),
                         f"{q['hybrid']['p50_ms'] / base:.2f}", f"{q['mean_hybrid_hits']:.1f}"])
    return markdown_table(["store", "reader", "dense p50 / p99 ms", "bm25 p50 / p99 ms", "hybrid p50 / p99 ms",
                           "hybrid p50 / owner's", "hybrid hits (top 10)"], rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--tenants", type=int, default=100)
    ap.add_argument("--queries", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--stores", nargs="+", choices=STORES, default=["edge", "edge-noindex"])
    ap.add_argument("--json", help="output JSON path (default docs/bench/tenant_filter-<machine>.json)")
    args = ap.parse_args(argv)
    info = machine()
    windows = unique_windows()[: args.points]
    encoder = SparseEncoder()
    sparse = encoder.encode_documents(windows)
    queries = [(dense_vector(q, 1024).tolist(), encoder.encode_query(q)) for q in questions(args.queries)]
    result: dict = {"points": args.points, "tenants": args.tenants, "queries": len(queries), "rounds": args.rounds}
    with tempfile.TemporaryDirectory(prefix="tenant-filter-") as tmp:
        paths = {k: Path(tmp) / k for k in args.stores}
        result["build"] = {}
        for k, p in paths.items():
            result["build"][k] = in_child(build, k, p, args.points, args.tenants, windows, sparse)
            print(f"  built {k}: {result['build'][k]}", flush=True)
        result["query"] = latencies(paths, queries, args.tenants, args.rounds)
        for p in paths.values():
            shutil.rmtree(p, ignore_errors=True)
    finish(info)
    md = table(result) + (
        f"\n\n{args.points:,} chunks in documents of {DOC_CHUNKS}, each document a random tenant of {args.tenants} "
        f"and half of them one of {len(GROUPS)} groups; {len(queries)} xquad-de questions x {args.rounds} rounds, "
        "each query as the owner (no filter), as a random tenant with every group (`tenant = T`) and as a random "
        "tenant with one group (`tenant = T AND (groups empty OR g)`), in turn. Top 10, hybrid = dense + bm25 "
        "prefetch (50 each) fused by RRF in the engine, both prefetches filtered; search time only (the query's "
        "sparse vector encoded beforehand, 1024-d hash-seeded random vectors). Edge without optimize() (plain "
        "segments: exact scoring). `edge-noindex`: the payload indexes dropped after creation. Every scoped hit "
        "was checked to be the reader's.\n")
    path = write_outputs("tenant_filter", info, result, md, args.json)
    print(md)
    print(f"wrote {path} and {path.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
