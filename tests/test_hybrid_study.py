"""The offline replay behind docs/eval/hybrid.md is trusted only where it equals the real thing: BM25 against the
store's sparse search, the normalisation against retrieval.fusion.dbsf."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.hybrid_levers import Config, rm3
from benchmarks.hybrid_study import Bm25, dbsf_norm, top_lists
from pipelines.build import build_sparse_encoder, build_store
from pipelines.config import Settings
from retrieval.fusion import dbsf
from tests.support.cli_corpus import ingest_texts

TEXTS = {
    "urlaub.txt": "Der Urlaub beträgt jährlich mindestens vierundzwanzig Werktage. Urlaub ist zusammenhängend "
                  "zu gewähren.",
    "kuendigung.txt": "Die Kündigungsfrist verlängert sich mit der Dauer des Arbeitsverhältnisses beim Arbeitgeber.",
    "gericht.txt": "Das Bundesverfassungsgericht entscheidet über Verfassungsbeschwerden gegen Urteile der Gerichte.",
    "arbeitszeit.txt": "Die werktägliche Arbeitszeit der Arbeitnehmer darf acht Stunden nicht überschreiten.",
    "lehrer.txt": "Die Lehrer*innen der Schule unterrichten Mathematik und Deutsch; der Urlaub der Lehrer fällt "
                  "in die Ferien.",
}
QUERIES = ["Wie viele Werktage Urlaub?", "Kündigungsfrist Arbeitgeber", "Verfassungsbeschwerde Gericht",
           "Arbeitszeit Stunden", "Lehrerinnen Urlaub Ferien", "Mathematik"]


@pytest.mark.parametrize(("k1", "b"), [(1.2, 0.75), (0.6, 0.3)])
def test_offline_bm25_ranks_and_scores_like_the_store(settings_env, capsys, monkeypatch, k1, b):
    monkeypatch.setenv("GERMAN_RAG_BM25_K1", str(k1))
    monkeypatch.setenv("GERMAN_RAG_BM25_B", str(b))
    ingest_texts(settings_env / "docs", TEXTS, capsys)
    settings = Settings()
    store = build_store(settings)
    try:
        rows = sorted(store.scan(["text"]), key=lambda r: r[0])
        ids, texts = [r[0] for r in rows], [r[1]["text"] for r in rows]
        bm25 = Bm25(texts, build_sparse_encoder(settings))
        scores = bm25.scores(bm25.encode(QUERIES), bm25.weights(k1, b, settings.bm25_avgdl))
        for q, query in enumerate(QUERIES):
            hits = store.search_sparse(*bm25.encoder.encode_query(query), 10, None)
            offline = [c for c in top_lists(scores, 10, positive=True)[q] if c >= 0]
            assert [h.chunk_id for h in hits] == [ids[c] for c in offline]
            assert [h.score for h in hits] == pytest.approx([scores[q, c] for c in offline], rel=1e-4)
    finally:
        store.close()


def test_the_replayed_normalisation_is_the_fusion_modules():
    rng = np.random.default_rng(7)
    scores = rng.gamma(2.0, 1.0, size=(3, 40))
    scores[:, 0] = 30.0  # an outlier the clip cuts to 1.0 and dbsf_open keeps apart
    lists = top_lists(scores, 25)
    for how, clip in (("dbsf", True), ("open", False)):
        norm = dbsf_norm(scores, lists, how)
        for q in range(3):
            fused = dict(dbsf([[(str(c), float(scores[q, c])) for c in lists[q]]], clip_top=clip))
            assert [norm[q, c] for c in lists[q]] == pytest.approx([fused[str(c)] for c in lists[q]])
    assert dbsf_norm(scores, lists, "open")[0, 0] > 1.0 == dbsf_norm(scores, lists, "dbsf")[0, 0]


def test_rm3_mixes_the_feedback_terms_into_the_query():
    texts = ["Urlaub Werktage Urlaubsanspruch Erholung", "Urlaub Erholung Ferien", "Gericht Urteil Klage"]
    bm25 = Bm25(texts)
    query = bm25.encode(["Urlaub"])
    first = bm25.scores(query, bm25.weights())
    expanded = rm3(bm25, query, first, Config(prf_docs=2, prf_terms=5, prf_weight=0.5))[0]
    assert set(query[0]) < set(expanded)
    assert sum(expanded.values()) == pytest.approx(1.0)
    gericht = bm25.encode(["Gericht"])[0]
    assert not set(gericht) & set(expanded)  # terms of a chunk outside the feedback stay out
