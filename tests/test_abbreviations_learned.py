"""Abbreviations a collection's documents define are kept in its metadata and expand its BM25 queries; a typed
multi-word long form weighs as its abbreviation would (ingest/abbreviations.py)."""

from __future__ import annotations

import dataclasses

import pytest

from ingest.abbreviations import (
    LEARNED_KEY,
    MAX_LEARNED,
    AbbreviationExpander,
    LearnedExpander,
    learn_definitions,
    merge_learned,
    plausible,
)
from ingest.sparse import GermanAnalyzer, SparseEncoder, token_id
from ingest.store.base import StoreOptions
from ingest.store.edge import EdgeStore
from ingest.store.qdrant import QdrantStore
from pipelines.build import build_embedder, build_ingest_runner, build_retriever, build_store
from pipelines.config import Settings
from tests.standin.qdrant_rest import StandinQdrant

ANALYZER = GermanAnalyzer()
ENCODER = SparseEncoder(ANALYZER, expander=AbbreviationExpander.default(ANALYZER))

DOCS = {
    "definition.txt": "Die Kassenärztliche Bundesvereinigung (KBV) vertritt die Vertragsärzte auf Bundesebene.",
    "langform.txt": "Die Kassenärztliche Bundesvereinigung verhandelt mit den Krankenkassen über die Honorare.",
    "kurzform.txt": "Laut KBV sank die Zahl der Hausarztpraxen auf dem Land im vergangenen Jahr deutlich.",
    "anderes.txt": "Der Gemeinderat beschloss den Ausbau des Radwegs entlang der Bundesstraße bis zum Bahnhof.",
}


def weights(query: str) -> dict[int, float]:
    ids, values = ENCODER.encode_query(query)
    return dict(zip(ids, values, strict=True))


def test_a_typed_multi_word_long_form_weighs_as_its_abbreviation():
    # the same concept vector whichever form was typed: the abbreviation 1.0, the long form's words share 0.5
    assert weights("Präsident der Vereinigten Staaten") == weights("Präsident der USA")
    assert weights("Präsident der USA")[token_id("usa")] == 1.0
    # a word typed outside the long form keeps 1.0; a one-word long form keeps the old rule (abbreviation 0.5)
    assert max(weights("Staaten der Vereinigten Staaten").values()) == 1.0
    assert min(weights("Datenschutz-Grundverordnung").values()) == 0.5  # dsgvo; the typed tokens 1.0
    old = SparseEncoder(ANALYZER, expander=AbbreviationExpander(ANALYZER, (("USA", "Vereinigte Staaten"),),
                                                                share_words=None))
    assert sorted(old.encode_query("Vereinigte Staaten")[1]) == [0.5, 1.0, 1.0]


@pytest.mark.parametrize(("short", "long", "ok"), [
    ("KBV", "Kassenärztliche Bundesvereinigung", True),
    ("BAföG", "Bundesausbildungsförderungsgesetz", True),
    ("Kbv", "Kassenärztliche Bundesvereinigung", False),  # one capital
    ("KBVKBVKBVKB", "Kassenärztliche Bundesvereinigung", False),  # 11 characters
    ("K_V", "Kassen Verband", False),
    ("KV", "Kassen 7 Verband", False),  # a number as a word
    ("KV", "Versicherung Kasse", False),  # initials do not fit
    ("KV", "Kasse und Verband und noch viel mehr Wörter", False),  # six words
    ("KV", "K" + "a" * 90 + " Verband", False),  # too long
])
def test_only_plausible_definitions_are_kept(short, long, ok):
    assert plausible(short, long) is ok


def test_hostile_text_learns_nothing_implausible_and_never_raises():
    garbage = ("((((ABC)))) ___ (__) x (XY) 12 34 (AB) " + "Wort " * 5000 + "(WW) \x00\ufeff (ÄÖ) Ä Ö (ÄÖ) "
               + "a_b c_d (AC) " + "Zahl 7 (Z7) " + "(" * 3000 + ")" * 3000)
    learned = learn_definitions([garbage])
    assert all(plausible(*pair) for pair in learned)
    assert ("WW", "Wort Wort") in learned  # plausible by its letters: harmless, and the list is bounded


