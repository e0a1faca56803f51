"""#16 item 4, knowing when nothing fits: the calibrated relevance per passage (retrieval/relevance.py) and the
`min_relevance` cut at every door: the CLI (`query`, `context`), HTTP (/v1/retrieve, /v1/context) and the MCP
tools (search, get_context) on real servers, a real embedded store and the tiny German BERT."""

from __future__ import annotations

import pytest

from pipelines.config import Settings
from retrieval.relevance import AUTO_MIN_RELEVANCE, CALIBRATIONS, keep_relevant, resolve_min_relevance, sigmoid
from retrieval.schema import Passage, QueryError
from tests.test_context_doors import cli_store, run_cli, two_tenants  # noqa: F401  (fixtures)
from tests.test_mcp import call, collection, ok, server  # noqa: F401  (fixtures)

QUESTION = "Wie viele Werktage Urlaub?"


def test_auto_resolves_to_the_documented_threshold_and_bad_values_are_named():
    assert resolve_min_relevance("auto") == resolve_min_relevance(" AUTO ") == AUTO_MIN_RELEVANCE
    assert 0.0 < AUTO_MIN_RELEVANCE < 1.0
    assert resolve_min_relevance(None) is None and resolve_min_relevance("off") is None
    assert resolve_min_relevance("0.25") == 0.25 and resolve_min_relevance(1) == 1.0
    for bad in ("hoch", 1.5, -0.1, float("nan"), True, "2"):
        with pytest.raises(QueryError, match="min_relevance"):
            resolve_min_relevance(bad)  # type: ignore[arg-type]
    assert Settings(min_relevance="auto").min_relevance == "auto"
    assert Settings(min_relevance=0.4).min_relevance == 0.4
    with pytest.raises(ValueError, match="min_relevance"):
        Settings(min_relevance="hoch")


def test_calibrations_are_probabilities_that_rise_with_every_feature():
    for mode, cal in CALIBRATIONS.items():
        low = cal.probability(dict.fromkeys(("cosine", "coverage", "bm25_per_term"), 0.0))
        high = cal.probability(dict.fromkeys(("cosine", "coverage", "bm25_per_term"), 1.0))
        assert 0.0 <= low <= high <= 1.0, mode
        assert cal.fitted_on  # says which data the coefficients came from
    assert sigmoid(-1000.0) == 0.0 and sigmoid(1000.0) == 1.0


def _passage(relevance: float | None) -> Passage:
    return Passage("c", "d", "t", "s", None, (), 0, 1, 0, 0.5, relevance=relevance)


def test_keep_relevant_cuts_below_the_floor_and_keeps_what_it_cannot_judge():
    passages = [_passage(0.9), _passage(0.4), _passage(None)]
    assert keep_relevant(passages, None) == passages
    assert [p.relevance for p in keep_relevant(passages, 0.5)] == [0.9, None]
    assert keep_relevant(passages[:2], 0.95) == []
    assert _passage(0.3).to_dict()["relevance"] == 0.3


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_relevance_is_in_0_1_and_never_rises_down_the_ranking(cli_store, capsys, mode):  # noqa: F811
    for question in (QUESTION, "Rabatt für Großkunden", "Wie hoch ist der Mond über Hamburg?"):
        code, res = run_cli(capsys, "query", question, "--mode", mode, "--top-k", "5", "--json")
        assert code == 0 and (res["passages"] or mode == "bm25"), res  # bm25 finds no word of the last one
        scores = [p["score"] for p in res["passages"]]
        relevance = [p["relevance"] for p in res["passages"]]
        assert scores == sorted(scores, reverse=True)
        assert all(0.0 <= r <= 1.0 for r in relevance)
        assert relevance == sorted(relevance, reverse=True), (mode, question, relevance)


