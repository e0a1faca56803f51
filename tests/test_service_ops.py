"""Service operations on real servers: API keys, readiness, restart, shutdown, CORS, bind rules, batching."""

from __future__ import annotations

import threading

import pytest

from ingest.schema import TokenLimitError
from pipelines.build import build_store
from pipelines.cli.main import main
from pipelines.config import ConfigError, Settings, load_settings
from pipelines.service.app import check_bind
from pipelines.service.core import QueryBatcher
from tests.test_service import assert_error
from tests.test_service_support import example_files, live_server, service_settings, wait_job

READ, WRITE = "lesen-123", "schreiben-456"


def test_api_keys_separate_read_and_write(tiny_model_dir, tmp_path):
    settings = service_settings(tiny_model_dir, tmp_path / "q", read_keys=f"{READ}, other", write_keys=WRITE)
    with live_server(settings) as srv:
        with srv.client() as anon:
            r = anon.post("/v1/retrieve", json={"query": "Urlaub"})
            assert_error(r, 401, "unauthorized", "missing API key")
            assert r.headers["www-authenticate"] == "Bearer"
            assert_error(anon.get("/metrics"), 401, "unauthorized")
            assert anon.get("/healthz").status_code == 200 and anon.get("/readyz").status_code == 200
        with srv.client("falsch") as bad:
            assert_error(bad.get("/v1/documents"), 401, "unauthorized", "invalid API key")
        with srv.client(READ) as reader:
            assert reader.post("/v1/retrieve", json={"query": "Urlaub"}).json()["passages"] == []
            assert reader.get("/metrics").status_code == 200
            assert_error(reader.post("/v1/documents", files=example_files("hinweise.txt")), 403, "forbidden")
            assert_error(reader.delete("/v1/documents/00000000-0000-0000-0000-000000000000"), 403, "forbidden")
        with srv.client(WRITE) as writer:
            job = wait_job(writer, writer.post("/v1/documents", files=example_files("hinweise.txt")).json()["job_id"])
            assert job["state"] == "succeeded"
            assert writer.get("/v1/documents").json()["total"] == 1  # a write key may also read


def test_not_ready_when_the_collection_belongs_to_another_model(tiny_model_dir, tmp_path):
    other = build_store(Settings(qdrant_path=str(tmp_path / "q")))  # the default engine, as the service uses
    other.ensure_collection("some/other-model", 7)
    other.close()
    with live_server(service_settings(tiny_model_dir, tmp_path / "q")) as srv, srv.client() as c:
        assert c.get("/healthz").status_code == 200
        assert_error(c.get("/readyz"), 503, "not_ready", "some/other-model")
        assert_error(c.post("/v1/retrieve", json={"query": "Urlaub"}), 503, "not_ready", "failed to start")
        assert_error(c.post("/v1/documents", files=example_files("hinweise.txt")), 503, "not_ready")


def test_restart_keeps_the_embedded_store(tiny_model_dir, tmp_path):
    settings = service_settings(tiny_model_dir, tmp_path / "q")
    with live_server(settings) as srv, srv.client() as c:
        job = wait_job(c, c.post("/v1/documents", files=example_files("burlg.md")).json()["job_id"])
        assert job["state"] == "succeeded"
        before = c.get("/v1/documents").json()
    with live_server(settings) as srv, srv.client() as c:  # same folder: the first server released it
        assert c.get("/v1/documents").json() == before
        hits = c.post("/v1/retrieve", json={"query": "Erholungsurlaub", "mode": "bm25"}).json()["passages"]
        assert hits and hits[0]["source"] == "upload:burlg.md"
        assert_error(c.get(f"/v1/jobs/{job['job_id']}"), 404, "not_found")  # jobs live in memory only


def test_full_job_queue_is_429_and_shutdown_fails_what_did_not_run(tiny_model_dir, tmp_path):
    settings = service_settings(tiny_model_dir, tmp_path / "q", job_queue_size=1)
    with live_server(settings) as srv, srv.client() as c:
        rt = srv.runtime
        rt.store_lock.acquire()  # the worker blocks on its first store call: one job runs, one waits
        try:
            first = c.post("/v1/documents", files=example_files("burlg.md")).json()["job_id"]
            _wait_state(c, first, "running")
            second = c.post("/v1/documents", files=example_files("hinweise.txt")).json()["job_id"]
            assert_error(c.post("/v1/documents", files=example_files("arbzg.md")), 429, "overloaded")
            stopper = threading.Thread(target=rt.jobs.shutdown, args=(0.0,))
            stopper.start()
            _until(lambda: rt.jobs._stop.is_set())
        finally:
            rt.store_lock.release()
        stopper.join(timeout=60)
        one, two = rt.jobs.get(first), rt.jobs.get(second)
        assert one.state == "failed" and "shut down" in one.results[0].error
        assert two.state == "failed" and "not started" in two.error
        assert not one.folder.exists() and not two.folder.exists()
        assert rt.store.count() == 0  # nothing half-written
        assert_error(c.post("/v1/documents", files=example_files("arbzg.md")), 503, "not_ready", "shutting down")


def _wait_state(client, job_id: str, state: str) -> None:
    _until(lambda: client.get(f"/v1/jobs/{job_id}").json()["state"] == state)


def _until(condition, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def test_cors_only_for_configured_origins(tiny_model_dir, tmp_path):
    settings = service_settings(tiny_model_dir, tmp_path / "q", cors_origins="https://chat.example.org")
    with live_server(settings, wait_ready=False) as srv, srv.client() as c:
        pre = {"Access-Control-Request-Method": "POST"}
        ok = c.options("/v1/retrieve", headers={"Origin": "https://chat.example.org", **pre})
        assert ok.headers["access-control-allow-origin"] == "https://chat.example.org"
        other = c.options("/v1/retrieve", headers={"Origin": "https://evil.example", **pre})
        assert "access-control-allow-origin" not in other.headers


def test_public_bind_needs_keys_or_explicit_permission(settings_env, capsys):
    check_bind(load_settings(host="127.0.0.1"))
    check_bind(load_settings(host="::1"))
    check_bind(load_settings(host="0.0.0.0", allow_public=True))
    check_bind(load_settings(host="0.0.0.0", read_keys="k"))
    with pytest.raises(ConfigError, match="GERMAN_RAG_READ_KEYS"):
        check_bind(load_settings(host="0.0.0.0"))
    assert main(["serve", "--host", "0.0.0.0", "--port", "8099"]) == 2
    assert "not a loopback address" in capsys.readouterr().err


def test_keys_are_hidden_in_config(settings_env, monkeypatch, capsys):
    monkeypatch.setenv("GERMAN_RAG_WRITE_KEYS", "geheim-789")
    assert main(["config", "--json"]) == 0
    out = capsys.readouterr().out
    assert "geheim-789" not in out and '"write_keys": "**********"' in out


def test_batched_query_embeddings_match_single_ones(tiny_embedder):
    batcher = QueryBatcher(tiny_embedder, threading.Lock(), wait_s=0.05)
    queries = [f"Wie viele Tage Urlaub gibt es im Jahr {i}?" for i in range(8)] + ["Wort " * 5000]
    results: dict[int, object] = {}

    def ask(i: int) -> None:
        try:
            results[i] = batcher.embed_query(queries[i])
        except TokenLimitError as exc:
            results[i] = exc

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(queries))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batcher.close()
    assert isinstance(results[8], TokenLimitError)  # the long query fails alone, the others are answered
    for i in range(8):
        single = tiny_embedder.embed_query(queries[i])
        assert max(abs(a - b) for a, b in zip(results[i], single, strict=True)) < 1e-5