def test_merging_keeps_order_drops_garbage_and_is_bounded():
    stored = [["KBV", "Kassenärztliche Bundesvereinigung"], "kaputt", [1, 2], ["ab", "abc"], None]
    merged = merge_learned(stored, [("KBV", "Kassenärztliche Bundesvereinigung"), ("EZB", "Europäische Zentralbank")])
    assert merged == [("KBV", "Kassenärztliche Bundesvereinigung"), ("EZB", "Europäische Zentralbank")]
    assert merge_learned({"nicht": "eine Liste"}, ()) == []
    many = [(f"K{chr(65 + i // 26)}{chr(65 + i % 26)}", f"Kasse {chr(65 + i // 26)}x {chr(65 + i % 26)}y")
            for i in range(26 * 26)]
    assert len(merge_learned(many, many[::-1] + [("QQ", "Quatsch Quark")] * 2)) == min(MAX_LEARNED, 26 * 26 + 1)


def test_the_learned_expander_rereads_and_keeps_its_list_when_loading_fails():
    pairs: list = []
    fail = [False]

    def load():
        if fail[0]:
            raise OSError("store away")
        return pairs

    expander = LearnedExpander(ANALYZER, load, refresh_s=0)
    assert not expander.expand("KBV")
    pairs.append(("KBV", "Kassenärztliche Bundesvereinigung"))
    assert expander.expand("KBV") and expander.learned == (("KBV", "Kassenärztliche Bundesvereinigung"),)
    fail[0] = True
    assert expander.expand("KBV")
    assert expander.expand("DSGVO")  # the curated list as ever


@pytest.mark.parametrize("engine", ["edge", "local", "rest"])
def test_collection_metadata_merges_on_every_engine(engine, tmp_path):
    with StandinQdrant() as standin:
        options = StoreOptions(collection="abk", **({"url": standin.url, "path": None} if engine == "rest" else
                                                    {"path": str(tmp_path / "q")}))
        store = EdgeStore(options) if engine == "edge" else QdrantStore(options)
        try:
            store.ensure_collection("modell", 4)
            store.update_metadata({LEARNED_KEY: [["KBV", "Kassenärztliche Bundesvereinigung"]], "x": 1})
            store.update_metadata({"x": None})
            meta = store.metadata()
            assert meta[LEARNED_KEY] == [["KBV", "Kassenärztliche Bundesvereinigung"]] and "x" not in meta
            assert meta["embed_model"] == "modell" and store.count() == 0 and store.sources() == {}
            store.check_compatible("modell", 4)
        finally:
            store.close()


@pytest.mark.parametrize("engine", ["edge", "local"])
def test_a_learned_abbreviation_finds_the_long_form_and_the_reverse(engine, tiny_model_dir, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    settings = Settings(embed_model=str(tiny_model_dir), qdrant_path=str(tmp_path / "q"), collection="abk",
                        qdrant_engine=engine)
    embedder, store = build_embedder(settings), build_store(settings)
    try:
        report = build_ingest_runner(settings, embedder, store, progress=False).run([docs])
        assert report.count("ingested") == 4
        assert store.metadata()[LEARNED_KEY] == [["KBV", "Kassenärztliche Bundesvereinigung"]]
        retriever = build_retriever(settings, embedder, store)

        def found(query: str) -> list[str]:
            return [p.source.rsplit("/", 1)[-1] for p in retriever.retrieve(query, 10, mode="bm25")]

        assert "langform.txt" in found("KBV")  # only the long form there
        assert "kurzform.txt" in found("Kassenärztliche Bundesvereinigung")  # only the abbreviation there
        learned = retriever.encoder
        retriever.encoder = dataclasses.replace(learned, expander=AbbreviationExpander.default(learned.analyzer))
        assert "langform.txt" not in found("KBV")  # the curated list alone does not know KBV
        retriever.encoder = learned
        # the artefact is collection metadata, not a point: no hit, source or count shows it
        assert store.count() == 4 and len(store.sources()) == 4
        assert all(p.source.endswith(tuple(DOCS)) for p in retriever.retrieve("KBV Bundesvereinigung", 10))
        # a second ingest with nothing new leaves the list as it was
        build_ingest_runner(settings, embedder, store, progress=False).run([docs])
        assert store.metadata()[LEARNED_KEY] == [["KBV", "Kassenärztliche Bundesvereinigung"]]
        # the defining document deleted: its definition stays (documented), the long form is still found
        store.delete_source(next(s for s in store.sources() if s.endswith("definition.txt")))
        assert store.count() == 3 and "langform.txt" in found("KBV")
    finally:
        store.close()
