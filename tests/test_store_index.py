"""The index lifecycle on the edge engine: `optimize()` builds HNSW and quantized copies in a child process, exact
queries keep their results, HNSW ones stay within the measured recall, a quantized collection survives a reopen,
compact() on an indexed collection keeps its graph, and ingest/sync build it past `optimize_threshold`.

Vectors: 64-d points around 40 random centres (clustered like embeddings, unlike uniform noise, on which HNSW's
recall is a worst case); the segments are indexed from 10 KB of vectors (`indexing_threshold_kb`) so a few
thousand points get a graph. Recall on real German embeddings is measured by benchmarks/scale_bench.py.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import numpy as np
import pytest

from ingest.schema import Chunk, make_chunk_id, sha256_text
from ingest.store import edge_index as index_module
from ingest.store.base import IndexOptions, OptimizeProgress, StoreOptions
from ingest.store.edge import EdgeSearch, EdgeStore

N, DIM = 3000, 64


def vectors(n: int = N, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((40, DIM))
    x = centres[rng.integers(0, 40, n)] + 0.5 * rng.standard_normal((n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def chunks(n: int, source: str) -> list[Chunk]:
    doc = sha256_text(source)[:16]
    out = []
    for i in range(n):
        text = f"Abschnitt {i} der Quelle {source}: Urlaub, Kündigung und Arbeitszeit."
        start = i * 100
        out.append(Chunk(chunk_id=make_chunk_id(doc, start, start + len(text)), doc_id=doc, source=source,
                         text=text, start=start, end=start + len(text), index=i, page=None, heading_path=(),
                         content_hash=sha256_text(text), token_count=12))
    return out


def make_store(tmp_path, quantization: str = "scalar", **kw) -> EdgeStore:
    index = IndexOptions(quantization=quantization, indexing_threshold_kb=10, **kw)
    store = EdgeStore(StoreOptions(collection="idx", path=str(tmp_path / "q"), index=index))
    store.ensure_collection("test-model", DIM)
    return store


def fill(store: EdgeStore, x: np.ndarray, docs: int = 6, name: str = "doc") -> None:
    per = len(x) // docs
    for d in range(docs):
        part = x[d * per:(d + 1) * per]
        store.upsert_chunks(chunks(len(part), f"{name}{d}.txt"), part.tolist(), doc_hash=f"{name}{d}")


def top_ids(store: EdgeStore, queries: np.ndarray, k: int = 10) -> list[list[str]]:
    return [[h.chunk_id for h in store.search_dense(q.tolist(), k)] for q in queries]


def exact_view(store: EdgeStore) -> EdgeStore:
    view = EdgeStore(store.options, EdgeSearch(exact=True))
    view._conn = store._conn  # the same open shard: only the search mode differs
    return view


@pytest.mark.parametrize("quantization", ["none", "scalar"])
def test_optimize_builds_the_index_and_exact_queries_keep_their_results(tmp_path, quantization):
    store = make_store(tmp_path, quantization)
    x = vectors()
    fill(store, x)
    queries = vectors(30, seed=1)
    before = top_ids(exact_view(store), queries)
    state = store.index_state()
    assert (state.points, state.indexed) == (N, 0)
    assert store.optimize() is True
    after = store.index_state()
    assert after.points == N and after.indexed == N
    assert top_ids(exact_view(store), queries) == before  # exact mode: the originals, unchanged
    hnsw = top_ids(store, queries)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(hnsw, before, strict=True)])
    assert recall >= 0.95  # scale_bench measures >= 0.98 on real embeddings at the defaults
    store.close()


def test_a_quantized_collection_round_trips_through_reopen(tmp_path):
    store = make_store(tmp_path, "scalar")
    fill(store, vectors())
    store.optimize()
    queries = vectors(20, seed=2)
    first = [[(h.chunk_id, round(h.score, 5)) for h in store.search_dense(q.tolist(), 10)] for q in queries]
    options = store.options
    store.close()
    # quantized copies were built, beside the originals
    assert list((tmp_path / "q").rglob("quantized.data"))
    assert json.loads((tmp_path / "q" / "edge" / "idx" / "collection.json").read_text())["index"] == {
        "hnsw_m": 16, "hnsw_ef_construct": 100, "quantization": "scalar"}
    # a reopen with other settings keeps the collection's own (fixed at creation)
    reopened = EdgeStore(StoreOptions(collection="idx", path=options.path,
                                      index=IndexOptions(quantization="none", indexing_threshold_kb=10)))
    assert reopened._index["quantization"] == "scalar"
    again = [[(h.chunk_id, round(h.score, 5)) for h in reopened.search_dense(q.tolist(), 10)] for q in queries]
    assert again == first
    assert reopened.index_state().indexed == N
    reopened.close()


def test_progress_is_reported_and_the_next_build_has_an_estimate(tmp_path, monkeypatch):
    monkeypatch.setattr(index_module, "_POLL_S", 0.005)
    store = make_store(tmp_path, "scalar")
    fill(store, vectors())
    seen: list[OptimizeProgress] = []
    store.optimize(seen.append)
    assert seen and seen[0].points == N and seen[0].estimate_s is None  # no earlier build to time by
    assert all(b.elapsed_s >= a.elapsed_s for a, b in itertools.pairwise(seen))
    store.update_metadata({"hnsw_build_points_per_s": 1000.0})
    fill(store, vectors(1200, seed=3), docs=2, name="new")  # new documents: points outside the index
    assert store.index_state().unindexed == 1200
    later: list[OptimizeProgress] = []
    store.optimize(later.append)
    assert later and later[0].estimate_s is not None and later[0].estimate_s > 0
    store.close()


def test_compact_on_an_indexed_collection_keeps_the_graph(tmp_path):
    store = make_store(tmp_path, "none")
    fill(store, vectors())
    store.optimize()
    assert store.delete_source("doc0.txt") == N // 6
    assert store.compact() is False  # under 20 % deleted: no segment is rebuilt, so none loses its graph
    state = store.index_state()
    assert state.points == N - N // 6 and state.indexed == state.points
    assert store.search_dense(vectors(1, seed=4)[0].tolist(), 5)
    assert store.delete_source("doc1.txt") + store.delete_source("doc2.txt") == 2 * (N // 6)
    assert store.compact() is True  # now over 20 %: the segment is vacuumed in this process, and comes back plain
    state = store.index_state()
    assert state.unindexed == state.points  # so a rebuild is due
    store.close()


def test_updated_points_count_as_outside_the_index_until_the_next_build(tmp_path):
    store = make_store(tmp_path, "scalar")
    fill(store, vectors())
    store.optimize()
    assert store.index_state().unindexed == 0
    fresh = vectors(N // 6, seed=8)  # doc0 again, new vectors: the same ids, the new copies in a plain segment
    store.upsert_chunks(chunks(len(fresh), "doc0.txt"), fresh.tolist(), doc_hash="h0b")
    state = store.index_state()
    assert state.points == N and state.unindexed == N // 6
    options = store.options
    store.close()  # the count survives a reopen
    again = EdgeStore(options)
    assert again.index_state().unindexed == N // 6
    again.optimize()
    assert again.index_state().unindexed == 0
    again.close()


def test_a_failed_build_is_a_store_error_and_the_store_stays_usable(tmp_path, monkeypatch):
    store = make_store(tmp_path, "none")
    fill(store, vectors(600, seed=5), docs=2)
    real_popen = subprocess.Popen

    def broken(cmd, **kw):  # the child runs, and fails, for real: a module that does not exist
        return real_popen([sys.executable, "-m", "ingest.store.no_such_module"], **kw)

    monkeypatch.setattr(index_module.subprocess, "Popen", broken)
    from ingest.schema import StoreError

    with pytest.raises(StoreError, match="building the index"):
        store.optimize()
    assert store.count() == 600 and store.search_dense(vectors(1)[0].tolist(), 3)
    store.close()


def _cli(capsys, *args: str) -> tuple[int, dict]:
    from pipelines.cli.main import main

    code = main([*args, "--json"])
    out, _ = capsys.readouterr()
    return code, json.loads(out)


def test_ingest_and_sync_build_the_index_past_the_threshold_unless_told_not_to(capsys, settings_env,
                                                                              monkeypatch):
    docs = settings_env / "docs"
    docs.mkdir()
    sentence = "Der Urlaub beträgt {} Werktage, die Kündigungsfrist {} Wochen zum Monatsende. "
    for i in range(4):
        text = "".join(sentence.format(20 + i + j, 2 + j) for j in range(12))
        (docs / f"t{i}.txt").write_text(text, encoding="utf-8")
    # 16-token chunks of the tiny model (32-d): a few dozen points, over a 1 KB segment threshold
    monkeypatch.setenv("GERMAN_RAG_CHUNK_TOKENS", "16")
    monkeypatch.setenv("GERMAN_RAG_CHUNK_OVERLAP", "0")
    monkeypatch.setenv("GERMAN_RAG_INDEXING_THRESHOLD_KB", "1")
    monkeypatch.setenv("GERMAN_RAG_OPTIMIZE_THRESHOLD", "10")
    code, report = _cli(capsys, "ingest", str(docs), "--no-optimize")
    points = report["points_written"]
    assert code == 0 and report["index"] is None and points >= 20
    code, report = _cli(capsys, "ingest", str(docs))  # nothing new to write, but every point outside the index
    assert code == 0 and report["index"]["before"]["indexed"] == 0
    assert report["index"]["after"]["indexed"] == report["index"]["after"]["points"] == points
    (docs / "t4.txt").write_text("Die Arbeitszeit darf acht Stunden nicht überschreiten.\n", encoding="utf-8")
    code, report = _cli(capsys, "sync", str(docs))  # 1 new point: under the threshold of 10
    assert code == 0 and report["index"] is None and report["ingested"] == 1
    code, built = _cli(capsys, "optimize")
    assert code == 0 and built["after"]["points"] == points + 1 and built["before"]["indexed"] == points
    # counted as indexed: built as far as it goes (a segment under the 1 KB threshold stays an exact scan)
    assert built["after"]["indexed"] == points + 1
