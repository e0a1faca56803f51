"""`embed_backend = auto` on a CPU: the backends measured on this machine, the fastest that agrees with fp32 kept."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import ingest.embed_choice as choice
from ingest.embed import EmbedderOptions, HFEmbedder
from tests.test_embed_backends import GERMAN, cosines


def auto(model_dir, cache) -> HFEmbedder:
    emb = HFEmbedder(EmbedderOptions(model=str(model_dir), backend="auto", backend_cache=str(cache)))
    emb.load()
    return emb


def test_auto_measures_every_candidate_and_keeps_the_fastest_that_agrees(tiny_model_dir, tmp_path):
    emb = auto(tiny_model_dir, tmp_path)
    result = emb.calibration
    assert result is not None and not result.cached
    assert [t.backend for t in result.trials] == ["torch", *choice.candidates()]
    passing = [t for t in result.trials if t.passed]
    assert result.chosen == max(passing, key=lambda t: t.speedup or 0).backend == emb.backend_name
    for t in result.trials:
        assert t.error is None and 0.9 < (t.min_cosine or 0) <= t.mean_cosine <= 1.0 + 1e-6 and t.query_ms
        # only what agrees with fp32 is timed (fp32 itself among them)
        assert (t.speedup is not None and t.speedup > 0 and t.tokens_per_s) if t.passed else t.speedup is None
    assert result.texts == 62 and result.tokens > 3000 and result.cpu and result.threads >= 1
    reference = HFEmbedder(EmbedderOptions(model=str(tiny_model_dir))).embed_documents(GERMAN)
    assert cosines(emb.embed_documents(GERMAN), reference).min() >= 0.99


def test_the_measurement_is_stored_with_the_cpu_and_read_back(tiny_model_dir, tmp_path, monkeypatch):
    first = auto(tiny_model_dir, tmp_path).calibration
    [stored] = list(tmp_path.rglob("auto-*.json"))
    stamp = stored.stat().st_mtime_ns
    again = auto(tiny_model_dir, tmp_path)
    assert again.calibration is not None and again.calibration.cached and again.calibration == first
    assert again.backend_name == first.chosen and stored.stat().st_mtime_ns == stamp
    assert json.loads(stored.read_text())["cpu"] == choice.cpu_identity()[0]
    # another instruction set (a kernel cap) is another machine: measured again, stored beside the first
    monkeypatch.setenv("CT2_FORCE_CPU_ISA", "AVX2")
    capped = auto(tiny_model_dir, tmp_path)
    assert capped.calibration is not None and not capped.calibration.cached
    assert len(list(tmp_path.rglob("auto-*.json"))) == 2


def test_a_damaged_store_is_measured_again(tiny_model_dir, tmp_path):
    auto(tiny_model_dir, tmp_path)
    [stored] = list(tmp_path.rglob("auto-*.json"))
    stored.write_text('{"chosen": "ct2-int8", "trials": [', encoding="utf-8")
    emb = auto(tiny_model_dir, tmp_path)
    assert emb.calibration is not None and not emb.calibration.cached
    assert json.loads(stored.read_text())["chosen"] == emb.backend_name


def test_nothing_agrees_closely_enough_keeps_fp32(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(choice, "MIN_COSINE", 1.01)  # a rule nothing meets: fp32 torch is what is left
    emb = auto(tiny_model_dir, tmp_path)
    assert emb.backend_name == "torch" and emb.calibration is not None
    assert len(emb.calibration.trials) == 1 + len(choice.candidates())
    assert not any(t.passed for t in emb.calibration.trials)
    assert [t.backend for t in emb.calibration.trials if t.speedup] == ["torch"]  # timed, as the fallback


def test_a_candidate_that_cannot_run_here_is_reported_not_chosen(tiny_model_dir, tmp_path, monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("needs a machine without a CUDA GPU")
    monkeypatch.setattr(choice, "CANDIDATES", ("cuda-bf16", "onnx-int8"))
    emb = auto(tiny_model_dir, tmp_path)
    assert emb.calibration is not None
    failed = emb.calibration.trial("cuda-bf16")
    assert failed is not None and not failed.passed and "needs a CUDA GPU" in (failed.error or "")
    assert emb.backend_name in ("torch", "onnx-int8")


def test_auto_on_minilm_picks_a_backend_within_the_accuracy_rule(minilm_dir, tmp_path):
    emb = auto(minilm_dir, tmp_path)
    reference = HFEmbedder(EmbedderOptions(model=str(minilm_dir))).embed_documents(GERMAN * 2)
    assert cosines(emb.embed_documents(GERMAN * 2), reference).min() >= 0.99
    assert cosines([emb.embed_query(GERMAN[3])], [reference[3]]).min() >= 0.99
    assert emb.calibration is not None and emb.calibration.trial(emb.backend_name).passed


def test_an_onnx_export_leaves_the_model_in_eval_mode(tiny_model_dir, tmp_path):
    """A fresh wrapper module is in training mode and export restores the mode it found: the model's dropout
    was left on, so a torch backend built after an export (as `auto` does) gave random vectors."""
    from transformers import AutoModel

    from ingest.embed_backends import BackendRequest, build_backend

    model = AutoModel.from_pretrained(str(tiny_model_dir)).eval()
    request = BackendRequest("onnx", tiny_model_dir, torch.device("cpu"), 1, tmp_path, True)
    build_backend(request, model)
    assert not model.training


def test_config_and_ingest_report_show_the_choice(settings_env, fixtures, tmp_path, monkeypatch):
    monkeypatch.setenv("GERMAN_RAG_EMBED_BACKEND", "auto")
    monkeypatch.setenv("GERMAN_RAG_EMBED_BACKEND_CACHE", str(tmp_path / "backends"))
    cli = [sys.executable, "-m", "pipelines.cli"]
    before = json.loads(subprocess.run([*cli, "config", "--json"], capture_output=True, text=True, check=True).stdout)
    assert before["embed_backend_auto"]["backend"] is None
    assert "not measured on this machine yet" in before["embed_backend_auto"]["summary"]
    plain = subprocess.run([*cli, "ingest", str(fixtures / "gesetze" / "a")], capture_output=True, text=True)
    assert plain.returncode == 0, plain.stderr
    done = subprocess.run([*cli, "ingest", str(fixtures / "gesetze" / "b"), "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)["embed_backend"]
    trials = report["auto"]["trials"]
    assert report["backend"] == report["auto"]["chosen"] in [t["backend"] for t in trials if t["passed"]]
    assert report["summary"].startswith(f"auto -> {report['backend']} (") and report["auto"]["cached"]
    assert f"embedding: auto -> {report['backend']} (" in plain.stdout  # measured by the first ingest
    text = subprocess.run([*cli, "config"], capture_output=True, text=True, check=True).stdout
    assert f"embedding backend: auto -> {report['backend']} (" in text and ", cached)" in text
    assert all(f"  {t['backend']:<11} {'pass  x' if t['passed'] else 'FAIL  not timed'}" in text for t in trials)
    assert np.isfinite([t["speedup"] for t in trials if t["passed"]]).all()