def test_cli_min_relevance_filters_and_abstains(cli_store, capsys):  # noqa: F811
    code, res = run_cli(capsys, "query", QUESTION, "--min-relevance", "0", "--json")
    assert code == 0 and res["passages"]
    top = res["passages"][0]["relevance"]
    code, res = run_cli(capsys, "query", QUESTION, "--min-relevance", "1", "--json")
    assert code == 0 and res["passages"] == []
    code, res = run_cli(capsys, "query", QUESTION, "--min-relevance", str(top), "--json")
    assert code == 0 and res["passages"] and all(p["relevance"] >= top for p in res["passages"])
    code, res = run_cli(capsys, "query", QUESTION, "--min-relevance", "auto", "--json")
    assert code == 0 and all(p["relevance"] >= AUTO_MIN_RELEVANCE for p in res["passages"])
    code, res = run_cli(capsys, "context", QUESTION, "--min-relevance", "1", "--json")
    assert code == 0 and res["abstained"] is True and res["text"] == "" and res["citations"] == []
    code, res = run_cli(capsys, "context", QUESTION, "--min-relevance", "1")
    assert code == 0 and "nicht in den Unterlagen" in res["out"]
    code, res = run_cli(capsys, "context", QUESTION, "--min-relevance", "0", "--json")
    assert code == 0 and res["abstained"] is False and res["citations"]
    for bad in ("hoch", "1.5", "-1"):
        for command in ("query", "context"):
            code, res = run_cli(capsys, command, QUESTION, "--min-relevance", bad, "--json")
            assert code == 2 and "--min-relevance" in res["error"], (command, bad, res)


def test_setting_min_relevance_applies_to_the_cli(cli_store, capsys, monkeypatch):  # noqa: F811
    monkeypatch.setenv("GERMAN_RAG_MIN_RELEVANCE", "1")
    code, res = run_cli(capsys, "query", QUESTION, "--json")
    assert code == 0 and res["passages"] == []
    code, res = run_cli(capsys, "query", QUESTION, "--min-relevance", "0", "--json")  # the flag overrides it
    assert code == 0 and res["passages"]


def test_http_min_relevance_on_retrieve_and_context(two_tenants):  # noqa: F811
    with two_tenants.client(two_tenants.keys["acme-read"]) as c:
        r = c.post("/v1/retrieve", json={"query": QUESTION, "min_relevance": 0})
        assert r.status_code == 200 and r.json()["passages"], r.text
        assert all(0.0 <= p["relevance"] <= 1.0 for p in r.json()["passages"])
        r = c.post("/v1/retrieve", json={"query": QUESTION, "min_relevance": 1.0})
        assert r.status_code == 200 and r.json()["passages"] == [], r.text
        r = c.post("/v1/retrieve", json={"query": QUESTION, "min_relevance": "auto"})
        assert r.status_code == 200 and all(p["relevance"] >= AUTO_MIN_RELEVANCE for p in r.json()["passages"])
        r = c.post("/v1/context", json={"query": QUESTION, "min_relevance": 1.0})
        assert r.status_code == 200 and r.json()["abstained"] is True and r.json()["text"] == "", r.text
        r = c.post("/v1/context", json={"query": QUESTION, "min_relevance": 0})
        assert r.status_code == 200 and r.json()["abstained"] is False and r.json()["citations"], r.text
        for path in ("/v1/retrieve", "/v1/context"):
            for bad in (1.5, -0.1, "hoch", "0.5", True):
                r = c.post(path, json={"query": QUESTION, "min_relevance": bad})
                assert r.status_code == 422 and "min_relevance" in r.text, (path, bad, r.text)


def test_mcp_min_relevance_on_search_and_get_context(server):  # noqa: F811
    kept = ok(call(server, "acme", "search", {"query": "Urlaub", "min_relevance": 0}))
    assert kept["passages"] and all(0.0 <= p["relevance"] <= 1.0 for p in kept["passages"])
    result = call(server, "acme", "search", {"query": "Urlaub", "min_relevance": 1.0})
    assert not result.is_error and result.structured_content["passages"] == []
    result = call(server, "acme", "get_context", {"query": "Urlaub", "min_relevance": 1.0})
    assert not result.is_error and result.structured_content["abstained"] is True
    assert "Nicht in den Unterlagen" in result.content[0].text
    assert ok(call(server, "acme", "get_context", {"query": "Urlaub", "min_relevance": "auto"}))["budget"] > 0
    for tool in ("search", "get_context"):
        for bad in (1.5, "hoch"):
            result = call(server, "acme", tool, {"query": "Urlaub", "min_relevance": bad})
            assert result.is_error and "min_relevance" in result.content[0].text, (tool, bad)


