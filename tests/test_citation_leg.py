"""The exact-match leg for a query's legal citations: `match_points` on both engines (the access filter and a
user filter hold), the merge (boost, rrf), and the CLI end to end on the gesetze fixtures."""

from __future__ import annotations

import json
import shutil

import pytest

from ingest.schema import Access, P
from ingest.store.access import Principal
from ingest.store.base import StoreOptions
from ingest.store.edge import EdgeSearch, EdgeStore
from ingest.store.qdrant import QdrantStore
from pipelines.cli.main import main
from retrieval.citation_leg import citation_passages, merge
from retrieval.hybrid import FusionOptions
from retrieval.schema import Passage, RetrievalError
from tests.test_store_engines import DIM, make_chunks, unit_vector

TEXTS = {
    "burlg.md": ["Der Urlaub beträgt jährlich mindestens 24 Werktage.", "Für die Heimarbeit gilt § 12."],
    "kschg.md": ["Die Kündigung ist sozial ungerechtfertigt, wenn ...", "Nach § 3 BUrlG gilt der Urlaub."],
}


def write(store, source: str, texts: list[str], tenant: str) -> None:
    chunks = make_chunks(source, source, texts)
    law = "BUrlG" if source.startswith("burlg") else "KSchG"
    chunks = [c.__class__(**{**c.__dict__, "heading_path": (f"Gesetz ({law})", f"§ {i + 3} Abschnitt")})
              for i, c in enumerate(chunks)]
    store.upsert_chunks(chunks, [unit_vector(c.text, DIM) for c in chunks], access=Access(tenant))


@pytest.fixture()
def engines(tmp_path):
    local = QdrantStore(StoreOptions(collection="c", path=str(tmp_path / "local")))
    edge = EdgeStore(StoreOptions(collection="c", path=str(tmp_path / "edge")), EdgeSearch(exact=True))
    for store in (local, edge):
        store.ensure_collection("modell", DIM)
        write(store, "burlg.md", TEXTS["burlg.md"], "a")
        write(store, "kschg.md", TEXTS["kschg.md"], "b")
    yield local, edge
    local.close()
    edge.close()


def ids(hits) -> list[tuple[str, int]]:
    return [(h.payload[P.SOURCE], h.payload[P.CHUNK_INDEX]) for h in hits]


def test_match_points_agrees_on_both_engines_and_honours_access_and_filters(engines):
    local, edge = engines
    for store in engines:
        assert ids(store.match_points(P.LAW_SECTION, ["BURLG §3"], 10)) == [("burlg.md", 0)]
        assert ids(store.match_points(P.CITATIONS, ["BURLG §3"], 10)) == [("burlg.md", 0), ("kschg.md", 1)]
        assert ids(store.match_points(P.CITATIONS, ["BURLG §12"], 10)) == [("burlg.md", 1)]  # "gilt § 12"
        assert ids(store.match_points(P.CITATIONS, ["BURLG §3"], 10, {"source": "kschg.md"})) == [("kschg.md", 1)]
        assert ids(store.match_points(P.CITATIONS, ["BURLG §3"], 1)) == [("burlg.md", 0)]
        assert store.match_points(P.CITATIONS, [], 10) == []
        tenant_b = store.scoped(Principal("b"))
        assert ids(tenant_b.match_points(P.CITATIONS, ["BURLG §3"], 10)) == [("kschg.md", 1)]
    assert ids(local.match_points(P.CITATIONS, ["KSCHG §3"], 10)) == ids(edge.match_points(P.CITATIONS,
                                                                                            ["KSCHG §3"], 10))


def passage(cid: str, stage: str = "fused", score: float = 0.5) -> Passage:
    return Passage(cid, "d", "t", "s", None, (), 0, 1, 0, score, {stage: score})


