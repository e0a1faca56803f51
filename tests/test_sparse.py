"""The German analyzer and the BM25 sparse encoder: German cases, the compound rule, ids, weights."""

from __future__ import annotations

import ast
import random
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ingest.sparse import (
    LINKS,
    CompoundSplitter,
    GermanAnalyzer,
    SparseConfigError,
    SparseEncoder,
    default_splitter,
    token_id,
)

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    HAVE_HYPOTHESIS = True
except ImportError:  # the dev extra is missing: the property tests skip, everything else runs
    HAVE_HYPOTHESIS = False

ANALYZER = GermanAnalyzer()
PLAIN = GermanAnalyzer(split_compounds=False)


def tokens_of(text: str, analyzer: GermanAnalyzer = ANALYZER) -> set[str]:
    return set(analyzer.analyze(text))


def rebuilds(word: str, parts: tuple[str, ...]) -> bool:
    """True when the parts, with at most one linking element between neighbours, spell `word`."""
    link = "(?:" + "|".join(re.escape(x) for x in LINKS) + ")"
    return re.fullmatch(link.join(re.escape(p) for p in parts), word) is not None


# --- German normalisation -------------------------------------------------------------------------


@pytest.mark.parametrize("forms", [("Hund", "Hunde", "Hunden", "Hundes"), ("Straße", "Strasse", "STRASSE"),
                                   ("Häuser", "Haeuser", "Haus"), ("Gebäude", "Gebaeude"), ("Gerichts", "Gericht")])
def test_spellings_and_inflections_share_one_token(forms: tuple[str, ...]) -> None:
    results = [PLAIN.analyze(form) for form in forms]
    assert len(results[0]) == 1 and all(r == results[0] for r in results)


def test_folding_without_stemming_still_matches_both_spellings() -> None:
    plain = GermanAnalyzer(stem=False, split_compounds=False)
    assert plain.analyze("Häuser Haeuser Straße Strasse") == ["haeuser", "haeuser", "strasse", "strasse"]


def test_stemming_without_folding_keeps_umlauts_out_of_stems() -> None:
    unfolded = GermanAnalyzer(fold=False, split_compounds=False)
    assert unfolded.analyze("Häuser") == unfolded.analyze("Haeuser") == ["haus"]
    assert GermanAnalyzer(fold=False, stem=False, split_compounds=False).analyze("Häuser") == ["häuser"]


def test_stopwords_are_removed_in_any_spelling() -> None:
    assert PLAIN.analyze("Der Hund und die Katze, für daß über Fuer dass") == ["hund", "katz"]
    assert "der" in GermanAnalyzer(stopwords=False, split_compounds=False).analyze("Der Hund")


def test_numbers_and_legal_references_are_kept() -> None:
    assert PLAIN.analyze("§ 5 Abs. 2 S. 1 BGB") == ["5", "abs", "2", "1", "bgb"]
    assert PLAIN.analyze("Am 3. Oktober 1990") == ["3", "oktob", "1990"]
    assert PLAIN.analyze("Art. 20a GG") == ["art", "20a", "gg"]


def test_hyphenated_words_give_pieces_and_the_joined_form() -> None:
    assert tokens_of("E-Mail") >= tokens_of("Email") | tokens_of("Mail")
    assert PLAIN.analyze("Baden-Württemberg") == ["bad", "wurttemberg", "badenwurttemberg"]


def test_invisible_characters_and_compatibility_forms_do_not_split_words() -> None:
    assert PLAIN.analyze("Bun\u00addes\u200btag") == PLAIN.analyze("Bundestag")
    assert PLAIN.analyze("Ｈａｕｓ １２３ ﬁnanz") == PLAIN.analyze("Haus 123 finanz")


# --- compounds -----------------------------------------------------------------------------------


def test_compound_gives_whole_word_and_parts_like_standalone_words() -> None:
    got = ANALYZER.analyze("Verfassungsgericht")
    assert got[0] == PLAIN.analyze("Verfassungsgericht")[0]
    assert set(got[1:]) == tokens_of("Verfassung Gericht", PLAIN)


