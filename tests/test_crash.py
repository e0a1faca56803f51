"""Crash safety: `german-rag ingest` killed with SIGKILL at random points, then run again.

After every kill the store must be consistent (no chunk twice; a file that was complete before the
run is still complete in some version: new chunks are written before old ones are deleted), and
the next clean run must leave exactly what a clean run leaves: the same point ids, the same payloads
(except `ingested_at`), the same count. The default suite kills at one point (a subprocess start costs
seconds); `--run-slow` at many (GERMAN_RAG_KILL_POINTS per scenario, default 12, two scenarios).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from ingest.schema import P
from pipelines.api import ingest_paths
from pipelines.build import build_store
from pipelines.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
COLLECTION = "crash"
SENTENCES = [
    "Die Arbeitszeit darf acht Stunden werktäglich nicht überschreiten.",
    "Der Urlaub beträgt jährlich mindestens vierundzwanzig Werktage.",
    "Die Kündigungsfrist verlängert sich mit der Dauer des Arbeitsverhältnisses.",
    "Ruhepausen von mindestens dreißig Minuten sind im Voraus festzulegen.",
    "Der Betriebsrat ist vor jeder Kündigung zu hören.",
    "Nachtarbeit ist die Arbeit, die mehr als zwei Stunden der Nachtzeit umfasst.",
]


def write_corpus(folder: Path, version: int, files: int = 8, changed: int = 0) -> None:
    """`files` German documents of ~30 chunks each; the first `changed` carry `version` in their text."""
    folder.mkdir(exist_ok=True)
    for i in range(files):
        rnd = random.Random(i)
        tag = version if i < changed else 0
        paras = [f"# Abschnitt {j} der Datei {i} (Fassung {tag})\n\n"
                 + " ".join(rnd.choice(SENTENCES) for _ in range(12)) for j in range(12)]
        (folder / f"regel_{i:02d}.md").write_text("\n\n".join(paras), encoding="utf-8")


ENGINE = os.environ.get("GERMAN_RAG_QDRANT_ENGINE", "edge")  # set per test by the `engine` fixture


@pytest.fixture(params=["edge", "local"])
def engine(request, monkeypatch) -> str:
    """Both embedded engines: edge (the default) and qdrant-client's local mode."""
    monkeypatch.setattr(sys.modules[__name__], "ENGINE", request.param)
    return request.param


def env_for(model: Path, qdrant: Path) -> dict[str, str]:
    return {**os.environ, "GERMAN_RAG_QDRANT_ENGINE": ENGINE,
            "GERMAN_RAG_EMBED_MODEL": str(model), "GERMAN_RAG_QDRANT_PATH": str(qdrant),
            "GERMAN_RAG_COLLECTION": COLLECTION, "GERMAN_RAG_UPSERT_BATCH": "3", "GERMAN_RAG_CHUNK_TOKENS": "64",
            "GERMAN_RAG_CHUNK_OVERLAP": "8", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}


def clean_ingest(model: Path, qdrant: Path, corpus: Path, monkeypatch) -> float:
    """An uninterrupted run in this process with the same settings the CLI gets from the environment."""
    for key, value in env_for(model, qdrant).items():
        if key.startswith("GERMAN_RAG_"):
            monkeypatch.setenv(key, value)
    started = time.perf_counter()
    report = ingest_paths(load_settings(), [corpus], progress=False)
    assert report.count("failed") == 0 and report.balanced
    return time.perf_counter() - started


def snapshot(qdrant: Path) -> dict[str, dict]:
    """point id -> payload without ingested_at and modified (the reference run wrote its files at another time),
    read through the store adapter of the engine under test."""
    fields = [v for k, v in vars(P).items() if k.isupper() and v not in (P.INGESTED_AT, P.MODIFIED)]
    store = build_store(Settings(qdrant_path=str(qdrant), collection=COLLECTION, qdrant_engine=ENGINE))
    try:
        return {pid: payload for pid, payload, _ in store.scan(fields)}
    finally:
        store.close()


