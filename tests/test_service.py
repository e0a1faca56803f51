"""The HTTP service against a real uvicorn server on loopback: every endpoint and every error status."""

from __future__ import annotations

import hashlib
import socket
import time
from pathlib import Path

import httpx
import pytest

from retrieval.query_check import MAX_QUERY_CHARS
from tests.test_service_support import EXAMPLES, example_files, live_server, service_settings, wait_job

MAX_BYTES = 45_000  # above every example file, small enough to test the limit


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("service")
    (root / "uploads").mkdir()
    settings = service_settings(tiny_model_dir, root / "qdrant", max_upload_bytes=MAX_BYTES, max_upload_files=3,
                                upload_dir=str(root / "uploads"))
    with live_server(settings) as live:
        yield live


@pytest.fixture(scope="module")
def ingested(server):
    """The three examples uploaded in one job, which is then complete."""
    with server.client() as c:
        r = c.post("/v1/documents", files=example_files("arbzg.md", "burlg.md", "hinweise.txt"))
        assert r.status_code == 202, r.text
        assert r.headers["location"] == f"/v1/jobs/{r.json()['job_id']}"
        return wait_job(c, r.json()["job_id"])


def assert_error(r: httpx.Response, status: int, kind: str, match: str = "") -> None:
    assert r.status_code == status, r.text
    body = r.json()["error"]
    assert body["kind"] == kind and match in body["message"], body
    assert "Traceback" not in r.text and 'File "' not in r.text


def test_health_and_ready(server):
    with server.client() as c:
        assert c.get("/healthz").json() == {"status": "ok", "detail": None}
        ready = c.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        assert c.get("/openapi.json").json()["info"]["title"] == "german-rag"


def test_job_lifecycle_and_document_list(server, ingested):
    assert ingested["state"] == "succeeded", ingested
    counts = ingested["counts"]
    assert counts["files_seen"] == 3 and counts["ingested"] == 3 and counts["balanced"]
    assert counts["chunks"] == counts["points_written"] == sum(f["chunks"] for f in ingested["files"])
    assert {f["source"] for f in ingested["files"]} == {"upload:arbzg.md", "upload:burlg.md", "upload:hinweise.txt"}
    job = server.runtime.jobs.get(ingested["job_id"])
    assert not job.folder.exists(), "the private upload folder must be removed after the job"
    with server.client() as c:
        page = c.get("/v1/documents", params={"limit": 2}).json()
        assert page["total"] == 3 and len(page["documents"]) == 2
        rest = c.get("/v1/documents", params={"offset": 2, "limit": 2}).json()["documents"]
        docs = {d["source"]: d for d in page["documents"] + rest}
    burlg = docs["upload:burlg.md"]
    assert burlg["doc_hash"] == hashlib.sha256((EXAMPLES / "burlg.md").read_bytes()).hexdigest()
    per_file = {f["source"]: f["chunks"] for f in ingested["files"]}
    assert {s: d["chunks"] for s, d in docs.items()} == per_file


def test_reupload_is_unchanged(server, ingested):
    with server.client() as c:
        job = wait_job(c, c.post("/v1/documents", files=example_files("hinweise.txt")).json()["job_id"])
    assert job["state"] == "succeeded" and job["files"][0]["status"] == "unchanged"


@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid"])
def test_retrieve_returns_passages_with_provenance(server, ingested, mode):
    with server.client() as c:
        r = c.post("/v1/retrieve", json={"query": "Anspruch auf bezahlten Erholungsurlaub", "top_k": 3,
                                          "mode": mode})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["mode"] == mode and 1 <= len(body["passages"]) <= 3
    for p in body["passages"]:
        assert p["source"].startswith("upload:") and p["end"] > p["start"] and p["text"]
        assert {"hybrid": "fused"}.get(mode, mode) in p["scores"]
    if mode == "bm25":  # the lexical leg must find the law that says it
        assert body["passages"][0]["source"] == "upload:burlg.md"


def test_retrieve_filters(server, ingested):
    with server.client() as c:
        r = c.post("/v1/retrieve", json={"query": "Urlaub", "top_k": 10, "mode": "bm25",
                                          "filters": {"source": "upload:hinweise.txt"}})
        assert r.status_code == 200
        assert {p["source"] for p in r.json()["passages"]} == {"upload:hinweise.txt"}
        r = c.post("/v1/retrieve", json={"query": "Urlaub", "mode": "bm25", "filters": {"chunk_index": [0]}})
        assert r.status_code == 200 and all(p["chunk_index"] == 0 for p in r.json()["passages"])


