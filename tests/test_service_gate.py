"""The service's door (#10.6): keys, lengths and upload slots are decided before any body byte is read."""

from __future__ import annotations

import asyncio
import json
import select
import socket
import time

import pytest

from pipelines.build import build_store
from pipelines.config import Settings
from pipelines.service.app import create_app
from pipelines.service.gate import required_scope
from pipelines.service.routes import UPLOAD_PATH
from tests.test_service import assert_error
from tests.test_service_support import live_server, service_settings

READ, WRITE = "lesen-123", "schreiben-456"
BOUNDARY = "grenze"


@pytest.fixture(scope="module")
def keyed_server(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("gate")
    settings = service_settings(tiny_model_dir, root / "q", read_keys=READ, write_keys=WRITE,
                                max_upload_bytes=100_000, max_upload_files=2, max_concurrent_uploads=1,
                                upload_dir=str(root))
    with live_server(settings) as srv:
        yield srv


def _open(url: str, length: int, key: str | None, path: str = "/v1/documents") -> socket.socket:
    """A raw connection that has sent only the request head of an upload of `length` bytes."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    head = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {length}",
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}"]
    if key:
        head.append(f"Authorization: Bearer {key}")
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    return sock


def _answer(sock: socket.socket) -> tuple[int, dict[str, str], dict]:
    """Status, headers and JSON body of the response, read without ever sending the body."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers["content-length"]):
        body += sock.recv(65536)
    return int(lines[0].split()[1]), headers, json.loads(body)


def test_unauthenticated_upload_is_refused_before_its_body(keyed_server):
    """#10.6: 401 comes back to a client that declared a body within the limits and sent none of it
    (nothing is spooled; before, the service waited for the whole body and only then said 401)."""
    for key, status, kind in ((None, 401, "unauthorized"), ("falsch", 401, "unauthorized"),
                              (READ, 403, "forbidden")):
        with _open(keyed_server.url, 200_000, key) as sock:
            code, headers, body = _answer(sock)
        assert (code, body["error"]["kind"]) == (status, kind), body
        assert headers["connection"] == "close"


def test_upload_over_the_total_limit_is_refused_before_its_body(keyed_server):
    """#10.6: with a write key, a declared length over the request limit is 413 before any byte is read
    (this held before; kept as the other half of the door)."""
    with _open(keyed_server.url, 60_000_000, WRITE) as sock:
        code, _, body = _answer(sock)
    assert (code, body["error"]["kind"]) == (413, "too_large")


def test_concurrent_uploads_past_the_bound_are_429(keyed_server):
    """#10.6: one upload slot (max_concurrent_uploads=1): a second upload while the first is still
    being received is refused at once with Retry-After, and the slot frees when the first ends."""
    with _open(keyed_server.url, 50_000, WRITE) as first:
        first.sendall(f"--{BOUNDARY}\r\n".encode())  # in flight: the app waits for the rest
        with _open(keyed_server.url, 100, WRITE) as second:
            code, headers, body = _answer(second)
        assert (code, body["error"]["kind"], headers["retry-after"]) == (429, "overloaded", "5")
    with keyed_server.client(WRITE) as c:  # the first connection is gone: its slot is free again
        files = [("files", ("a.txt", b"Ein kurzer Text.", "text/plain"))]
        deadline = time.monotonic() + 10  # the server notices the closed connection a moment later
        while (r := c.post("/v1/documents", files=files)).status_code == 429 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert r.status_code == 202, r.text


def test_form_fields_are_capped(keyed_server):
    """#10.6: text fields of a multipart upload are held in memory, so their number and size are bounded."""
    fields = {f"feld{i}": "x" for i in range(20)}
    files = [("files", ("a.txt", b"Text", "text/plain"))]
    with keyed_server.client(WRITE) as c:
        assert_error(c.post("/v1/documents", data=fields, files=files), 413, "too_large", "Too many fields")
        big = {"feld": "x" * (100 << 10)}
        assert_error(c.post("/v1/documents", data=big, files=files), 413, "too_large", "maximum size")


def test_body_past_its_declared_length_is_cut_off(tiny_model_dir, tmp_path):
    """#10.6: an ASGI server that does not hold the client to its Content-Length (or a chunked body
    that got past it) still cannot make the app read more than was declared: the gate counts bytes,
    answers 413 and stops pulling."""
    app = create_app(service_settings(tiny_model_dir, tmp_path / "q", max_upload_bytes=1000, upload_dir=str(tmp_path)))
    pulled, sent = [0], []
    chunk = b"x" * 65536

    async def receive():
        pulled[0] += 1
        return {"type": "http.request", "body": chunk, "more_body": pulled[0] < 200}

    async def send(message):
        sent.append(message)

    for path, length in (("/v1/documents", 2000), ("/v1/retrieve", 100)):
        pulled[0], sent[:] = 0, []
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
                 "headers": [(b"content-length", str(length).encode()),
                             (b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode()
                              if path == "/v1/documents" else b"application/json")],
                 "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
        asyncio.run(app(scope, receive, send))
        start = next(m for m in sent if m["type"] == "http.response.start")
        body = json.loads(b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))
        assert (start["status"], body["error"]["kind"]) == (413, "too_large"), (path, body)
        assert pulled[0] == 1, f"{path}: {pulled[0]} chunks of 64 KiB pulled after the declared {length} bytes"