def test_three_part_compound_splits_down_to_its_leaves() -> None:
    got = tokens_of("Bundesverfassungsgericht")
    assert got >= tokens_of("Bund Verfassung Gericht", PLAIN)
    assert PLAIN.analyze("Bundesverfassungsgericht")[0] in got


def test_query_word_matches_inside_a_compound_of_the_document() -> None:
    document = tokens_of("Das Bundesverfassungsgericht entscheidet über die Datenschutzgrundverordnung.")
    for query in ("Gericht", "Verfassung", "Daten", "Schutz", "Verordnung"):
        assert tokens_of(query) <= document, query
    # A sub-compound matches through its parts (leaves are emitted, intermediate compounds are not).
    assert ANALYZER.analyze("Datenschutz")[1:] == ["dat", "schutz"]
    assert set(ANALYZER.analyze("Datenschutz")[1:]) <= document


@pytest.mark.parametrize("word", ["Kerze", "Unternehmen", "beinhaltet", "Gerichtsbarkeit", "Hund"])
def test_words_that_are_no_compounds_stay_whole(word: str) -> None:
    assert ANALYZER.analyze(word) == PLAIN.analyze(word)


def test_split_needs_parts_that_rebuild_the_word() -> None:
    splitter = CompoundSplitter({"verfassung": 50, "gericht": 80, "bar": 30}, exclude=())
    assert splitter.split("verfassungsgericht") == ("verfassung", "gericht")
    assert splitter.split("gerichtsbarkeit") == ()  # 'keit' is no word: nothing rebuilds the tail
    assert splitter.split("verfassungxgericht") == ()  # 'x' is no linking element
    assert splitter.split("gerichtverfassung") == ("gericht", "verfassung")


def test_rebuild_rule_alone_accepts_bein_halten_so_the_whole_words_count_decides() -> None:
    # `beinhalten` (be+inhalten) is `bein` + `halten` letter for letter: the rule cannot see that.
    # A word the corpus uses more often than the geometric mean of its parts stays whole.
    counts = {"bein": 4, "halten": 60}
    assert CompoundSplitter(counts, exclude=()).split("beinhalten") == ("bein", "halten")
    assert CompoundSplitter({**counts, "beinhalten": 30}, exclude=()).split("beinhalten") == ()
    assert CompoundSplitter({**counts, "beinhalten": 10}, exclude=()).split("beinhalten") == ("bein", "halten")


def test_fewest_parts_and_links_win_over_frequent_short_parts() -> None:
    counts = {"schadens": 40, "ersatz": 20, "satz": 900, "anspruch": 70, "er": 500}
    splitter = CompoundSplitter(counts, exclude=())
    assert splitter.split("schadensersatzanspruch") == ("schadens", "ersatz", "anspruch")


def test_parts_shorter_than_min_part_and_stopwords_are_never_parts() -> None:
    splitter = CompoundSplitter({"ab": 900, "bau": 50, "abbau": 1, "unter": 900, "nehmen": 90})
    assert splitter.split("abbau", min_part=2) == ("ab", "bau")
    assert splitter.split("abbau", min_part=3) == ()
    assert splitter.split("unternehmen") == ()  # 'unter' is a stop word: excluded by default


def test_every_split_of_the_shipped_lexicon_rebuilds_its_word() -> None:
    splitter = default_splitter()
    words = sorted(splitter.counts)
    sample = random.Random(7).sample(words, 3000)
    splits = {w: splitter.split(w) for w in sample}
    assert sum(1 for p in splits.values() if p) > 100  # the lexicon does split compounds
    for word, parts in splits.items():
        assert not parts or (rebuilds(word, parts) and all(len(p) >= 3 for p in parts)), (word, parts)


def test_from_corpus_counts_folded_words_and_round_trips_through_a_file(tmp_path: Path) -> None:
    texts = ["Die Straße und das Gericht.", "Strasse, Gericht, Gericht! Ab", "Verfassung Verfassung x9x x9x"]
    splitter = CompoundSplitter.from_corpus(texts, min_count=2)
    assert dict(splitter.counts) == {"strasse": 2, "gericht": 3, "verfassung": 2}
    path = tmp_path / "lexicon.txt"
    splitter.save(path, header=["test lexicon"])
    assert path.read_text(encoding="utf-8").startswith("# test lexicon\n")
    assert dict(CompoundSplitter.from_file(path).counts) == dict(splitter.counts)