@pytest.mark.parametrize(("body", "status", "kind", "match"), [
    ({"query": "   "}, 400, "empty", "query: must not be empty"),
    ({"query": "\x00\x01"}, 400, "empty", "query"),
    ({"query": "Urlaub", "top_k": 0}, 422, "invalid", "top_k"),
    ({"query": "Urlaub", "top_k": 101}, 422, "invalid", "top_k"),
    ({"query": "x" * (MAX_QUERY_CHARS + 1)}, 422, "invalid", "query"),
    ({"query": "Urlaub", "filters": {"colour": "rot"}}, 422, "invalid", "filter field 'colour' is not filterable"),
    ({"query": "Urlaub", "filters": {"page": "eins"}}, 422, "invalid", "page"),
    ({"query": "Urlaub", "filters": {"source": []}}, 422, "invalid", "source"),
    ({"query": "Urlaub", "mode": "fuzzy"}, 422, "invalid", "mode"),
    ({"query": "Urlaub", "expand": 9}, 422, "invalid", "expand"),
    ({"query": "Urlaub", "unknown": 1}, 422, "invalid", "unknown"),
    ({"top_k": 3}, 422, "invalid", "query"),
])
def test_retrieve_rejects_bad_input(server, body, status, kind, match):
    with server.client() as c:
        assert_error(c.post("/v1/retrieve", json=body), status, kind, match)


def test_query_over_the_token_limit_needs_truncate(server, ingested):
    query = " ".join(["Arbeitszeitgesetz Ruhepause Nachtarbeit"] * 400)
    with server.client() as c:
        assert_error(c.post("/v1/retrieve", json={"query": query, "mode": "dense"}), 422, "invalid", "tokens")
        assert c.post("/v1/retrieve", json={"query": query, "mode": "dense", "truncate": True}).status_code == 200


def test_body_errors(server):
    with server.client() as c:
        assert_error(c.post("/v1/retrieve", content=b"{not json", headers={"content-type": "application/json"}),
                     422, "invalid")
        assert_error(c.post("/v1/retrieve", content=iter([b'{"query": "a"}'])), 411, "length_required")
        assert_error(c.post("/v1/retrieve", json={"query": "a" * (1 << 20)}), 413, "too_large")
        assert_error(c.get("/v1/nothing"), 404, "not_found")
        assert_error(c.get("/v1/jobs/0123"), 404, "not_found", "no job")


@pytest.mark.parametrize(("files", "status", "kind", "match"), [
    ([("files", ("setup.exe", b"MZ", "application/octet-stream"))], 415, "unsupported_type", "setup.exe"),
    ([("files", ("gross.txt", b"a" * (MAX_BYTES + 1), "text/plain"))], 413, "too_large", "gross.txt"),
    ([("files", (f"{i}.txt", b"Text", "text/plain")) for i in range(4)], 413, "too_large", "files is 3"),
    ([("files", ("a.txt", b"eins", "text/plain")), ("files", ("a.txt", b"zwei", "text/plain"))], 422,
     "invalid", "twice"),
])
def test_upload_limits(server, files, status, kind, match):
    with server.client() as c:
        assert_error(c.post("/v1/documents", files=files), status, kind, match)
    root = server.runtime.uploads.path
    assert root.parent == Path(server.runtime.settings.upload_dir)
    assert [p.name for p in root.iterdir()] == [".lock"], "a refused upload leaves no folder"


def test_upload_body_over_the_total_limit_is_refused_and_never_saved(server):
    big = b"a" * (3 * (MAX_BYTES + 1024) + (64 << 10) + 1)
    with server.client() as c:
        assert_error(c.post("/v1/documents", files=[("files", ("x.txt", big, "text/plain"))]), 413, "too_large")


def test_filename_is_never_a_path(server, tmp_path):
    name = "../../" + str(tmp_path.name) + "/..\\böse.txt"
    with server.client() as c:
        r = c.post("/v1/documents", files=[("files", (name, "Ein kurzer Text über Urlaub.".encode(), "text/plain"))])
        assert r.status_code == 202, r.text
        job = wait_job(c, r.json()["job_id"])
    assert job["files"][0]["source"] == "upload:böse.txt" and job["state"] == "succeeded"
    assert not any(tmp_path.parent.glob("böse*"))


def test_delete_document(server, ingested):
    with server.client() as c:
        docs = c.get("/v1/documents", params={"limit": 100}).json()["documents"]
        target = next(d for d in docs if d["source"] == "upload:böse.txt" or d["source"] == "upload:hinweise.txt")
        r = c.delete(f"/v1/documents/{target['doc_ids'][0]}")
        assert r.status_code == 200 and r.json()["points_deleted"] == target["chunks"]
        assert_error(c.delete(f"/v1/documents/{target['doc_ids'][0]}"), 404, "not_found")
        assert_error(c.delete("/v1/documents/not-an-id"), 422, "invalid", "doc_id")
        sources = {d["source"] for d in c.get("/v1/documents", params={"limit": 100}).json()["documents"]}
    assert target["source"] not in sources


