"""Congruence: the same writes and queries on qdrant-client's local mode and on qdrant-edge give the same results.

Dense search on the edge engine runs with `exact=True` here, so both engines rank by the full cosine scan and
ids and order can be compared exactly (segments are plain until `optimize()` anyway). Points with equal scores
(BM25 and RRF produce ties) may come back in either order, so rankings are compared per tie group.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re

import numpy as np
import pytest
from pydantic import ValidationError

from ingest.schema import Chunk, StoreError, make_chunk_id, sha256_text
from ingest.sparse import SparseEncoder
from ingest.store.base import StoreOptions, VectorStore
from ingest.store.edge import EdgeSearch, EdgeStore
from ingest.store.qdrant import QdrantStore
from pipelines.build import build_store
from pipelines.cli.main import main
from pipelines.config import Settings

DIM = 16
ENCODER = SparseEncoder()


def unit_vector(text: str, dim: int = DIM) -> list[float]:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
    v = np.random.default_rng(seed).normal(size=dim)
    return (v / np.linalg.norm(v)).tolist()


def german_sentences(fixtures, n: int) -> list[str]:
    """Real German sentences (the XQuAD paragraphs in the fixtures), deduplicated, in file order."""
    out: list[str] = []
    squad = json.loads((fixtures / "xquad-de/xquad.de.json").read_text(encoding="utf-8"))
    for paragraph in (p for article in squad["data"] for p in article["paragraphs"]):
        for sent in re.split(r"(?<=[.!?])\s+", paragraph["context"]):
            if 40 <= len(sent) <= 300 and sent not in out:
                out.append(sent)
        if len(out) >= n:
            return out[:n]
    raise AssertionError(f"the fixtures hold only {len(out)} sentences of 40 to 300 characters, {n} needed")


def make_chunks(source: str, doc_id: str, texts: list[str], page: int | None = 1) -> list[Chunk]:
    out, offset = [], 0
    for i, t in enumerate(texts):
        out.append(Chunk(make_chunk_id(doc_id, offset, offset + len(t)), doc_id, source, t, offset,
                         offset + len(t), i, page, ("Teil", f"Abschnitt {i % 3}"), sha256_text(t), len(t) // 5))
        offset += len(t) + 1
    return out


def write(store: VectorStore, source: str, doc_id: str, texts: list[str], page: int | None = 1) -> int:
    sparse = [SPARSE_CACHE.get(t) or SPARSE_CACHE.setdefault(t, ENCODER.encode_document(t)) for t in texts]
    return store.upsert_chunks(make_chunks(source, doc_id, texts, page), [unit_vector(t) for t in texts],
                               sparse, doc_hash=f"hash-{doc_id}")


def groups(hits) -> list[tuple[float, frozenset[str]]]:
    """Hits as (score, ids) groups of equal score (to 1e-5 relative), in rank order."""
    out: list[tuple[float, set[str]]] = []
    for h in hits:
        if out and abs(out[-1][0] - h.score) <= 1e-5 * max(1.0, abs(h.score)):
            out[-1][1].add(h.chunk_id)
        else:
            out.append((h.score, {h.chunk_id}))
    return [(s, frozenset(ids)) for s, ids in out]


def assert_same_ranking(local, edge) -> None:
    assert len(local) == len(edge)
    a, b = groups(local), groups(edge)
    assert len(a) == len(b), (a, b)
    for i, ((sa, ia), (sb, ib)) in enumerate(zip(a, b, strict=True)):
        assert sa == pytest.approx(sb, rel=1e-4, abs=1e-6)
        if i < len(a) - 1:  # the last group may be cut by top_k: only its size must agree
            assert ia == ib
        else:
            assert len(ia) == len(ib)
    by_id = {h.chunk_id: h.payload for h in local}
    for h in edge:
        if h.chunk_id in by_id:
            assert {k: v for k, v in h.payload.items() if k != "ingested_at"} == \
                   {k: v for k, v in by_id[h.chunk_id].items() if k != "ingested_at"}


@pytest.fixture(scope="module")
def texts(fixtures) -> list[str]:
    return german_sentences(fixtures, 120)


SPARSE_CACHE: dict[str, tuple[list[int], list[float]]] = {}


def open_engines(root, texts):
    """Both engines with the same four documents (c.txt in two versions, as during a re-ingest)."""
    local = QdrantStore(StoreOptions(collection="c", path=str(root / "local")))
    # float32 on both sides (local mode has no other): scores can be compared exactly
    edge = EdgeStore(StoreOptions(collection="c", path=str(root / "edge"), vector_datatype="float32"),
                     EdgeSearch(exact=True))
    for store in (local, edge):
        store.ensure_collection("modell", DIM)
        write(store, "a.txt", "a1", texts[:40])
        write(store, "b.txt", "b1", texts[40:80], page=None)
        write(store, "c.txt", "c1", texts[80:110])
        write(store, "c.txt", "c2", texts[110:120])
    return local, edge


@pytest.fixture(scope="module")
def engines(tmp_path_factory, texts):
    """Read-only tests share one pair of stores."""
    local, edge = open_engines(tmp_path_factory.mktemp("engines"), texts)
    yield local, edge
    local.close()
    edge.close()


@pytest.fixture()
def fresh_engines(tmp_path, texts):
    local, edge = open_engines(tmp_path, texts)
    yield local, edge
    local.close()
    edge.close()


# On this corpus the second to fourth have BM25 ties among their hits, the others none (see test_hybrid_agrees);
# the first also finds the last document (c2), which the delete test keeps.
QUERIES = ["Komplexität Problem Algorithmus Zeit", "Fußball Spiel Trainer Mannschaft", "Normannen Normandie Herzog",
           "Unternehmen Umsatz Gewinn Prozent Jahr", "Super Bowl Spiel Mannschaft Broncos", "Warschau Stadt Weichsel",
           "Tesla Strom Erfindung", "Kalifornien Stadt Los Angeles"]
FILTERS = [None, {"source": "a.txt"}, {"source": ["b.txt", "c.txt"]}, {"page": 1}, {"doc_id": "c2"},
           {"heading_path": "Abschnitt 1"}, {"chunk_index": [0, 1, 2, 3]}]


def test_both_engines_satisfy_the_protocol(engines):
    assert all(isinstance(s, VectorStore) for s in engines)


@pytest.mark.parametrize("flt", FILTERS, ids=str)
def test_dense_and_sparse_agree(engines, flt):
    local, edge = engines
    for q in QUERIES:
        assert_same_ranking(local.search_dense(unit_vector(q), 10, flt), edge.search_dense(unit_vector(q), 10, flt))
        idx, val = ENCODER.encode_query(q)
        sl, se = local.search_sparse(idx, val, 10, flt), edge.search_sparse(idx, val, 10, flt)
        assert_same_ranking(sl, se)
        assert sl or flt  # the BM25 leg finds something for every query without a filter


def qdrant_rrf(legs, k: int, weights) -> dict[str, float]:
    """Qdrant's RRF (qdrant_client/hybrid/fusion.py, segment's score_fusion): a point at 0-based position
    `pos` of leg i gets 1 / ((pos + 1) / w_i + k - 1). Note: this is 1/(k + rank - 1), not retrieval.fusion.rrf's
    w/(k + rank); the two differ by one in k and in how a weight acts."""
    out: dict[str, float] = {}
    for i, leg in enumerate(legs):
        w = weights[i] if weights else 1.0
        for pos, h in enumerate(leg):
            out[h.chunk_id] = out.get(h.chunk_id, 0.0) + 1.0 / ((pos + 1) / w + k - 1)
    return out


def qdrant_dbsf(legs) -> dict[str, float]:
    """Qdrant's DBSF: each leg mapped by mean +- 3 sample std to [0, 1] (not clipped), summed per point."""
    out: dict[str, float] = {}
    for leg in legs:
        v = np.array([h.score for h in leg])
        std = v.std(ddof=1) if len(v) > 1 else 0.0
        lo, hi = v.mean() - 3 * std, v.mean() + 3 * std
        for h in leg:  # one point, or all scores equal: 0.5 each
            out[h.chunk_id] = out.get(h.chunk_id, 0.0) + ((h.score - lo) / (hi - lo) if std > 0 else 0.5)
    return out


