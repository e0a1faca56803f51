"""`german-rag watch`: keep a collection in step with folders as they change.

At start the watcher reconciles once (`sync`: every file under the roots ingested, every stored source under
them whose file is gone deleted), then applies file events: a changed file once it has settled (size and
modification time stable for `debounce_s`; watch_pending.py), bursts in batches of at most `batch` paths per
call, a move as its old path removed and its new one changed in the same call (vectors reused, no model call).

The observer starts before the first sync, so nothing that changes while the sync runs is missed (it is
applied again afterwards, which costs a hash per unchanged file). A store that stops answering loses nothing:
the paths of that call wait and are tried again with backoff. `stop` ends the run after the current file;
paths not applied then are left to the next start's sync.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge
from watchdog.observers import Observer

from ingest.errors import ConfigError, ErrorKind, kind_of
from ingest.parse_worker import abort_all
from pipelines.indexing.report import FileResult, IngestReport
from pipelines.indexing.watch_events import EVENT_TYPES, FolderEvents
from pipelines.indexing.watch_pending import PendingSet

STOP_GRACE_S = 10.0  # after the stop timeout: how long the thread may take to wind up
log = logging.getLogger("german_rag.watch")
log.setLevel(logging.INFO)  # one line per applied change, whatever the log level (as the audit log)
# A report's file status -> the action a log line and the counter name; "unchanged" is no change, unless its
# access fields were re-written (points_updated), and is then "updated".
ACTIONS = {"ingested": "ingested", "deleted": "deleted", "removed": "deleted", "failed": "failed",
           "skipped": "skipped", "unchanged": "updated"}


class Reconciler(Protocol):
    """What a watcher drives (pipelines/indexing/sync.py's Syncer)."""

    def sync(self, on_file: Callable[[FileResult], None] | None = None,
             stop: threading.Event | None = None) -> IngestReport: ...

    def apply(self, changed: Iterable[Path], removed: Iterable[Path],
              on_file: Callable[[FileResult], None] | None = None,
              stop: threading.Event | None = None) -> IngestReport: ...


@dataclass(frozen=True)
class WatchOptions:
    debounce_s: float = 1.0  # a file is applied once unchanged for this long
    batch: int = 256  # paths per apply call at most
    retry_s: float = 1.0  # first wait after the store was away; doubles per failed try
    retry_max_s: float = 60.0
    compact_idle_s: float = 5.0  # after deletes, compact the store once nothing was applied for this long

    @property
    def tick_s(self) -> float:
        """How often the pending set is looked at: a fraction of the debounce, so a file waits little past it."""
        return min(0.25, max(0.01, self.debounce_s / 4))


class WatchMetrics:
    """The watcher's Prometheus series, on a registry of its own or the service's (`/metrics`)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.events = Counter("german_rag_watch_events_total", "file events seen, by type", ["type"], registry=r)
        self.files = Counter("german_rag_watch_files_total", "files applied, by action", ["action"], registry=r)
        self.failures = Counter("german_rag_watch_failures_total", "files that failed to apply", registry=r)
        self.applies = Counter("german_rag_watch_applies_total", "apply calls (batches) that reached the store",
                               registry=r)
        self.retries = Counter("german_rag_watch_retries_total", "syncs and batches retried after the store was "
                               "unavailable", registry=r)
        self.pending = Gauge("german_rag_watch_pending", "paths waiting to settle or to be applied", registry=r)
        self.last_apply = Gauge("german_rag_watch_last_apply_timestamp_seconds", "when the last sync or batch was "
                                "applied (Unix time)", registry=r)
        self.running = Gauge("german_rag_watch_running", "1 while the watcher runs", registry=r)

    def totals(self) -> dict:
        """The counters as plain numbers (the CLI prints them when it stops)."""
        out: dict = {"events": 0.0, "files": {}, "failures": 0.0, "applies": 0.0, "retries": 0.0}
        for metric in self.registry.collect():
            for s in metric.samples:
                name = s.name.removeprefix("german_rag_watch_").removesuffix("_total")
                if name == "files":
                    out["files"][s.labels["action"]] = int(s.value)
                elif name in ("events", "failures", "applies", "retries"):
                    out[name] += s.value
        return {k: int(v) if isinstance(v, float) else v for k, v in out.items()}


class Watcher:
    """Runs a Reconciler over folder events until stopped; `run` blocks, `start`/`stop` use a thread."""

    def __init__(self, reconciler: Reconciler, roots: Sequence[str | Path], options: WatchOptions | None = None,
                 metrics: WatchMetrics | None = None, ignore: Sequence[str | Path] = (),
                 compact: Callable[[], None] | None = None) -> None:
        self.reconciler = reconciler
        self.roots = check_roots(roots)
        self.options = options or WatchOptions()
        self.metrics = metrics or WatchMetrics()
        self.pending = PendingSet(self.options.debounce_s)
        self.events = FolderEvents(self.pending, self.roots, [Path(i).resolve() for i in ignore],
                                   lambda kind: self.metrics.events.labels(kind).inc())
        self.synced = threading.Event()  # set once the start's sync has gone through
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._backoff = 0.0
        # Deletes leave the edge engine's BM25 statistics counting dead points until a vacuum, which takes seconds
        # on a large store: done once the folder has been quiet for a while, not after every batch.
        self._compact = compact
        self._deleted_since = 0.0  # monotonic time of the first apply that deleted points since the last compact
        self._last_apply = 0.0
        self.error: BaseException | None = None  # why a watcher thread ended, if it failed

    # -- the loop ------------------------------------------------------------------------------------
    def run(self, stop: threading.Event | None = None) -> None:
        """Sync, then apply events until `stop` is set. Errors other than the store being away end it."""
        stop = stop or self._stop
        observer = Observer()
        for root in self.roots:
            observer.schedule(self.events, str(root), recursive=True, event_filter=EVENT_TYPES)
        observer.start()
        self.metrics.running.set(1)
        try:
            self._sync(stop)
            while not stop.is_set():
                if not self._apply_ready(stop):
                    self._compact_when_idle()
                    stop.wait(self.options.tick_s)
        finally:
            observer.stop()
            observer.join()
            self.metrics.running.set(0)
            self.metrics.pending.set(len(self.pending))
        log.info("watch stopped", extra={"pending": len(self.pending), **self.metrics.totals()})

    def _sync(self, stop: threading.Event) -> None:
        while not stop.is_set():
            report, outage = self._call(lambda: self.reconciler.sync(stop=stop))
            if outage is None and report is not None:
                self._done(report, stop)
                log.info("watch: folders reconciled", extra={"roots": [str(r) for r in self.roots],
                                                             **_counts(report)})
                self.synced.set()
                return
            self._wait_after_outage(outage or "", stop, "sync")

    def _apply_ready(self, stop: threading.Event) -> bool:
        """Apply one batch of settled paths; False when there was none (or the store is away)."""
        batch = self.pending.take_ready(self.options.batch)
        self.metrics.pending.set(len(self.pending) + len(batch))
        if not batch:
            return False
        report, outage = self._call(lambda: self.reconciler.apply(batch.changed, batch.removed, stop=stop))
        if outage is not None or report is None:
            self.pending.put_back(batch)
            self._wait_after_outage(outage or "", stop, "batch", len(batch))
            return False
        self._done(report, stop)
        return True

    def _compact_when_idle(self) -> None:
        if (self._compact is None or not self._deleted_since or len(self.pending)
                or time.monotonic() - self._last_apply < self.options.compact_idle_s):
            return
        self._deleted_since = 0.0
        self._compact()

    def _call(self, fn: Callable[[], IngestReport]) -> tuple[IngestReport | None, str | None]:
        """(report, None), or (None or the report, why the store was away): only that is retried."""
        try:
            report = fn()
        except Exception as exc:
            if kind_of(exc) is not ErrorKind.UNAVAILABLE:
                raise
            return None, f"{type(exc).__name__}: {exc}"
        return report, report.outage

    def _wait_after_outage(self, outage: str, stop: threading.Event, what: str, paths: int = 0) -> None:
        self._backoff = min(self.options.retry_max_s, self._backoff * 2 or self.options.retry_s)
        self.metrics.retries.inc()
        log.warning("watch: store unavailable, retrying", extra={"what": what, "paths": paths,
                                                                 "retry_in_s": self._backoff, "error": outage})
        stop.wait(self._backoff)

    def _done(self, report: IngestReport, stop: threading.Event) -> None:
        """Log and count what a sync or batch did. After a stop, its failed files are the ones the stop left
        undone (the next start's sync takes them): they are neither logged nor counted as failures."""
        self._backoff = 0.0
        self._last_apply = time.monotonic()
        if not self._deleted_since and any(f.points_deleted for f in report.files):
            self._deleted_since = self._last_apply
        self.metrics.applies.inc()
        self.metrics.last_apply.set(time.time())
        self.metrics.pending.set(len(self.pending))
        stopped = stop.is_set()
        for line in _lines(report):
            if stopped and line["action"] == "failed":
                continue
            self.metrics.files.labels(line["action"]).inc()
            if line["action"] == "failed":
                self.metrics.failures.inc()
            (log.warning if line["action"] == "failed" else log.info)("watch: applied", extra=line)

    # -- on a thread (the service) --------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run_thread, name="watch", daemon=True)
        self._thread.start()

    def _run_thread(self) -> None:
        try:
            self.run(self._stop)
        except Exception as exc:  # the thread ends; /metrics shows german_rag_watch_running 0
            self.error = exc
            log.exception("watch stopped by an error", extra={"error": f"{type(exc).__name__}: {exc}"})

    def request_stop(self) -> None:
        """Ask the thread to stop after the current file (a signal handler's first step); `stop` waits for it."""
        self._stop.set()

    def stop(self, timeout: float | None = None) -> None:
        """Stop after the current file and wait for the thread: `timeout` seconds, then a file still being parsed
        is cut off (its parse worker killed; it stays for the next start) and the thread gets a short grace."""
        self._stop.set()
        if self._thread is None:
            return
        self._thread.join(timeout)
        if self._thread.is_alive():
            killed = abort_all(self._thread.ident)
            log.warning("watch: stop timeout reached, parse cut off", extra={"parse_workers": killed})
            self._thread.join(STOP_GRACE_S)


def check_roots(roots: Sequence[str | Path]) -> list[Path]:
    """The roots as absolute real paths (events name those); each must be a folder, or a ConfigError names it."""
    if not roots:
        raise ConfigError("watch: name at least one folder to watch")
    out = []
    for raw in roots:
        root = Path(raw).resolve()
        if not root.is_dir():
            raise ConfigError(f"watch root {raw}: not a folder (missing, or not a directory)")
        out.append(root)
    return out


def _counts(report: IngestReport) -> dict:
    s = report.summary()
    return {k: s[k] for k in ("files_seen", "ingested", "unchanged", "failed", "points_written", "points_deleted")
            if k in s} | {"deleted": report.count("deleted")}


def _lines(report: IngestReport) -> list[dict]:
    """One log record per change: a rename (the new source took the vectors of a vanished one, which was then
    deleted) is one `renamed` line, not an ingest and a delete."""
    renamed = {f.renamed_from for f in report.files if f.renamed_from}
    gone = {f.source: f.points_deleted for f in report.files if f.status == "deleted"}
    lines = []
    for f in report.files:
        if (f.status == "deleted" and f.source in renamed) or (f.status == "unchanged" and not f.points_updated):
            continue
        action = "renamed" if f.renamed_from else ACTIONS.get(f.status, f.status)
        line: dict = {"action": action, "source": f.source, "chunks": f.chunks, "points_written": f.points_written,
                      "points_deleted": f.points_deleted, "chunks_reused": f.chunks_reused}
        if f.renamed_from:
            line["renamed_from"] = f.renamed_from
            line["points_deleted"] += gone.get(f.renamed_from, 0)
        if f.points_updated:
            line["points_updated"] = f.points_updated
        if f.error:
            line["error"] = f.error
        lines.append(line)
    return lines