def test_merge_boosts_own_then_citing_and_rrf_fuses_by_rank():
    searched = [passage("x"), passage("own2"), passage("cite"), passage("y")]
    own = [passage("own1", "citation", 1.0), passage("own2", "citation", 1.0)]
    citing = [passage("cite", "citation", 1.0)]
    boosted = merge(searched, own, citing, "boost")
    assert [p.chunk_id for p in boosted] == ["own2", "own1", "cite", "x", "y"]  # own by search rank, unranked after
    assert boosted[0].scores == {"fused": 0.5, "citation": 1.0} and searched[1].scores == {"fused": 0.5}
    fused = merge(searched, own, citing, "rrf")
    assert fused[0].chunk_id == "own2" and set(p.chunk_id for p in fused) == {"x", "own1", "own2", "cite", "y"}
    assert merge(searched, [], [], "boost") == searched and merge(searched, own, citing, "off") == searched
    with pytest.raises(RetrievalError, match="citations: 'max'"):
        FusionOptions(citations="max")


def test_citation_passages_split_own_and_citing(engines):
    own, citing = citation_passages(engines[1], ["BURLG §3"], 5)
    assert [p.source for p in own] == ["burlg.md"] and [p.source for p in citing] == ["kschg.md"]
    assert own[0].scores == {"citation": 1.0}


def test_cli_query_by_citation_finds_the_section(settings_env, fixtures, capsys):
    folder = settings_env / "gesetze"
    for slug in ("b/burlg", "k/kschg"):
        shutil.copytree(fixtures / "gesetze" / slug, folder / slug)
    assert main(["ingest", str(folder), "--json"]) == 0
    capsys.readouterr()
    for question, heading in [("Was regelt § 3 BUrlG?", "§ 3 Dauer des Urlaubs"),
                              ("Was steht in § 1 des Kündigungsschutzgesetzes?", "§ 1 Sozial ungerechtfertigte"),
                              ("KSchG § 2", "§ 2 Änderungskündigung")]:
        assert main(["query", question, "--json", "--top-k", "3"]) == 0
        top = json.loads(capsys.readouterr().out)["passages"][0]
        assert top["heading_path"][-1].startswith(heading), (question, top["heading_path"])
        assert top["scores"]["citation"] == 1.0
    assert main(["query", "Wie viele Werktage Urlaub?", "--json", "--top-k", "3"]) == 0
    assert all("citation" not in p["scores"] for p in json.loads(capsys.readouterr().out)["passages"])


def test_a_collection_from_before_citations_gets_them_without_a_model_call(settings_env, fixtures, capsys,
                                                                           monkeypatch):
    """Upgrading: points written before FIELDS_VERSION fields-v2 lack law_section and citations; the next ingest
    re-parses each file once, reuses every vector and writes them."""
    import ingest.schema
    import pipelines.indexing.run as run_module
    from pipelines.build import build_store
    from pipelines.config import Settings

    folder = settings_env / "gesetze"
    shutil.copytree(fixtures / "gesetze" / "b" / "burlg", folder)
    current, parse = run_module.FIELDS_VERSION, ingest.schema.chunk_citations
    monkeypatch.setattr(run_module, "FIELDS_VERSION", "fields-v1")
    monkeypatch.setattr(ingest.schema, "chunk_citations", lambda *a: ([], []))  # what v1 wrote: no such fields
    assert main(["ingest", str(folder), "--json"]) == 0
    monkeypatch.setattr(run_module, "FIELDS_VERSION", current)
    monkeypatch.setattr(ingest.schema, "chunk_citations", parse)
    capsys.readouterr()
    store = build_store(Settings())
    try:
        assert store.match_points(P.CITATIONS, ["BURLG §3"], 5) == []
    finally:
        store.close()
    assert main(["ingest", str(folder), "--json"]) == 0
    f = json.loads(capsys.readouterr().out)["files"][0]
    assert f["status"] == "ingested" and f["chunks_reused"] == f["chunks"] > 0
    store = build_store(Settings())
    try:
        hits = store.match_points(P.LAW_SECTION, ["BURLG §3"], 5)
        assert hits and hits[0].payload[P.HEADING_PATH][-1] == "§ 3 Dauer des Urlaubs"
    finally:
        store.close()