def reference_fusion(store, dense, sparse, flt, fusion, weights, candidates) -> dict[str, float]:
    """The engine's own two legs fused by Qdrant's definitions."""
    legs = [store.search_dense(dense, candidates, flt), store.search_sparse(*sparse, candidates, flt)]
    legs = [leg for leg in legs if leg]
    w = list(weights) if weights and len(legs) == 2 else None
    return qdrant_dbsf(legs) if fusion == "dbsf" else qdrant_rrf(legs, 20, w)


def tie_free(hits) -> bool:
    return all(len(ids) == 1 for _, ids in groups(hits))


@pytest.mark.parametrize("fusion,weights", [("rrf", None), ("rrf", (1.0, 2.5)), ("dbsf", None)])
@pytest.mark.parametrize("flt", [None, {"source": ["a.txt", "c.txt"]}], ids=str)
def test_hybrid_agrees(engines, fusion, weights, flt):
    """Each engine fuses its own legs exactly as Qdrant defines RRF/DBSF; across engines the fused ranking
    is the same wherever the legs have no ties (RRF ranks inside a tie group are engine order)."""
    local, edge = engines
    compared = 0
    for q in QUERIES:
        dense, sparse = unit_vector(q), ENCODER.encode_query(q)
        # candidates cover the corpus, so no leg is cut inside a tie group before fusion
        kw = {"filters": flt, "fusion": fusion, "rrf_k": 20, "weights": weights, "candidates": 200}
        fused = {s: s.search_hybrid(dense, sparse, 15, **kw) for s in engines}
        for store, hits in fused.items():
            ref = reference_fusion(store, dense, sparse, flt, fusion, weights, 200)
            assert len(hits) == 15
            for h in hits:
                assert h.score == pytest.approx(ref[h.chunk_id], rel=1e-4)
            assert groups(hits)[0][0] == pytest.approx(max(ref.values()), rel=1e-4)
        if fusion == "dbsf" or tie_free(local.search_sparse(*sparse, 200, flt)):
            assert_same_ranking(fused[local], fused[edge])
            compared += 1
    assert compared >= 4


