"""`german-rag watch`: the watcher on the main thread, stopped by SIGTERM or SIGINT after the current file."""

from __future__ import annotations

import signal
import threading
from types import FrameType

from pipelines.build import build_embedder, build_ingest_runner, build_store, build_watcher
from pipelines.config import Settings


def run_watch(settings: Settings, roots: list[str], allow_mass_delete: bool = False,
              metrics_port: int | None = None) -> dict:
    """Watch until a signal; returns the watcher's totals (events, files by action, failures, retries, pending).

    Without `metrics_port` there is no HTTP at all (a watch job need not open a port); with it, the counters are
    served for Prometheus on the settings' host. Inside the service (`serve --watch`) they are on its /metrics.
    """
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()  # the watcher finishes the file it is on, then returns

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    store = build_store(settings)
    try:
        runner = build_ingest_runner(settings, build_embedder(settings), store, progress=False)
        watcher = build_watcher(settings, runner, roots, allow_mass_delete=allow_mass_delete)
        if metrics_port is not None:
            from prometheus_client import start_http_server

            start_http_server(metrics_port, addr=settings.host, registry=watcher.metrics.registry)
        watcher.run(stop)
    finally:
        store.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return {"roots": [str(r) for r in watcher.roots], **watcher.metrics.totals(), "pending": len(watcher.pending)}
