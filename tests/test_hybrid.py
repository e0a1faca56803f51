import json

import pytest

from pipelines.cli.main import main
from retrieval.hybrid import FusionOptions, HybridRetriever
from retrieval.schema import RetrievalError
from tests.support.cli_corpus import ingest_texts

DOCS = {
    "gericht.txt": "Das Bundesverfassungsgericht in Karlsruhe entscheidet über Verfassungsbeschwerden.",
    "urlaub.txt": "Der Urlaub beträgt jährlich mindestens vierundzwanzig Werktage.",
    "kuendigung.txt": "Die Kündigungsfristen verlängern sich mit der Dauer der Beschäftigung.",
}


@pytest.fixture()
def small_corpus(settings_env, capsys):
    return ingest_texts(settings_env / "klein", DOCS, capsys)


def query(capsys, *args):
    code = main(["query", *args, "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)["passages"]


def test_bm25_matches_compound_parts_and_inflections(capsys, small_corpus):
    hits = query(capsys, "Gericht", "--mode", "bm25", "--top-k", "3")
    assert len(hits) == 1 and hits[0]["source"].endswith("gericht.txt")
    assert set(hits[0]["scores"]) == {"bm25"}
    hits = query(capsys, "Kündigungsfrist", "--mode", "bm25", "--top-k", "3")
    assert hits[0]["source"].endswith("kuendigung.txt")


def test_hybrid_is_default_and_fuses_both_legs(capsys, small_corpus):
    hits = query(capsys, "Werktage Urlaub", "--top-k", "3")
    assert hits[0]["source"].endswith("urlaub.txt")
    assert {"fused", "dense"} <= set(hits[0]["scores"])  # weighted DBSF keeps both legs' scores
    assert len(hits) == 3  # the dense leg contributes documents the lexical leg cannot find


def test_dense_mode_and_filters(capsys, small_corpus):
    hits = query(capsys, "Urlaub", "--mode", "dense", "--top-k", "3",
                 "--filter", f"source={small_corpus / 'gericht.txt'}")
    assert [h["source"].rsplit("/", 1)[-1] for h in hits] == ["gericht.txt"]
    assert set(hits[0]["scores"]) == {"dense"}


def test_bad_mode_and_fusion_are_errors():
    with pytest.raises(RetrievalError, match="mode: 'semantic'"):
        HybridRetriever(None, None, None, mode="semantic")  # type: ignore[arg-type]  # the mode fails first
    with pytest.raises(RetrievalError, match="fusion: 'max'"):
        FusionOptions(method="max")


@pytest.mark.parametrize(("fusion", "clip_top"), [("dbsf", True), ("dbsf_open", False)])
def test_weighted_dbsf_fuses_both_legs_and_keeps_their_scores(capsys, small_corpus, monkeypatch, fusion, clip_top):
    from retrieval.fusion import dbsf

    dense = query(capsys, "Urlaub Werktage Gericht", "--mode", "dense", "--top-k", "3")
    bm25 = query(capsys, "Urlaub Werktage Gericht", "--mode", "bm25", "--top-k", "3")
    monkeypatch.setenv("GERMAN_RAG_FUSION", fusion)
    monkeypatch.setenv("GERMAN_RAG_DENSE_WEIGHT", "0.3")
    hits = query(capsys, "Urlaub Werktage Gericht", "--top-k", "3")
    expected = dbsf([[(h["chunk_id"], h["score"]) for h in dense], [(h["chunk_id"], h["score"]) for h in bm25]],
                    weights=[0.3, 1.0], limit=3, clip_top=clip_top)
    assert [(h["chunk_id"], h["score"]) for h in hits] == [(c, pytest.approx(s)) for c, s in expected]
    assert all({"dense", "fused"} <= set(h["scores"]) for h in hits)
    assert any("bm25" in h["scores"] for h in hits)


def test_bm25_k1_and_b_are_per_collection_and_a_change_reindexes(capsys, small_corpus, monkeypatch):
    """k1 and b shape the stored sparse vectors: a collection ingested with other values is re-indexed, and its
    BM25 scores follow the new values."""
    before = query(capsys, "Urlaub Werktage", "--mode", "bm25", "--top-k", "1")[0]["score"]
    monkeypatch.setenv("GERMAN_RAG_BM25_K1", "1.2")
    monkeypatch.setenv("GERMAN_RAG_BM25_B", "0.75")
    assert main(["ingest", str(small_corpus), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["ingested"], report["unchanged"]) == (3, 0)
    after = query(capsys, "Urlaub Werktage", "--mode", "bm25", "--top-k", "1")[0]["score"]
    assert after != pytest.approx(before)


def test_the_dense_leg_of_hybrid_embeds_the_query_without_its_question_frame(capsys, small_corpus, monkeypatch):
    """In hybrid mode the cosines for "Wie viele Werktage ..." equal those for "Werktage ..."; dense mode, and hybrid
    with the setting off, embed the question as asked."""
    def cosines(text: str, mode: str) -> dict:
        return {h["chunk_id"]: h["scores"]["dense"] for h in query(capsys, text, "--mode", mode, "--top-k", "3")}

    bare = cosines("Werktage Urlaub?", "dense")
    assert cosines("Wie viele Werktage Urlaub?", "hybrid") == pytest.approx(bare)
    assert cosines("Wie viele Werktage Urlaub?", "dense") != pytest.approx(bare)
    monkeypatch.setenv("GERMAN_RAG_DENSE_STRIP_QUESTION", "false")
    assert cosines("Wie viele Werktage Urlaub?", "hybrid") != pytest.approx(bare)