def test_counts_states_sources_and_deletes_agree(fresh_engines, texts):
    local, edge = fresh_engines

    def snapshot(s):
        return (s.count(), s.count({"source": "c.txt"}), s.count({"page": 1}), s.doc_state("c.txt"),
                s.sources(), sorted(p["chunk_index"] for p in s.fetch_chunks("a1", [0, 5, 39, 77])))

    assert snapshot(local) == snapshot(edge)
    assert local.count() == 120 and local.doc_state("c.txt").complete("c2")
    many = ["c.txt", "a.txt", "nie.txt", "b.txt", "c.txt"]  # duplicates and an unknown source too
    for s in fresh_engines:  # the batched lookup of triage equals one lookup per source
        assert s.doc_states(many) == {src: s.doc_state(src) for src in many}
        assert s.doc_states(many)["nie.txt"].present == {} and s.doc_states(many)["c.txt"].present == {"c1": 30,
                                                                                                     "c2": 10}
    assert write(edge, "a.txt", "a1", texts[:40]) == 40  # idempotent: same ids, nothing added
    assert snapshot(local) == snapshot(edge)
    assert [s.delete_stale("c.txt", "c2") for s in fresh_engines] == [30, 30]
    assert snapshot(local) == snapshot(edge)
    assert [s.delete_doc("b1") for s in fresh_engines] == [40, 40]
    assert [s.delete_source("a.txt") for s in fresh_engines] == [40, 40]
    assert [s.delete_source("a.txt") for s in fresh_engines] == [0, 0]
    assert snapshot(local) == snapshot(edge) and edge.count() == 10


def test_float16_vectors_rank_like_float32(tmp_path, texts):
    """The edge default stores float16: scores within 2e-3 of float32, the same top 5 unless a near-tie."""
    local = QdrantStore(StoreOptions(collection="h", path=str(tmp_path / "l")))
    half = EdgeStore(StoreOptions(collection="h", path=str(tmp_path / "e")), EdgeSearch(exact=True))
    try:
        for store in (local, half):
            store.ensure_collection("modell", DIM)
            write(store, "a.txt", "a1", texts[:120])
        for q in texts[:120:7]:
            ref, got = local.search_dense(unit_vector(q + "?"), 6), half.search_dense(unit_vector(q + "?"), 6)
            scores = {h.chunk_id: h.score for h in ref}
            assert all(abs(h.score - scores.get(h.chunk_id, h.score)) < 2e-3 for h in got)
            if ref[4].score - ref[5].score > 4e-3:
                assert {h.chunk_id for h in ref[:5]} == {h.chunk_id for h in got[:5]}
    finally:
        local.close()
        half.close()


def test_edge_persists_reopens_and_checks_the_model(tmp_path, texts):
    opts = StoreOptions(collection="p", path=str(tmp_path / "q"))
    store = EdgeStore(opts)
    assert not store.exists()
    with pytest.raises(StoreError, match=r"'p' does not exist at edge:.*ingest first"):
        store.require_collection()
    store.ensure_collection("modell", DIM)
    write(store, "a.txt", "a1", texts[:20])
    before = store.search_dense(unit_vector(texts[3]), 3)
    store.close()
    again = EdgeStore(opts)
    assert again.metadata() == {"embed_model": "modell", "dimension": DIM, "schema_version": 1, "engine": "edge",
                                "index": {"hnsw_m": 16, "hnsw_ef_construct": 100, "quantization": "scalar"}}
    assert again.count() == 20 and again.search_dense(unit_vector(texts[3]), 3) == before
    assert before[0].payload["text"] == texts[3] and before[0].score == pytest.approx(1.0, abs=2e-3)  # float16
    with pytest.raises(StoreError, match=r"built with model 'modell' \(16-d vectors\).*'anderes' \(8-d\)"):
        again.ensure_collection("anderes", 8)
    again.close()


