"""A Qdrant REST STAND-IN for tests, and a fault-injecting TCP proxy to put in front of it.

No Qdrant server binary can be had on these machines, so outage tests run against this stand-in:
a small HTTP server that answers the REST endpoints qdrant-client uses for german-rag, backed by
qdrant-client's own embedded engine (local mode, in memory). It is NOT Qdrant and is not shipped;
it exists so the client side (retries, timeouts, error messages) meets real HTTP and real sockets.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from qdrant_client import QdrantClient, models


class StandinQdrant:
    """`with StandinQdrant() as s: QdrantClient(url=s.url)`; one in-memory engine per instance."""

    def __init__(self) -> None:
        self.engine = QdrantClient(location=":memory:")
        self.lock = threading.Lock()  # local mode is not thread-safe; a server serialises here
        self.requests = 0
        self.indexing_threshold: dict[str, int] = {}  # per collection; local mode has no optimizers
        self.threshold_log: list[int] = []  # every indexing_threshold a client set, in order
        # per collection: field -> payload index type a client created (local mode keeps none; a server
        # reports them in get_collection's payload_schema, which is how a store finds the ones missing)
        self.indexes: dict[str, dict[str, str]] = {}
        # per collection: the body of the request that created it (shard_number, replication_factor, ... that
        # local mode ignores but a cluster applies)
        self.created: dict[str, dict] = {}
        self.queries: list[dict] = []  # the body of every query request, in order
        # (method, path) -> a status to answer instead (a node failing mid-run: 503), or None to serve it
        self.fault: Callable[[str, str], int | None] | None = None
        handler = type("Handler", (_Handler,), {"standin": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> StandinQdrant:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.engine.close()


def _dump(obj):
    if isinstance(obj, list):
        return [_dump(o) for o in obj]
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json", exclude_none=True)
    return obj


class _Handler(BaseHTTPRequestHandler):
    standin: StandinQdrant
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        return

    def _body(self) -> dict:
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"{}") if n else {}

    def _reply(self, status: int, result, raw: bool = False) -> None:
        status_field = "ok" if status == 200 else {"error": str(result)}
        envelope = result if raw else {"result": _dump(result), "status": status_field, "time": 0.0}
        data = json.dumps(envelope).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self, method: str) -> None:
        self.standin.requests += 1
        path = self.path.split("?")[0]
        if path == "/":  # version info is not wrapped in {"result": ...}
            self._reply(200, {"title": "qdrant REST stand-in (tests only)", "version": "1.15.0"}, raw=True)
            return
        body = self._body() if method in ("PUT", "POST", "PATCH") else {}
        status = self.standin.fault(method, path) if self.standin.fault else None
        if status:
            self._reply(status, "injected fault")
            return
        try:
            with self.standin.lock:
                result = self._dispatch(method, path, body)
        except KeyError as exc:
            self._reply(404, f"not found: {exc}")
            return
        except Exception as exc:  # the engine refused: a 400 like a server would give
            self._reply(400, f"{type(exc).__name__}: {exc}")
            return
        self._reply(200, result)

    def _dispatch(self, method: str, path: str, body: dict):
        e = self.standin.engine
        m = re.fullmatch(r"/collections/([^/]+)(/.*)?", path)
        if not m:
            raise KeyError(path)
        name, rest = m.group(1), m.group(2) or ""
        if rest == "/exists":
            return {"exists": e.collection_exists(name)}
        if rest == "" and method == "GET":
            info = e.get_collection(name)
            info.config.optimizer_config.indexing_threshold = self.standin.indexing_threshold.get(name, 20_000)
            info.payload_schema = {field: models.PayloadIndexInfo(data_type=models.PayloadSchemaType(kind), points=0)
                                   for field, kind in self.standin.indexes.get(name, {}).items()}
            return info
        if rest == "" and method == "PATCH":
            req = models.UpdateCollection.model_validate(body)
            if req.optimizers_config is not None and req.optimizers_config.indexing_threshold is not None:
                self.standin.indexing_threshold[name] = req.optimizers_config.indexing_threshold
                self.standin.threshold_log.append(req.optimizers_config.indexing_threshold)
            if req.metadata is not None:  # merged, as a server does
                e.update_collection(name, metadata=req.metadata)
            return True
        if rest == "" and method == "PUT":
            req = models.CreateCollection.model_validate(body)
            self.standin.created[name] = body
            return e.create_collection(name, vectors_config=req.vectors, sparse_vectors_config=req.sparse_vectors,
                                       metadata=req.metadata)
        if rest == "" and method == "DELETE":
            self.standin.indexes.pop(name, None)
            return e.delete_collection(name)
        if rest == "/index":  # kept as a server keeps it (local mode ignores payload indexes)
            req = models.CreateFieldIndex.model_validate(body)
            schema = req.field_schema
            kind = schema if isinstance(schema, models.PayloadSchemaType) else getattr(schema, "type", schema)
            self.standin.indexes.setdefault(name, {})[req.field_name] = str(getattr(kind, "value", kind))
            return {"operation_id": 0, "status": "completed"}
        if not e.collection_exists(name):
            raise KeyError(name)
        if rest == "/points/query":
            self.standin.queries.append(body)  # as sent: what a server would be asked (params, prefetch)
        return self._points(e, name, rest, body)

    @staticmethod
    def _points(e: QdrantClient, name: str, rest: str, body: dict):
        if rest == "/points":
            return e.upsert(name, models.PointsList.model_validate(body).points, wait=True)
        if rest == "/points/scroll":
            r = models.ScrollRequest.model_validate(body)
            points, nxt = e.scroll(name, scroll_filter=r.filter, limit=r.limit or 10, offset=r.offset,
                                   with_payload=r.with_payload if r.with_payload is not None else True,
                                   with_vectors=r.with_vector or False)
            return {"points": _dump(points), "next_page_offset": nxt}
        if rest == "/points/count":
            r = models.CountRequest.model_validate(body)
            return e.count(name, count_filter=r.filter, exact=True)
        if rest == "/points/delete":
            selector = models.FilterSelector.model_validate(body) if "filter" in body else \
                models.PointIdsList.model_validate(body)
            return e.delete(name, points_selector=selector, wait=True)
        if rest == "/points/payload":  # set_payload by filter or ids (a document's access fields)
            r = models.SetPayload.model_validate(body)
            target = models.FilterSelector(filter=r.filter) if r.filter is not None else \
                models.PointIdsList(points=r.points or [])
            return e.set_payload(name, payload=r.payload, points=target, key=r.key, wait=True)
        if rest == "/points/query":
            r = models.QueryRequest.model_validate(body)
            res = e.query_points(name, query=r.query, using=r.using, prefetch=r.prefetch, query_filter=r.filter,
                                 limit=r.limit or 10, with_payload=r.with_payload if r.with_payload is not None
                                 else False)
            return res
        raise KeyError(rest)

    def do_GET(self) -> None:
        self._route("GET")

    def do_PUT(self) -> None:
        self._route("PUT")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PATCH(self) -> None:
        self._route("PATCH")

    def do_DELETE(self) -> None:
        self._route("DELETE")


class FaultProxy:
    """TCP proxy on loopback: `stop()` (refuse and cut connections), `start()`, `slow(seconds)`,
    `restart_after(seconds)`; `url` stays the same across stops."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.delay = 0.0
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(64)
        self._listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def stop(self) -> None:
        """Like a stopped server: new connections are refused, open ones are cut."""
        if self._listener is not None:
            _close(self._listener)  # shutdown() first: it wakes the thread blocked in accept()
            self._listener = None
        with self._lock:
            for c in list(self._conns):
                _close(c)
            self._conns.clear()

    def restart_after(self, seconds: float) -> None:
        self.stop()
        threading.Timer(seconds, self.start).start()

    def slow(self, seconds: float) -> None:
        self.delay = seconds

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._conns.update((client, upstream))
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, request: bool) -> None:
        try:
            while data := src.recv(65536):
                if request and self.delay:
                    time.sleep(self.delay)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _close(src)
            _close(dst)


def _close(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    s.close()