def killed_run(model: Path, qdrant: Path, corpus: Path, delay: float) -> int | None:
    """Start the CLI, wait until it has opened the collection, sleep `delay`, SIGKILL it."""
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "ingest", str(corpus), "--json"],
                            env=env_for(model, qdrant), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    marker = (qdrant / "edge" / COLLECTION / "collection.json" if ENGINE == "edge"
              else qdrant / "collection" / COLLECTION)
    deadline = time.monotonic() + 120
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(delay)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    return proc.wait()


def check_consistent(points: dict[str, dict], complete_before: set[str]) -> None:
    """No chunk twice; each source that was complete before the run still has a complete version."""
    keys = Counter((p["doc_id"], p["chunk_index"]) for p in points.values())
    assert max(keys.values(), default=1) == 1, "a chunk is stored twice"
    for pid, p in points.items():
        assert pid == p["chunk_id"]
    per_doc: dict[str, list[dict]] = {}
    for p in points.values():
        per_doc.setdefault(p["doc_id"], []).append(p)
    complete = {ps[0]["source"] for ps in per_doc.values() if len(ps) == ps[0]["chunk_count"]}
    lost = complete_before - complete
    assert not lost, f"files with no complete version after the kill: {sorted(lost)}"


def run_kill_points(tmp_path: Path, model: Path, monkeypatch, points: int, seed: int,
                    fresh: bool = True) -> dict:
    """`points` kills in each scenario: (A, if `fresh`) the first ingest, (B) a re-ingest with half the
    files changed. Returns counts for the report."""
    rnd = random.Random(seed)
    v1, v2 = tmp_path / "v1", tmp_path / "v2"
    write_corpus(v1, 1)
    write_corpus(v2, 2, changed=4)
    corpus = tmp_path / "corpus"  # sources are absolute paths: every run reads this one folder
    t1 = clean_ingest(model, tmp_path / "ref1", _copy_corpus(v1, corpus), monkeypatch)
    clean_ingest(model, tmp_path / "ref2", _copy_corpus(v2, corpus), monkeypatch)
    ref1, ref2 = snapshot(tmp_path / "ref1"), snapshot(tmp_path / "ref2")
    assert len(ref1) > 100 and ref1 != ref2
    stats = {"kills": 0, "finished_before_kill": 0}
    for k in range(points):
        q = tmp_path / f"q{k}"
        if fresh:  # A: the first ingest is killed; a re-run must equal a clean run
            _copy_corpus(v1, corpus)
            code = killed_run(model, q, corpus, rnd.uniform(0, t1 * 1.3))
            stats["kills" if code == -signal.SIGKILL else "finished_before_kill"] += 1
            check_consistent(snapshot(q), set())
            clean_ingest(model, q, corpus, monkeypatch)
            assert snapshot(q) == ref1
        else:
            shutil.copytree(tmp_path / "ref1", q)
        # B: half the files changed; killed mid-run, no file may lose its last complete version
        before = {p["source"] for p in ref1.values()}
        _copy_corpus(v2, corpus)
        code = killed_run(model, q, corpus, rnd.uniform(0, t1 * 0.8))
        stats["kills" if code == -signal.SIGKILL else "finished_before_kill"] += 1
        check_consistent(snapshot(q), before)
        clean_ingest(model, q, corpus, monkeypatch)
        assert snapshot(q) == ref2
    return stats


def _copy_corpus(src: Path, dst: Path) -> Path:
    """The same paths with the content of `src` (sources are absolute paths, so the folder stays)."""
    dst.mkdir(exist_ok=True)
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_sigkill_at_random_points_then_rerun_equals_clean_run(tmp_path, tiny_model_dir, monkeypatch, engine):
    """The default suite: one kill in a changed-file re-ingest (the case where data could be lost)."""
    stats = run_kill_points(tmp_path, tiny_model_dir, monkeypatch, points=1, seed=7, fresh=False)
    assert stats["kills"] + stats["finished_before_kill"] == 1


@pytest.mark.slow
def test_sigkill_at_many_points(tmp_path, tiny_model_dir, monkeypatch, engine):
    n = int(os.environ.get("GERMAN_RAG_KILL_POINTS", "12"))
    stats = run_kill_points(tmp_path, tiny_model_dir, monkeypatch, points=n, seed=11)
    print(f"kill points: {2 * n}, killed mid-run: {stats['kills']}, finished first: "
          f"{stats['finished_before_kill']}")
    assert stats["kills"] >= n  # most kills must land inside the run
