"""#11.2: the programmatic entry points of pipelines/api.py, as the README's "Python API" uses them: real
parsing, the real MiniLM model, the embedded edge store."""

from __future__ import annotations

import pytest

from ingest.schema import StoreError
from pipelines.api import evaluate, ingest_paths, retrieve, retrieve_many
from pipelines.config import Settings
from tests.test_evaluate import write_beir

LAWS = {
    "urlaub.md": "# § 3 Dauer des Urlaubs\n\nDer Urlaub beträgt jährlich mindestens 24 Werktage.\n",
    "arbeitszeit.md": "# § 3 Arbeitszeit\n\nDie werktägliche Arbeitszeit darf acht Stunden nicht überschreiten.\n",
}


@pytest.fixture()
def api_settings(tmp_path, minilm_dir, monkeypatch) -> Settings:
    monkeypatch.chdir(tmp_path)
    for name in ("GERMAN_RAG_QDRANT_URL", "GERMAN_RAG_CONFIG", "GERMAN_RAG_EMBED_MODEL", "GERMAN_RAG_QDRANT_PATH"):
        monkeypatch.delenv(name, raising=False)
    return Settings(embed_model=str(minilm_dir), qdrant_path=str(tmp_path / "qdrant"), collection="handbuch")


def test_ingest_then_retrieve_with_sources_and_filters(api_settings, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in LAWS.items():
        (docs / name).write_text(text, encoding="utf-8")
    report = ingest_paths(api_settings, [str(docs)], progress=False)
    summary = report.summary()
    assert summary["ingested"] == 2 and summary["failed"] == 0 and summary["balanced"]
    assert ingest_paths(api_settings, [str(docs)], progress=False).count("unchanged") == 2

    passages = retrieve(api_settings, "Wie viele Werktage Urlaub?", top_k=2)
    assert passages[0].source.endswith("/docs/urlaub.md") and "24 Werktage" in passages[0].text
    assert passages[0].heading_path == ("§ 3 Dauer des Urlaubs",)
    only = retrieve(api_settings, "Werktage", top_k=5, filters={"source": passages[1].source})
    assert {p.source for p in only} == {passages[1].source}

    many = retrieve_many(api_settings, ["Urlaub", "Arbeitszeit"], top_k=1)
    assert [m[0].source.rsplit("/", 1)[1] for m in many] == ["urlaub.md", "arbeitszeit.md"]


def test_retrieve_before_ingest_names_the_collection(api_settings):
    with pytest.raises(StoreError, match="handbuch"):
        retrieve(api_settings, "Urlaub")


def test_evaluate_scores_each_mode(api_settings, tmp_path):
    write_beir(tmp_path / "beir")
    report = evaluate(api_settings, str(tmp_path / "beir"), "beir", modes=["bm25", "hybrid"])
    assert set(report["modes"]) == {"bm25", "hybrid"} and report["queries"] == 3
    assert report["modes"]["bm25"]["mean"]["mrr_at_5"] == 1.0
