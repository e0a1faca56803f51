"""A real uvicorn server on a loopback port for the service tests (helpers only, no tests here)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn

from pipelines.config import Settings, load_settings
from pipelines.service.app import create_app
from pipelines.service.runtime import ServiceRuntime

EXAMPLES = Path(__file__).resolve().parents[1] / "pipelines" / "examples"


@dataclass
class LiveServer:
    url: str
    runtime: ServiceRuntime
    server: uvicorn.Server

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


def service_settings(model_dir: Path, store: Path, **overrides) -> Settings:
    return load_settings(embed_model=str(model_dir), qdrant_path=str(store), qdrant_url=None, offline=True,
                         **overrides)


@contextmanager
def live_server(settings: Settings, wait_ready: bool = True, watch: tuple[str, ...] = ()) -> Iterator[LiveServer]:
    """Start uvicorn in a thread on 127.0.0.1:<free port>; on exit run the app's real shutdown."""
    app = create_app(settings, watch)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        _wait(lambda: server.started, "server start")
        live = LiveServer(f"http://127.0.0.1:{port}", app.state.runtime, server)
        if wait_ready:
            _wait(lambda: live.runtime.loaded.is_set() or live.runtime.startup_error is not None, "model load")
        yield live
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()


def _wait(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout} s")
        time.sleep(0.02)


def wait_job(client: httpx.Client, job_id: str, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/v1/jobs/{job_id}").json()
        if body["state"] in ("succeeded", "failed"):
            return body
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {body['state']} after {timeout} s")
        time.sleep(0.05)


def example_files(*names: str) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("files", (n, (EXAMPLES / n).read_bytes(), "application/octet-stream")) for n in names]
