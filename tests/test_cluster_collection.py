"""A cluster collection is created with the shard number, replication factor and write consistency the
settings name (GERMAN_RAG_SHARD_NUMBER, ..., as docker-compose.cluster.yml and deploy/k8s set them).

No Qdrant cluster runs here: the REST stand-in (tests/standin/qdrant_rest.py) records the body of the
create request, which is what a cluster would apply; its local-mode engine ignores the sharding fields.
"""

from __future__ import annotations

import pytest

from pipelines.build import build_store
from pipelines.config import load_settings
from tests.standin.qdrant_rest import StandinQdrant

SHARDING = ("GERMAN_RAG_SHARD_NUMBER", "GERMAN_RAG_REPLICATION_FACTOR", "GERMAN_RAG_WRITE_CONSISTENCY_FACTOR")


@pytest.fixture()
def standin():
    with StandinQdrant() as s:
        yield s


def create(monkeypatch, url: str, env: dict[str, str]) -> None:
    for name in SHARDING:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GERMAN_RAG_CONFIG", raising=False)
    store = build_store(load_settings(qdrant_url=url, collection="cluster", store_retries=0))
    try:
        store.ensure_collection("m", 4)
    finally:
        store.close()


def test_settings_from_the_environment_reach_the_create_request(standin, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no ./german-rag.toml
    create(monkeypatch, standin.url, dict(zip(SHARDING, ("6", "2", "1"), strict=True)))
    body = standin.created["cluster"]
    assert (body["shard_number"], body["replication_factor"], body["write_consistency_factor"]) == (6, 2, 1)
    assert body["metadata"]["embed_model"] == "m"


def test_unset_settings_leave_the_server_defaults(standin, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    create(monkeypatch, standin.url, {})
    body = standin.created["cluster"]
    # qdrant-client leaves out fields that are None: the server's own defaults (1 shard per node, 1 copy) apply
    assert not {"shard_number", "replication_factor", "write_consistency_factor"} & set(body)


def test_a_server_collection_gets_the_index_and_quantization_settings(standin, monkeypatch, tmp_path):
    """HNSW m/ef_construct and quantization (originals on disk) reach a server's create request, and a search
    asks for hnsw_ef and rescoring over oversampled candidates (the edge engine gets the same, ingest/store/edge.py)."""
    monkeypatch.chdir(tmp_path)
    for name, value in {"GERMAN_RAG_HNSW_M": "24", "GERMAN_RAG_HNSW_EF_CONSTRUCT": "200",
                        "GERMAN_RAG_QUANTIZATION": "binary2", "GERMAN_RAG_HNSW_EF": "96",
                        "GERMAN_RAG_QUANTIZATION_OVERSAMPLING": "3"}.items():
        monkeypatch.setenv(name, value)
    create(monkeypatch, standin.url, {})
    body = standin.created["cluster"]
    assert body["hnsw_config"] == {"m": 24, "ef_construct": 200}
    assert body["quantization_config"] == {"binary": {"always_ram": True, "encoding": "two_bits"}}
    assert body["vectors"]["dense"]["on_disk"] is True
    store = build_store(load_settings(qdrant_url=standin.url, collection="cluster", store_retries=0))
    try:
        store.search_dense([0.5, 0.5, 0.5, 0.5], 3)
        store.search_hybrid([0.5, 0.5, 0.5, 0.5], ([1], [1.0]), 3)
    finally:
        store.close()
    dense, hybrid = standin.queries[-2:]
    want = {"hnsw_ef": 96, "exact": False, "quantization": {"ignore": False, "rescore": True, "oversampling": 3.0}}
    assert dense["params"] == want and hybrid["prefetch"][0]["params"] == want


def test_optimize_on_a_server_restores_what_a_bulk_load_deferred_and_waits_for_green(standin, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    create(monkeypatch, standin.url, {})
    store = build_store(load_settings(qdrant_url=standin.url, collection="cluster", store_retries=0))
    try:
        assert store.begin_bulk() is True and standin.indexing_threshold["cluster"] == 0
        seen: list = []
        assert store.optimize(seen.append) is True  # the deferred indexing came back
        assert standin.indexing_threshold["cluster"] == 20_000
        assert store.optimize() is False  # nothing deferred, nothing changed
        state = store.index_state()
        assert (state.points, state.indexed) == (0, 0)
    finally:
        store.close()