def _try_open(path: str, queue) -> None:
    try:
        EdgeStore(StoreOptions(collection="p", path=path)).count()
        queue.put("opened")
    except StoreError as exc:
        queue.put(str(exc))


def test_edge_path_in_use_by_another_process(tmp_path):
    path = str(tmp_path / "q")
    first = EdgeStore(StoreOptions(collection="p", path=path))
    first.ensure_collection("modell", DIM)
    queue = multiprocessing.get_context("spawn").Queue()
    proc = multiprocessing.get_context("spawn").Process(target=_try_open, args=(path, queue))
    proc.start()
    proc.join(60)
    assert "in use by another process" in queue.get(timeout=5)
    second = EdgeStore(StoreOptions(collection="p", path=path))  # a second handle in this process too
    with pytest.raises(StoreError, match="in use by another process"):
        second.exists()
    first.close()
    assert second.exists() and second.count() == 0  # free again once the first one closed
    second.close()


def _write_and_die(path: str, texts: list[str]) -> None:
    store = EdgeStore(StoreOptions(collection="p", path=path))
    store.ensure_collection("modell", DIM)
    write(store, "a.txt", "a1", texts)
    store.delete_doc("nichts")
    os._exit(0)  # no close(), no flush: what a killed ingest leaves behind


def test_edge_writes_survive_a_process_that_dies_without_close(tmp_path, texts):
    path = str(tmp_path / "q")
    proc = multiprocessing.get_context("spawn").Process(target=_write_and_die, args=(path, texts[:30]))
    proc.start()
    proc.join(60)
    store = EdgeStore(StoreOptions(collection="p", path=path))
    assert store.count() == 30 and store.doc_state("a.txt").complete("a1")
    scanned = list(store.scan(["text"], vectors=True))
    assert len(scanned) == 30 and all(len(v) == DIM for _, _, v in scanned)
    assert {p["text"] for _, p, _ in scanned} == set(texts[:30])
    store.close()


def test_edge_needs_a_path():
    with pytest.raises(StoreError, match="needs an embedded path"):
        EdgeStore(StoreOptions(collection="p", path=None, url="http://127.0.0.1:6333"))


def test_build_store_picks_the_engine(tmp_path):
    base = {"qdrant_path": str(tmp_path / "q"), "embed_model": "m"}
    assert isinstance(build_store(Settings(**base)), EdgeStore)  # Qdrant's engine in-process is the default
    assert isinstance(build_store(Settings(**base, qdrant_engine="local")), QdrantStore)
    server = build_store(Settings(**base, qdrant_engine="edge", qdrant_url="http://127.0.0.1:6333"))
    assert isinstance(server, QdrantStore) and server.location == "http://127.0.0.1:6333"  # a URL means a server
    with pytest.raises(ValidationError, match="qdrant_engine"):
        Settings(**base, qdrant_engine="rocksdb")


def test_cli_ingest_and_query_on_edge(capsys, settings_env, fixtures, monkeypatch):
    monkeypatch.setenv("GERMAN_RAG_QDRANT_ENGINE", "edge")
    folder = settings_env / "docs"
    folder.mkdir()
    (folder / "burlg.md").write_text((fixtures / "gesetze/b/burlg/index.md").read_text(encoding="utf-8"))
    (folder / "notiz.txt").write_text("Der Betriebsrat trifft sich montags um 9 Uhr.", encoding="utf-8")
    assert main(["ingest", str(folder), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["balanced"] and report["ingested"] == 2 and report["chunks"] == report["points_written"]
    assert (settings_env / "qdrant/edge/german_rag/collection.json").is_file()
    assert main(["query", "Wann trifft sich der Betriebsrat?", "--mode", "bm25", "--top-k", "1", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["passages"][0]["text"] == "Der Betriebsrat trifft sich montags um 9 Uhr."
    assert main(["query", "Urlaub Werktage", "--top-k", "3", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["passages"]) == 3
    assert main(["ingest", str(folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["unchanged"] == 2
    assert main(["delete", str(folder / "notiz.txt"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["points_deleted"] == 1
