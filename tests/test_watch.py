"""`german-rag watch`: real file events (inotify) in tmp_path, a real store, a real small model.

Waits poll with deadlines; a deadline is a failure bound, never a speed assertion. The one timing the
tests rely on is a write paused for less than the debounce (0.2 s against 1 s).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

import pytest

from ingest.chunk import ChunkOptions, TokenChunker
from ingest.schema import P
from ingest.store.base import StoreOptions
from ingest.store.edge import EdgeStore
from pipelines.indexing.report import IngestReport
from pipelines.indexing.run import IngestRunner
from pipelines.indexing.sync import Syncer
from pipelines.indexing.watch import Watcher, WatchMetrics, WatchOptions
from pipelines.indexing.watch_events import FolderEvents
from pipelines.indexing.watch_pending import PendingSet
from pipelines.sources import source_name

DEADLINE_S = 60.0
SATZ = "Der Arbeitgeber hat dem Arbeitnehmer jährlich mindestens vierundzwanzig Werktage Urlaub zu gewähren."


def wait_for(what: str, check: Callable[[], object], deadline_s: float = DEADLINE_S) -> object:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {deadline_s} s waiting for {what}")


class RecordingSyncer(Syncer):
    """The real Syncer, recording each apply call: its paths and the bytes of each changed file at that moment."""

    def __init__(self, runner: IngestRunner, roots: list[Path]) -> None:
        super().__init__(runner, roots)
        self.calls: list[tuple[list[Path], list[Path], dict[Path, bytes]]] = []

    def apply(self, changed: Iterable, removed: Iterable, on_file=None, stop=None) -> IngestReport:
        changed, removed = [Path(p) for p in changed], [Path(p) for p in removed]
        self.calls.append((changed, removed, {p: p.read_bytes() for p in changed if p.is_file()}))
        return super().apply(changed, removed, on_file, stop)


@pytest.fixture()
def docs(tmp_path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "start.txt").write_text(f"Anfang. {SATZ}", encoding="utf-8")
    (folder / "bleibt.txt").write_text("Diese Datei bleibt, damit der Ordner nie leer ist.", encoding="utf-8")
    return folder


@pytest.fixture()
def edge_runner(tmp_path, tiny_embedder):
    store = EdgeStore(StoreOptions(collection="watch", path=str(tmp_path / "qdrant")))
    yield IngestRunner(tiny_embedder, TokenChunker(tiny_embedder, ChunkOptions(256, 16)), store, "tiny",
                       progress=False)
    store.close()


def watching(reconciler, roots, compact=None, **options) -> Watcher:
    watcher = Watcher(reconciler, roots, WatchOptions(**{"debounce_s": 1.0, "retry_s": 0.1, **options}),
                      compact=compact)
    watcher.start()
    wait_for("the start's sync", watcher.synced.is_set)
    return watcher


def stored_texts(store) -> dict[str, list[str]]:
    out: dict[str, list[tuple[int, str]]] = {}
    for _, payload, _ in store.scan([P.SOURCE, P.TEXT, P.CHUNK_INDEX]):
        out.setdefault(payload[P.SOURCE], []).append((payload[P.CHUNK_INDEX], payload[P.TEXT]))
    return {s: [t for _, t in sorted(chunks)] for s, chunks in out.items()}


# -- the pending set on its own (a clock the test moves) -------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_file_is_ready_only_once_it_settled(tmp_path):
    clock, f = Clock(), tmp_path / "a.txt"
    pending = PendingSet(1.0, clock)
    f.write_text("eins")
    pending.changed(f)
    clock.now += 0.5
    assert not pending.take_ready(10)
    clock.now += 0.6
    with f.open("a") as fh:
        fh.write(" zwei")  # written again without an event reaching us: the size gives it away
    assert not pending.take_ready(10)
    clock.now += 1.0
    batch = pending.take_ready(10)
    assert batch.changed == [f] and not batch.removed and len(pending) == 0


def test_deleted_before_it_settled_is_a_removal_and_a_move_goes_with_its_destination(tmp_path):
    clock = Clock()
    pending = PendingSet(1.0, clock)
    gone, old, new = tmp_path / "weg.txt", tmp_path / "alt.txt", tmp_path / "neu.txt"
    gone.write_text("kurz")
    pending.changed(gone)
    gone.unlink()
    new.write_text("Inhalt")
    pending.removed(old, moved_to=new)
    clock.now += 0.6
    pending.changed(new)  # the destination was written again: the move's source waits for it
    clock.now += 0.6
    first = pending.take_ready(10)
    assert first.removed == [gone] and not first.changed
    clock.now += 1.0
    second = pending.take_ready(10)
    assert second.removed == [old] and second.changed == [new] and second.moves == {old: new}


def test_a_fresh_removal_joins_a_batch_of_changes(tmp_path):
    clock = Clock()
    pending = PendingSet(1.0, clock)
    new, old = tmp_path / "neuer_ordner" / "datei.txt", tmp_path / "datei.txt"
    new.parent.mkdir()
    new.write_text("Inhalt")
    pending.changed(new)  # a move into a folder made a moment before: the creation comes first ...
    clock.now += 0.5
    pending.removed(old)  # ... and the deletion half a second later
    clock.now += 0.5
    batch = pending.take_ready(10)
    assert batch.changed == [new] and batch.removed == [old]


def test_batches_are_capped_and_put_back_after_an_outage(tmp_path):
    clock = Clock()
    pending = PendingSet(1.0, clock)
    files = [tmp_path / f"f{i:02d}.txt" for i in range(10)]
    for f in files:
        f.write_text(f.name)
        pending.changed(f)
    clock.now += 1.0
    batch = pending.take_ready(4)
    assert len(batch) == 4 and len(pending) == 6
    pending.put_back(batch)
    assert len(pending) == 10
    taken = [pending.take_ready(4), pending.take_ready(4), pending.take_ready(4)]
    assert sorted(p for b in taken for p in b.changed) == files


def test_hidden_files_are_ignored_and_a_sidecar_event_is_its_document(tmp_path):
    events = FolderEvents(PendingSet(1.0), [tmp_path], ignore=[tmp_path / "store"])
    assert events.document(tmp_path / "a" / "bericht.pdf") == tmp_path / "a" / "bericht.pdf"
    assert events.document(tmp_path / "bericht.pdf.meta.json") == tmp_path / "bericht.pdf"
    assert events.document(tmp_path / "bericht.pdf.meta.yaml") == tmp_path / "bericht.pdf"
    for hidden in (".bericht.pdf.swp", ".git/config", "a/.cache/x.txt", "store/segment.dat"):
        assert events.document(tmp_path / hidden) is None
    assert events.document(tmp_path.parent / "elsewhere.txt") is None


# -- real events, a real store, a real model ---------------------------------------------------------------
def test_create_and_write_in_pieces_is_ingested_once_with_its_final_content(docs, edge_runner):
    rec = RecordingSyncer(edge_runner, [docs])
    watcher = watching(rec, [docs])
    try:
        assert set(stored_texts(edge_runner.store)) == {source_name(docs / n) for n in ("start.txt", "bleibt.txt")}
        target = docs / "unterordner" / "brief.txt"
        target.parent.mkdir()
        pieces = [f"Teil {i}. {SATZ} " for i in range(5)]
        with target.open("w", encoding="utf-8") as fh:
            for piece in pieces:
                fh.write(piece)
                fh.flush()
                time.sleep(0.2)  # shorter than the debounce: the file is still being written
        final = "".join(pieces).strip()
        wait_for("the finished file stored", lambda: stored_texts(edge_runner.store).get(source_name(target)))
        assert " ".join(stored_texts(edge_runner.store)[source_name(target)]) == final
        applied = [seen[target] for _, _, seen in rec.calls if target in seen]
        assert applied == ["".join(pieces).encode()]  # read once, complete
    finally:
        watcher.stop(30)
    assert watcher.error is None


def test_move_and_delete_then_compact_when_idle(docs, edge_runner):
    rec = RecordingSyncer(replace(edge_runner, compact=False), [docs])  # as build_watcher: no vacuum per batch
    compacted: list[bool] = []
    watcher = watching(rec, [docs], compact=lambda: compacted.append(edge_runner.store.compact()),
                       compact_idle_s=0.5)
    old, new, stays = docs / "start.txt", docs / "archiv" / "umbenannt.txt", source_name(docs / "bleibt.txt")
    try:
        new.parent.mkdir()
        old.rename(new)
        wait_for("the moved file stored under its new name",
                 lambda: set(stored_texts(edge_runner.store)) == {source_name(new), stays})
        move = next(c for c in rec.calls if new in c[0])
        assert move[0] == [new] and move[1] == [old], rec.calls  # one call: old path removed, new path changed
        new.unlink()
        wait_for("the deleted file gone from the store", lambda: set(stored_texts(edge_runner.store)) == {stays})
        wait_for("the store compacted once the folder was quiet", lambda: compacted)
        assert all(compacted)  # each time a segment with deleted points was vacuumed
    finally:
        watcher.stop(30)
    totals = watcher.metrics.totals()
    # the move kept its vectors (no model call): one `renamed`, then one `deleted`
    assert totals["failures"] == 0 and totals["files"] == {"ingested": 2, "renamed": 1, "deleted": 1}, totals


def test_a_sidecar_change_re_applies_its_document_and_is_never_a_document(docs, edge_runner):
    rec = RecordingSyncer(edge_runner, [docs])
    watcher = watching(rec, [docs], debounce_s=0.3)
    doc, side = docs / "start.txt", docs / "start.txt.meta.json"

    def groups() -> set[tuple[str, ...]]:
        return {tuple(payload[P.GROUPS]) for _, payload, _ in edge_runner.store.scan([P.SOURCE, P.GROUPS])
                if payload[P.SOURCE] == source_name(doc)}

    try:
        side.write_text(json.dumps({"groups": ["personal"]}), encoding="utf-8")
        wait_for("the document's access fields from its new sidecar", lambda: groups() == {("personal",)})
    finally:
        watcher.stop(30)
    assert all(side not in c[0] and side not in c[1] for c in rec.calls)  # the sidecar itself never applied
    assert any(doc in c[0] for c in rec.calls)
    assert watcher.metrics.totals()["files"].get("updated") == 1  # payload only, no re-embedding


def test_a_burst_of_200_files_is_stored_once_in_few_calls(docs, edge_runner):
    rec = RecordingSyncer(edge_runner, [docs])
    watcher = watching(rec, [docs], debounce_s=0.5, batch=64)
    try:
        burst = docs / "stapel"
        burst.mkdir()
        for i in range(200):
            (burst / f"notiz_{i:03d}.txt").write_text(f"Notiz {i}: {SATZ}", encoding="utf-8")
        names = {source_name(burst / f"notiz_{i:03d}.txt") for i in range(200)}
        wait_for("all 200 files stored", lambda: names <= set(edge_runner.store.sources()))
    finally:
        watcher.stop(30)
    assert edge_runner.store.count() == 202  # one chunk each, once: nothing stored twice
    calls = [c for c in rec.calls if any(p.parent == burst for p in c[0])]
    assert all(len(c[0]) + len(c[1]) <= 64 for c in rec.calls)
    assert len(calls) <= 20, [len(c[0]) for c in calls]  # batched, not one call per file


def test_a_store_outage_during_watch_loses_nothing(docs, tiny_embedder):
    from ingest.store.qdrant import QdrantStore
    from tests.standin.qdrant_rest import FaultProxy, StandinQdrant

    with StandinQdrant() as standin:
        proxy = FaultProxy(standin.port)
        proxy.start()
        store = QdrantStore(StoreOptions(collection="watch", url=proxy.url, timeout=5, retries=1,
                                         retry_backoff_s=0.05))
        runner = IngestRunner(tiny_embedder, TokenChunker(tiny_embedder, ChunkOptions(256, 16)), store, "tiny",
                              progress=False)
        metrics = WatchMetrics()
        watcher = Watcher(RecordingSyncer(runner, [docs]), [docs],
                          WatchOptions(debounce_s=0.3, retry_s=0.2, retry_max_s=0.5), metrics)
        watcher.start()
        try:
            wait_for("the start's sync", watcher.synced.is_set)
            proxy.stop()
            late = docs / "waehrend_ausfall.txt"
            late.write_text(f"Geschrieben während des Ausfalls. {SATZ}", encoding="utf-8")
            wait_for("a retry while the store is away", lambda: metrics.totals()["retries"] >= 2)
            assert len(watcher.pending) >= 1
            proxy.start()
            wait_for("the file stored once the store is back", lambda: source_name(late) in store.sources())
        finally:
            watcher.stop(30)
            proxy.stop()
            store.close()
    assert watcher.error is None
    assert metrics.totals()["failures"] == 0


# -- the doors: `german-rag watch` as a process, `serve --watch` ---------------------------------------------
def _log_lines(path: Path) -> list[dict]:
    lines = []
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if raw.startswith("{"):
            lines.append(json.loads(raw))
    return lines


def test_sigterm_stops_a_watch_process_cleanly_and_the_next_sync_finishes(settings_env, docs):
    log_file = settings_env / "watch.log"
    env = {**os.environ, "GERMAN_RAG_LOG_JSON": "true", "GERMAN_RAG_WATCH_DEBOUNCE": "0.3"}
    with log_file.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "watch", str(docs), "--json"], env=env,
                                cwd=settings_env, stdout=subprocess.PIPE, stderr=err)
    try:
        wait_for("the start's sync", lambda: proc.poll() is not None or any(
            r["msg"] == "watch: folders reconciled" for r in _log_lines(log_file)))
        assert proc.poll() is None, log_file.read_text()
        burst = [docs / f"eingang_{i:02d}.txt" for i in range(30)]
        for i, path in enumerate(burst):
            path.write_text(f"Eingang {i}. {SATZ}", encoding="utf-8")
        wait_for("a file applied", lambda: any(r["msg"] == "watch: applied" and "eingang_" in r["source"]
                                               for r in _log_lines(log_file)))
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=DEADLINE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, log_file.read_text()
    totals = json.loads(out)
    assert totals["failures"] == 0 and totals["files"]["ingested"] >= 3, totals  # 2 at the start, then the burst
    applied = [r for r in _log_lines(log_file) if r["msg"] == "watch: applied"]
    assert all(set(r) >= {"action", "source", "chunks", "points_written"} for r in applied)
    assert not any("key" in k or "secret" in k for r in applied for k in r)
    store = EdgeStore(StoreOptions(collection="german_rag", path=str(settings_env / "qdrant")))
    try:  # what the stopped run stored is whole: one chunk per file, nothing half-written
        stored = store.sources()
        assert all(entry["chunks"] == 1 for entry in stored.values()), stored
    finally:
        store.close()
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", "sync", str(docs), "--json"], env=env,
                          cwd=settings_env, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout)["failed"] == 0
    store = EdgeStore(StoreOptions(collection="german_rag", path=str(settings_env / "qdrant")))
    try:
        assert {source_name(p) for p in burst} <= set(store.sources())
    finally:
        store.close()


def test_serve_watch_applies_events_and_shows_its_counters_on_metrics(tiny_model_dir, tmp_path, docs):
    from tests.test_service_support import live_server, service_settings

    settings = service_settings(tiny_model_dir, tmp_path / "qdrant", upload_dir=str(tmp_path), watch_debounce=0.3)
    with live_server(settings, watch=(str(docs),)) as live:
        assert live.runtime.startup_error is None, live.runtime.startup_error
        watcher = live.runtime.watcher
        assert watcher is not None
        wait_for("the start's sync", watcher.synced.is_set)
        neu = docs / "neu.txt"
        neu.write_text(f"Neu im Ordner. {SATZ}", encoding="utf-8")
        wait_for("the new file stored", lambda: source_name(neu) in live.runtime.locked_store.sources())
        with live.client() as client:
            text = client.get("/metrics").text
            found = client.post("/v1/retrieve", json={"query": "Neu im Ordner", "top_k": 3}).json()
    assert 'german_rag_watch_files_total{action="ingested"} 3.0' in text, text
    assert "german_rag_watch_running 1.0" in text and "german_rag_watch_last_apply_timestamp_seconds" in text
    assert source_name(neu) in {p["source"] for p in found["passages"]}, found
    assert watcher.error is None and not watcher._thread.is_alive()  # stopped with the service