def test_readyz_details_need_a_read_key(keyed_server):
    """#10.10: without a key /readyz says only whether the service is ready, not its model or store path."""
    rt = keyed_server.runtime
    with keyed_server.client() as anon, keyed_server.client(READ) as reader:
        assert anon.get("/readyz").json() == {"status": "ready", "detail": None}
        assert reader.get("/readyz").json()["detail"] == f"{rt.model_id} on {rt.store.location}"


def test_not_ready_reason_needs_a_read_key(tiny_model_dir, tmp_path):
    """#10.10: the reason a service is not ready names paths and models: a read key only."""
    other = build_store(Settings(qdrant_path=str(tmp_path / "q")))
    other.ensure_collection("some/other-model", 7)
    other.close()
    settings = service_settings(tiny_model_dir, tmp_path / "q", read_keys=READ)
    with live_server(settings) as srv, srv.client() as anon, srv.client(READ) as reader:
        r = anon.get("/readyz")
        assert_error(r, 503, "not_ready", "details with a read key")
        assert str(tmp_path) not in r.text and "other-model" not in r.text
        assert_error(reader.get("/readyz"), 503, "not_ready", "some/other-model")


def test_docs_are_closed_when_keys_are_set(keyed_server):
    """#10.10: /docs and /redoc are off with keys set; the OpenAPI schema needs a read key."""
    with keyed_server.client() as anon, keyed_server.client(READ) as reader:
        assert_error(anon.get("/openapi.json"), 401, "unauthorized")
        assert reader.get("/openapi.json").json()["info"]["title"] == "german-rag"
        for path in ("/docs", "/redoc"):
            assert_error(anon.get(path), 401, "unauthorized")
            assert_error(reader.get(path), 404, "not_found")


def test_openapi_declares_the_bearer_scheme_on_every_operation_the_gate_guards(keyed_server):
    """#11.7: the gate enforces the keys; the schema tells a client which operations need one (and how)."""
    with keyed_server.client(READ) as reader:
        schema = reader.get("/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert len(schemes) == 1
    (name, scheme), = schemes.items()
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    operations = [(method.upper(), path, op) for path, ops in schema["paths"].items() for method, op in ops.items()]
    assert {m for m, _, _ in operations} >= {"GET", "POST", "DELETE"}
    for method, path, op in operations:
        guarded = required_scope(method, path, UPLOAD_PATH) is not None
        assert (op.get("security") == [{name: []}]) == guarded, f"{method} {path}: {op.get('security')}"


@pytest.fixture(scope="module")
def timed_server(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("timed")
    settings = service_settings(tiny_model_dir, root / "q", write_keys=WRITE, max_concurrent_uploads=2,
                                upload_read_timeout=1.0, upload_body_timeout=2.0, upload_dir=str(root))
    with live_server(settings) as srv:
        yield srv


def test_stalled_upload_bodies_time_out_and_free_their_slots(timed_server):
    """#10 B1: two uploads that send their head and a few body bytes and then stall held both upload slots
    for as long as their connections stayed open (every other upload: 429). With upload_read_timeout=1
    each is answered 408 `timeout` after a second of silence, and a third upload then gets its slot."""
    stalled = [_open(timed_server.url, 50_000, WRITE) for _ in range(2)]
    try:
        for sock in stalled:
            sock.sendall(f"--{BOUNDARY}\r\n".encode())  # a few bytes, then nothing
        files = [("files", ("a.txt", "Ein kurzer Text über Urlaub.".encode(), "text/plain"))]
        with timed_server.client(WRITE) as c:
            assert_error(c.post("/v1/documents", files=files), 429, "overloaded")
            started = time.monotonic()
            for sock in stalled:
                sock.settimeout(5)
                code, headers, body = _answer(sock)
                assert (code, body["error"]["kind"], headers["connection"]) == (408, "timeout", "close"), body
                assert "no request body bytes for 1 s" in body["error"]["message"], body
            assert time.monotonic() - started < 4
            r = c.post("/v1/documents", files=files)
        assert r.status_code == 202, r.text
    finally:
        for sock in stalled:
            sock.close()


def test_trickled_upload_body_hits_the_total_timeout(timed_server):
    """#10 B1: a body that never stalls long enough for the read timeout (a byte every 0.3 s) is still cut
    off by upload_body_timeout (2 s here) with a 408, so a trickle cannot hold a slot either."""
    with _open(timed_server.url, 50_000, WRITE) as sock:
        sock.sendall(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="t.txt"\r\n'
                     "Content-Type: text/plain\r\n\r\n".encode())
        started = time.monotonic()
        while not select.select([sock], [], [], 0.3)[0] and time.monotonic() - started < 5:
            sock.sendall(b"x")  # never silent for a second
        sock.settimeout(5)
        code, _, body = _answer(sock)
    assert (code, body["error"]["kind"]) == (408, "timeout"), body
    assert "not complete within 2 s" in body["error"]["message"] and time.monotonic() - started < 4, body


def test_upload_read_timeout_must_be_positive():
    """#10 B1: the body timeouts are validated (0 would refuse every body at once)."""
    for name in ("upload_read_timeout", "upload_body_timeout"):
        with pytest.raises(ValueError, match=rf"{name}\s+Input should be greater than 0"):
            Settings(**{name: 0})
