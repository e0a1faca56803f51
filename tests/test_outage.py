"""Outages at the client boundary: a Qdrant REST stand-in behind a fault-injecting proxy on loopback.

The stand-in (tests/standin/qdrant_rest.py) is not Qdrant: it serves the REST endpoints german-rag
uses from qdrant-client's embedded engine, so retries, timeouts and messages meet real sockets.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from ingest.chunk import ChunkOptions, TokenChunker
from ingest.schema import StoreError
from ingest.store.base import StoreOptions, StoreUnavailableError
from ingest.store.qdrant import BULK_KEY, QdrantStore
from pipelines.indexing.run import IngestRunner
from tests.standin.qdrant_rest import FaultProxy, StandinQdrant

TEXT = ("Die Arbeitszeit darf acht Stunden werktäglich nicht überschreiten. Ruhepausen sind festzulegen. "
        "Der Urlaub beträgt jährlich mindestens vierundzwanzig Werktage. ")


@pytest.fixture()
def server():
    with StandinQdrant() as s:
        proxy = FaultProxy(s.port)
        proxy.start()
        yield s, proxy
        proxy.stop()


@pytest.fixture()
def corpus(tmp_path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(4):
        (folder / f"datei_{i}.txt").write_text(f"Datei {i}. " + TEXT * (3 + i), encoding="utf-8")
    return folder


def make_runner(embedder, url: str, **store) -> IngestRunner:
    options = StoreOptions(collection="outage", url=url, timeout=store.pop("timeout", 5), **store)
    return IngestRunner(embedder, TokenChunker(embedder, ChunkOptions(48, 8)), QdrantStore(options), "tiny",
                        progress=False)


def stored(standin: StandinQdrant) -> dict[str, dict]:
    points, _ = standin.engine.scroll("outage", limit=10_000, with_payload=True)
    return {str(p.id): p.payload for p in points}


def test_stopped_server_gives_a_clear_error_after_bounded_retries(server):
    _, proxy = server
    proxy.stop()
    store = QdrantStore(StoreOptions(collection="outage", url=proxy.url, retries=3, retry_backoff_s=0.05))
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError, match=r"Qdrant at http://127\.0\.0\.1:\d+ is unavailable: "
                                                    r"collection_exists failed 4 times in [\d.]+ s"):
        store.exists()
    assert time.monotonic() - started < 3  # 0.05 + 0.1 + 0.2 of backoff, not an endless wait
    store.close()


def test_restart_during_a_run_is_retried_and_nothing_is_lost(server, corpus, tiny_embedder):
    standin, proxy = server
    runner = make_runner(tiny_embedder, proxy.url, retries=8, retry_backoff_s=0.1)

    def restart_after_first(result) -> None:
        if result.source.endswith("datei_0.txt"):
            proxy.restart_after(0.8)  # down for 0.8 s while the next file is written

    report = runner.run([corpus], on_file=restart_after_first)
    runner.store.close()
    assert [f.status for f in report.files] == ["ingested"] * 4, [f.error for f in report.files]
    points = stored(standin)
    assert len(points) == report.points_written == report.chunks
    for f in report.files:
        assert sum(p["source"] == f.source for p in points.values()) == f.points_written


def test_slow_server_fails_clearly_and_reports_only_what_was_written(server, corpus, tiny_embedder):
    standin, proxy = server
    runner = make_runner(tiny_embedder, proxy.url, retries=2, retry_backoff_s=0.05, timeout=1)

    def slow_after_first(result) -> None:
        if result.source.endswith("datei_0.txt"):
            proxy.slow(1.5)  # every request now outlasts the client's 1 s timeout

    report = runner.run([corpus], on_file=slow_after_first)
    runner.store.close()
    first, second, *rest = report.files
    assert first.status == "ingested"
    assert second.status == "failed" and "is unavailable" in second.error and "timed out" in second.error
    assert all(f.status == "failed" and "not attempted: Qdrant at" in f.error for f in rest)
    assert report.points_written == first.points_written  # nothing counted that was not confirmed
    proxy.slow(0)
    time.sleep(1.6)  # let the delayed requests drain
    again = make_runner(tiny_embedder, proxy.url).run([corpus])
    statuses = [f.status for f in again.files]
    # The timed-out upsert of the second file may still have reached the server whole (a delayed
    # request is processed late): then it is complete and unchanged now; either way never doubled.
    assert statuses[0] == "unchanged" and statuses[1] in ("unchanged", "ingested")
    assert statuses[2:] == ["ingested", "ingested"]
    keys = Counter((p["doc_id"], p["chunk_index"]) for p in stored(standin).values())
    assert max(keys.values()) == 1


def test_concurrent_runs_on_one_server_do_not_duplicate(server, corpus, tiny_embedder):
    standin, _ = server
    reference = make_runner(tiny_embedder, standin.url).run([corpus])
    expected = stored(standin)
    standin.engine.delete_collection("outage")
    runners = [make_runner(tiny_embedder, standin.url, retries=3) for _ in range(3)]
    reports: list = []

    def run(runner: IngestRunner) -> None:
        try:
            reports.append(runner.run([corpus]))
        except Exception as exc:
            reports.append(exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(reports) == 3 and all(not isinstance(r, Exception) and r.count("failed") == 0 for r in reports), \
        reports
    points = stored(standin)
    assert set(points) == set(expected) and len(points) == reference.chunks


def test_embedded_store_held_by_another_process_is_in_use(tmp_path):
    path = tmp_path / "q"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from qdrant_client import QdrantClient; "
         f"c = QdrantClient(path={str(path)!r}); print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        store = QdrantStore(StoreOptions(collection="t", path=str(path)))
        with pytest.raises(StoreError, match=r"embedded Qdrant at .* is in use by another process"):
            store.exists()
    finally:
        holder.kill()
        holder.wait()
    store = QdrantStore(StoreOptions(collection="t", path=str(path)))
    assert store.exists() is False  # usable once the other process is gone, nothing corrupted
    store.close()


def test_bulk_load_defers_indexing_and_restores_it_even_after_a_dead_run(server, corpus, tiny_embedder):
    standin, _ = server
    runner = make_runner(tiny_embedder, standin.url)
    runner.bulk = True
    during: list[int | None] = []
    report = runner.run([corpus], on_file=lambda r: during.append(standin.indexing_threshold.get("outage")))
    assert report.count("ingested") == 4 and during == [0, 0, 0, 0]  # every file written with indexing off
    assert standin.threshold_log == [0, 20_000] and standin.indexing_threshold["outage"] == 20_000
    assert BULK_KEY not in runner.store.metadata()
    assert runner.store.begin_bulk() and standin.indexing_threshold["outage"] == 0  # a bulk run that then dies
    runner.store.close()
    again = make_runner(tiny_embedder, standin.url).run([corpus])  # the next (plain) run restores indexing
    assert again.count("unchanged") == 4 and standin.indexing_threshold["outage"] == 20_000


def test_embedded_engines_have_nothing_to_defer(tmp_path):
    from ingest.store.edge import EdgeStore

    for store in (QdrantStore(StoreOptions(collection="b", path=str(tmp_path / "l"))),
                  EdgeStore(StoreOptions(collection="b", path=str(tmp_path / "e")))):
        store.ensure_collection("m", 4)
        assert store.begin_bulk() is False and store.end_bulk() is False
        store.close()