def test_reranked_passages_take_the_sigmoid_of_the_logit_and_lists_are_capped():
    from ingest.sparse import SparseEncoder
    from retrieval.relevance import features_of, with_relevance

    def hit(text: str, **scores: float) -> Passage:
        return Passage(text, "d", text, "s", None, (), 0, 1, 0, next(iter(scores.values())), scores=dict(scores))

    encoder = SparseEncoder()
    reranked = with_relevance(encoder, "Urlaub", [hit("a", rerank=2.0), hit("b", rerank=-1.0)], "hybrid")
    assert [p.relevance for p in reranked] == [round(sigmoid(2.0), 6), round(sigmoid(-1.0), 6)]
    # the second passage covers the query better but ranks lower: its relevance is capped by the first one's
    query = "Werktage Urlaub"
    ranked = [hit("Der Urlaub.", dense=0.3), hit("Urlaub: 24 Werktage.", dense=0.9)]
    out = with_relevance(encoder, query, ranked, "dense")
    first, second = features_of(encoder, query, ranked)
    assert second["coverage"] > first["coverage"] and second["cosine"] > first["cosine"]
    assert out[0].relevance == out[1].relevance == round(CALIBRATIONS["dense"].probability(first), 6)
    assert with_relevance(encoder, query, [], "bm25") == []


@pytest.mark.parametrize("fusion", ["rrf", "dbsf"])
def test_qdrant_fused_hybrid_keeps_the_dense_cosine_for_relevance(cli_store, capsys, monkeypatch, fusion):  # noqa: F811
    monkeypatch.setenv("GERMAN_RAG_FUSION", fusion)
    monkeypatch.setenv("GERMAN_RAG_DENSE_WEIGHT", "1.0")  # equal weights: Qdrant fuses (RRF or DBSF) in one query
    code, res = run_cli(capsys, "query", QUESTION, "--mode", "hybrid", "--json")
    assert code == 0 and res["passages"]
    assert all("dense" in p["scores"] and "fused" in p["scores"] for p in res["passages"])
    relevance = [p["relevance"] for p in res["passages"]]
    assert relevance == sorted(relevance, reverse=True) and all(0.0 <= r <= 1.0 for r in relevance)


def test_passages_below_the_feature_depth_carry_the_last_computed_relevance():
    from ingest.sparse import SparseEncoder
    from retrieval.relevance import FEATURE_DEPTH, with_relevance

    passages = [Passage(str(i), "d", f"Urlaub {i}", "s", None, (), 0, 1, 0, 1.0 - i / 100,
                        scores={"dense": 0.9 - i / 100}) for i in range(FEATURE_DEPTH + 5)]
    out = with_relevance(SparseEncoder(), "Urlaub", passages, "dense")
    relevance = [p.relevance for p in out]
    assert len(out) == len(passages) and relevance == sorted(relevance, reverse=True)
    assert set(relevance[FEATURE_DEPTH - 1:]) == {relevance[FEATURE_DEPTH - 1]}


def test_a_passage_matched_by_the_querys_legal_citation_is_fully_relevant():
    """The citation leg's exact matches (often without a dense cosine) are what the query asked for: they must
    not cap the list down to nothing under min_relevance."""
    from ingest.sparse import SparseEncoder
    from retrieval.citation_leg import STAGE
    from retrieval.relevance import with_relevance

    cited = Passage("a", "d", "Der Urlaub beträgt jährlich mindestens 24 Werktage.", "burlg.md", None,
                    ("§ 3 Dauer des Urlaubs",), 0, 50, 0, 1.0, scores={STAGE: 1.0})
    other = Passage("b", "d", "Wartezeit", "burlg.md", None, (), 60, 70, 1, 0.2, scores={"dense": 0.1})
    out = with_relevance(SparseEncoder(), "Was regelt § 3 BUrlG?", [cited, other], "hybrid")
    assert out[0].relevance == 1.0 and 0.0 <= out[1].relevance < 1.0
    assert [p.chunk_id for p in keep_relevant(out, resolve_min_relevance("auto"))] == ["a"]