def test_a_broken_lexicon_line_is_reported_with_its_place(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("# fine\ngericht\t3\nverfassung drei\n", encoding="utf-8")
    with pytest.raises(SparseConfigError, match=r"bad\.txt:3: expected 'word<TAB>count'"):
        CompoundSplitter.from_file(path)


# --- robustness ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", " \n\t", "😀🇩🇪👍🏽", "\x00\x01\x1f\x7f", "a\udcff b", "İ ǅ ẞ ﬃ ꙮ", "_-_-",
                                  "‐‑-", "\u0301\u0308", "x" * 10_000, "Bundes" * 40, "Haus-" * 5000])
def test_odd_input_never_raises(text: str) -> None:
    tokens = ANALYZER.analyze(text)
    assert all(isinstance(t, str) and t and not t.isspace() for t in tokens)


def test_a_megabyte_of_text_is_analyzed() -> None:
    sentence = "Das Bundesverfassungsgericht prüft nach § 5 Abs. 2 die Straßenverkehrsordnung. "
    assert len(ANALYZER.analyze(sentence * (1_000_000 // len(sentence)))) > 50_000
    assert len(ANALYZER.analyze("a" * 1_000_000)) == 1  # one junk word, kept whole, not stemmed


def test_threads_get_the_same_tokens() -> None:
    texts = [f"Die Hunde {i} laufen über die Straßen von Baden-Württemberg" for i in range(300)]
    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(GermanAnalyzer().analyze, texts)) == [ANALYZER.analyze(t) for t in texts]


if HAVE_HYPOTHESIS:

    @settings(max_examples=300, deadline=None, database=None)
    @given(st.text(st.characters(exclude_categories=()), max_size=300))
    def test_analyze_never_raises_on_any_unicode(text: str) -> None:
        assert all(t for t in ANALYZER.analyze(text))

    @settings(max_examples=200, deadline=None, database=None)
    @given(st.lists(st.sampled_from(sorted(default_splitter().counts)), min_size=2, max_size=4),
           st.lists(st.sampled_from(LINKS), min_size=3, max_size=3))
    def test_splits_of_built_compounds_always_rebuild_them(words: list[str], links: list[str]) -> None:
        word = words[0] + "".join(link + w for w, link in zip(words[1:], links, strict=False))
        parts = default_splitter().split(word)
        assert not parts or rebuilds(word, parts)

else:

    @pytest.mark.skip(reason="hypothesis is not installed (dev extra)")
    def test_property_tests_need_hypothesis() -> None: ...


# --- ids and vectors -----------------------------------------------------------------------------


def test_token_ids_are_stable_31_bit_numbers_across_processes() -> None:
    script = "from ingest.sparse import token_id; print(token_id('gericht'), token_id('straße'))"
    runs = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": seed, "PYTHONPATH": str(Path(__file__).parents[1])}).stdout
            for seed in ("1", "2")}
    assert runs == {f"{token_id('gericht')} {token_id('straße')}\n"}
    assert token_id("gericht") == 1716034681  # pinned: a changed hash silently breaks every index
    assert all(0 <= token_id(t) <= 0x7FFFFFFF for t in ("", "a", "😀", "x" * 1000))


def test_document_weights_follow_bm25_saturation() -> None:
    hund, katz = token_id("hund"), token_id("katz")
    indices, values = SparseEncoder(PLAIN, k1=1.2, b=0.75, avgdl=6.0).encode_document("Hund Hunde Katze")
    # dl = 3, avgdl = 6: norm = 1.2 * (1 - 0.75 + 0.75 * 3 / 6) = 0.75
    expected = {hund: 2 * 2.2 / (2 + 0.75), katz: 1 * 2.2 / (1 + 0.75)}
    assert indices == sorted(expected)
    assert values == pytest.approx([expected[i] for i in indices])
    _, at_average = SparseEncoder(PLAIN, k1=1.2, b=0.75, avgdl=3.0).encode_document("Hund Hunde Katze")
    assert sorted(at_average) == pytest.approx([1.0, 4.4 / 3.2])  # norm = k1 = 1.2 when dl == avgdl
    # the defaults (k1 0.6, b 0.3): dl = 3, avgdl = 100: norm = 0.6 * (0.7 + 0.3 * 0.03) = 0.4254
    _, defaults = SparseEncoder(PLAIN).encode_document("Hund Hunde Katze")
    norm = 0.6 * (1 - 0.3 + 0.3 * 3 / 100)
    assert sorted(defaults) == pytest.approx(sorted([2 * 1.6 / (2 + norm), 1.6 / (1 + norm)]))


def test_length_normalisation_can_be_switched_off_and_k1_changed() -> None:
    _, values = SparseEncoder(PLAIN, k1=2.0, b=0.0).encode_document("Hund " * 3 + "Katze " * 100)
    assert sorted(values) == pytest.approx([3 * 3 / (3 + 2), 100 * 3 / (100 + 2)])  # norm = k1 when b = 0


def test_query_vector_has_one_unit_weight_per_unique_token() -> None:
    indices, values = SparseEncoder(PLAIN).encode_query("Hund Hunde Katze und die Katzen")
    assert indices == sorted({token_id("hund"), token_id("katz")}) and values == [1.0, 1.0]
    assert SparseEncoder(PLAIN).encode_query("und die der") == ([], [])
    assert SparseEncoder(PLAIN).encode_document("") == ([], [])


def test_vectors_have_sorted_unique_indices_and_positive_values() -> None:
    text = "Das Bundesverfassungsgericht und das Verfassungsgericht: Gericht, Gerichte, Gerichts. " * 3
    for indices, values in (SparseEncoder().encode_document(text), SparseEncoder().encode_query(text)):
        assert indices == sorted(set(indices)) and len(indices) == len(values) and min(values) > 0


@pytest.mark.parametrize(("options", "message"), [({"k1": -1.0}, r"k1=-1\.0"), ({"b": 1.5}, r"b=1\.5: .*\[0, 1\]"),
                                                  ({"avgdl": 0.0}, r"avgdl=0\.0"),
                                                  ({"avgdl": float("nan")}, "avgdl=nan")])
def test_bad_encoder_options_are_rejected_by_name(options: dict[str, float], message: str) -> None:
    with pytest.raises(SparseConfigError, match=message):
        SparseEncoder(PLAIN, **options)


def test_bad_min_part_is_rejected() -> None:
    with pytest.raises(SparseConfigError, match="min_part=1"):
        GermanAnalyzer(min_part=1)


def test_fingerprint_names_options_and_lexicon() -> None:
    assert GermanAnalyzer().fingerprint() == ANALYZER.fingerprint()
    assert GermanAnalyzer(stem=False).fingerprint() != ANALYZER.fingerprint()
    other = GermanAnalyzer(splitter=CompoundSplitter({"gericht": 2}))
    assert other.fingerprint() != ANALYZER.fingerprint()


def test_sparse_module_imports_neither_retrieval_nor_pipelines() -> None:
    source = (Path(__file__).parents[1] / "ingest" / "sparse.py").read_text(encoding="utf-8")
    modules = {n.module or "" for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ImportFrom)}
    modules |= {a.name for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in modules if m.split(".")[0] in {"retrieval", "pipelines"}}


def test_the_encoder_and_the_settings_share_one_default_per_bm25_parameter() -> None:
    from ingest.sparse import DEFAULT_AVGDL, DEFAULT_B, DEFAULT_K1
    from pipelines.config import Settings

    assert SparseEncoder().avgdl == Settings.model_fields["bm25_avgdl"].default == DEFAULT_AVGDL
    assert SparseEncoder().k1 == Settings.model_fields["bm25_k1"].default == DEFAULT_K1
    assert SparseEncoder().b == Settings.model_fields["bm25_b"].default == DEFAULT_B
