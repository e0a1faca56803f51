import hashlib

import numpy as np
import pytest

from ingest.schema import Chunk, StoreError, make_chunk_id, sha256_text
from ingest.store.base import StoreOptions
from ingest.store.filters import build_filter
from ingest.store.qdrant import QdrantStore


def unit_vector(text: str, dim: int = 8) -> list[float]:
    """A hash-seeded unit vector: a fair fast double that never ties (STYLE.md)."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
    v = np.random.default_rng(seed).normal(size=dim)
    return (v / np.linalg.norm(v)).tolist()


def chunks_for(source: str, doc_id: str, texts: list[str]) -> list[Chunk]:
    out, offset = [], 0
    for i, t in enumerate(texts):
        out.append(Chunk(make_chunk_id(doc_id, offset, offset + len(t)), doc_id, source, t, offset,
                         offset + len(t), i, 1, ("Kapitel",), sha256_text(t), 5))
        offset += len(t) + 2
    return out


@pytest.fixture()
def store(tmp_path):
    s = QdrantStore(StoreOptions(collection="t", path=str(tmp_path / "q")))
    s.ensure_collection("model-a", 8)
    yield s
    s.close()


def write(store, source, doc_id, texts):
    chunks = chunks_for(source, doc_id, texts)
    return store.upsert_chunks(chunks, [unit_vector(t) for t in texts], doc_hash="h")


def test_upsert_is_idempotent_and_state_is_complete(store):
    assert write(store, "a.txt", "doc1", ["eins", "zwei", "drei"]) == 3
    write(store, "a.txt", "doc1", ["eins", "zwei", "drei"])
    assert store.count() == 3
    state = store.doc_state("a.txt")
    assert state.complete("doc1") and not state.complete("doc2")


def test_new_version_written_before_stale_deleted(store):
    write(store, "a.txt", "old", ["alt eins", "alt zwei"])
    write(store, "a.txt", "new", ["neu eins"])
    assert store.count({"source": "a.txt"}) == 3  # both versions searchable in between
    assert store.delete_stale("a.txt", "new") == 2
    assert store.doc_state("a.txt").present == {"new": 1}


def test_search_filters_and_payload(store):
    write(store, "a.txt", "d1", ["Urlaub", "Arbeitszeit"])
    write(store, "b.txt", "d2", ["Urlaub im Sommer"])
    hits = store.search_dense(unit_vector("Urlaub"), 5)
    assert hits[0].payload["text"] == "Urlaub" and hits[0].score == pytest.approx(1.0, abs=1e-5)
    only_b = store.search_dense(unit_vector("Urlaub"), 5, {"source": "b.txt"})
    assert [h.payload["source"] for h in only_b] == ["b.txt"]
    payload = hits[0].payload
    for key in ("text", "source", "page", "heading_path", "start", "end", "doc_id", "chunk_id",
                "content_hash", "ingested_at", "chunk_index", "chunk_count"):
        assert key in payload


def test_model_mismatch_is_a_clear_error(store):
    with pytest.raises(StoreError, match=r"built with model 'model-a' \(8-d vectors\).*'model-b' \(16-d\)"):
        store.ensure_collection("model-b", 16)


def test_delete_source_and_doc(store):
    write(store, "a.txt", "d1", ["eins", "zwei"])
    write(store, "b.txt", "d2", ["drei"])
    assert store.delete_source("a.txt") == 2
    assert store.delete_doc("d2") == 1
    assert store.count() == 0


def test_bad_filters_name_the_field():
    with pytest.raises(StoreError, match="'farbe' is not filterable"):
        build_filter({"farbe": "rot"})
    with pytest.raises(StoreError, match="'page' needs an integer"):
        build_filter({"page": "drei"})


def test_embedded_store_in_use_by_another_client(tmp_path):
    first = QdrantStore(StoreOptions(collection="t", path=str(tmp_path / "q")))
    first.ensure_collection("m", 8)
    second = QdrantStore(StoreOptions(collection="t", path=str(tmp_path / "q")))
    try:
        with pytest.raises(StoreError, match="in use by another process"):
            second.exists()
    finally:
        first.close()


def test_one_id_rule_for_filters_delete_and_the_service():
    """#11: a document or chunk id is a UUID in its 36-character form, either case; the service's DELETE path,
    `delete`, and `--filter doc_id=` all use ingest.store.filters.is_uuid (the service had its own pattern)."""
    from ingest.store.filters import build_filter, is_uuid

    canonical = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    assert is_uuid(canonical) and is_uuid(canonical.upper())
    for other in ("{" + canonical + "}", "urn:uuid:" + canonical, canonical.replace("-", ""), canonical + "\n", ""):
        assert not is_uuid(other), other
    assert build_filter({"doc_id": canonical.upper()}).must[0].value == canonical