def test_metrics(server, ingested):
    with server.client() as c:
        c.post("/v1/retrieve", json={"query": "Nachtarbeit", "mode": "dense"})
        text = c.get("/metrics").text
    assert 'german_rag_http_requests_total{endpoint="/v1/retrieve",method="POST",status="200"}' in text
    assert 'german_rag_http_request_seconds_bucket{endpoint="/v1/retrieve",le="0.005"}' in text
    assert 'german_rag_ingest_files_total{status="ingested"}' in text
    assert "german_rag_ingest_chunks_total" in text
    count = next(line for line in text.splitlines() if line.startswith("german_rag_query_embed_seconds_count"))
    assert float(count.split()[-1]) >= 1


def test_overloaded_retrieve_is_429(server):
    rt = server.runtime
    held = [rt.admission.try_enter() for _ in range(rt.admission.limit)]
    try:
        with server.client() as c:
            r = c.post("/v1/retrieve", json={"query": "Urlaub"})
        assert_error(r, 429, "overloaded", "in flight")
        assert r.headers["retry-after"] == "1"
    finally:
        for _ in held:
            rt.admission.leave()


def test_cors_is_off_by_default(server):
    with server.client() as c:
        r = c.options("/v1/retrieve", headers={"Origin": "https://example.org",
                                               "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in r.headers


def test_rerank_and_expand_are_passed_to_the_retriever(server, ingested):
    body = {"query": "Erholungsurlaub", "mode": "bm25", "top_k": 2}
    with server.client() as c:
        expanded = c.post("/v1/retrieve", json={**body, "expand": 1})
        reranked = c.post("/v1/retrieve", json={**body, "rerank": True})
    assert expanded.status_code == 200 and expanded.json()["passages"]
    # no cross-encoder is configured in tests: a request for one is refused, never a 5xx
    assert_error(reranked, 422, "invalid", "rerank")


def test_a_body_a_little_over_the_limit_gets_its_413_not_a_reset(server):
    """A client that is still sending when the 413 goes out must read the 413: a body up to DRAIN_BYTES over
    its limit is read and dropped first (before, the server answered and closed at once, and the kernel's
    reset replaced the answer with "connection reset" under load). The body here arrives 0.3 s late, so
    the answer must wait for it."""
    host, port = server.url.removeprefix("http://").split(":")
    body = b'{"query": "' + b"a" * (1 << 20) + b'"}'
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"POST /v1/retrieve HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode())
        time.sleep(0.3)
        sock.setblocking(False)
        try:
            early = sock.recv(1024)
        except BlockingIOError:
            early = b""
        sock.setblocking(True)
        assert early == b"", "the 413 went out before the body was read"
        sock.sendall(body)
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413")


def test_upload_meta_is_stored_on_every_point_and_a_bad_one_is_a_422(server):
    """#13: the upload's `meta` form field (a JSON object of scalars) becomes the documents' payload `meta`."""
    text = "Die Kaution ist getrennt vom Vermögen des Vermieters anzulegen. ".encode() * 20
    with server.client() as c:
        r = c.post("/v1/documents", files=[("files", ("kaution_meta.txt", text, "text/plain"))],
                   data={"meta": '{"projekt": "Umzug", "stufe": 2, "geprueft": true}'})
        assert r.status_code == 202, r.text
        assert wait_job(c, r.json()["job_id"])["state"] == "succeeded"
        for bad, match in (('["x"]', "JSON object"), ("{kaputt", "not a JSON object"),
                           ('{"a": {"b": 1}}', "is not a value"), ('{"mit punkt.": 1}', "mit punkt.")):
            r = c.post("/v1/documents", files=[("files", ("x.txt", text, "text/plain"))], data={"meta": bad})
            assert_error(r, 422, "invalid", match)
        hits = c.post("/v1/retrieve", json={"query": "Kaution getrennt anlegen", "mode": "bm25",
                                            "filters": {"meta.projekt": "Umzug"}}).json()["passages"]
        assert hits and all(h["document"]["meta"]["projekt"] == "Umzug" for h in hits)
        assert hits[0]["document"]["file_type"] == "txt"
    store = server.runtime.store
    points = [p for _, p, _ in store.scan(["source", "meta"]) if p["source"] == "upload:kaution_meta.txt"]
    assert points and all(p["meta"] == {"projekt": "Umzug", "stufe": 2, "geprueft": True} for p in points)
