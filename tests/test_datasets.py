"""Evaluation-set loaders: the real sets (fixture slices, the whole sets in ../shared/data), a tiny BEIR folder,
the corpus file writer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.evaluation.datasets import (
    CorpusDoc,
    DatasetError,
    EvalSet,
    doc_id_from_path,
    load_beir,
    load_dataset,
    load_dpr,
    load_squad,
    text_id,
    write_corpus_files,
)

XQUAD = "xquad-de"
GERMANDPR = "germandpr-derived/germandpr_test.json"


def shared(*values):
    """A parameter set on ../shared/data: marked, so that it is skipped (or an error in CI) without the data."""
    return pytest.param("shared_data", *values, marks=pytest.mark.shared_data)


def data(request: pytest.FixtureRequest, folder: str) -> Path:
    """tests/fixtures (the first articles and questions) or ../shared/data (the whole sets), by fixture name."""
    return request.getfixturevalue(folder)


def assert_consistent(evalset: EvalSet) -> None:
    assert evalset.queries.keys() == evalset.qrels.keys()
    assert all(doc_id == doc.doc_id for doc_id, doc in evalset.corpus.items())
    assert all(rel and rel <= evalset.corpus.keys() for rel in evalset.qrels.values())


# ---------------------------------------------------------------- SQuAD (XQuAD German)


@pytest.mark.parametrize(("folder", "contexts", "questions"), [("fixtures", 40, 225), shared(240, 1190)])
def test_xquad_counts_and_one_relevant_context_per_question(request, folder, contexts, questions) -> None:
    evalset = load_squad(data(request, folder) / XQUAD)
    assert evalset.name == "xquad-de"
    assert (len(evalset.corpus), len(evalset.queries)) == (contexts, questions)
    assert all(len(rel) == 1 for rel in evalset.qrels.values())
    assert all(doc_id == text_id(doc.text) for doc_id, doc in evalset.corpus.items())
    assert_consistent(evalset)


@pytest.mark.parametrize("folder", ["fixtures", shared()])
def test_xquad_question_maps_to_the_context_holding_its_answer(request, folder) -> None:
    path = data(request, folder) / XQUAD / "xquad.de.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    evalset = load_squad(path)
    for article in raw["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                (doc_id,) = evalset.qrels[qa["id"]]
                assert evalset.corpus[doc_id].text == paragraph["context"]
                assert evalset.queries[qa["id"]] == qa["question"]
    first = evalset.qrels["56beb4343aeaaa14008c925b"]
    assert "308" in evalset.corpus[next(iter(first))].text


# ---------------------------------------------------------------- DPR (GermanDPR-derived)


@pytest.mark.parametrize(("folder", "questions", "passages", "positives"),
                         [("fixtures", 20, 40, 20), shared(1025, 1154, 192)])
def test_germandpr_counts(request, folder, questions, passages, positives) -> None:
    evalset = load_dpr(data(request, folder) / GERMANDPR)
    assert evalset.name == "germandpr_test"
    assert (len(evalset.queries), len(evalset.corpus)) == (questions, passages)
    assert all(len(rel) == 1 for rel in evalset.qrels.values())
    # in the whole set many questions share a positive passage: 192 distinct positives, the rest hard negatives
    assert len(set().union(*evalset.qrels.values())) == positives
    assert_consistent(evalset)


@pytest.mark.parametrize("folder", ["fixtures", shared()])
def test_germandpr_positive_is_relevant_and_hard_negative_is_not(request, folder) -> None:
    path = data(request, folder) / GERMANDPR
    evalset = load_dpr(path)
    for item in json.loads(path.read_text(encoding="utf-8")):
        qid = text_id(item["question"])
        assert evalset.queries[qid] == item["question"]
        assert evalset.qrels[qid] == {text_id(item["positive_ctxs"][0]["text"])}
        assert text_id(item["hard_negative_ctxs"][0]["text"]) not in evalset.qrels[qid]


# ---------------------------------------------------------------- autodetection


@pytest.mark.parametrize(("folder", "questions", "contexts", "dpr_questions"),
                         [("fixtures", 225, 40, 20), shared(1190, 240, 1025)])
def test_load_dataset_detects_the_format(request, folder, questions, contexts, dpr_questions) -> None:
    root = data(request, folder)
    assert len(load_dataset(root / XQUAD).queries) == questions
    assert len(load_dataset(root / XQUAD / "xquad.de.json").corpus) == contexts
    assert len(load_dataset(root / GERMANDPR).queries) == dpr_questions
    assert load_dataset(root / GERMANDPR, "dpr", name="gdpr").name == "gdpr"


def test_load_dataset_rejects_a_wrong_or_unknown_format(fixtures) -> None:
    with pytest.raises(DatasetError, match="not DPR JSON"):
        load_dataset(fixtures / XQUAD, "dpr")
    with pytest.raises(DatasetError, match=r"format must be one of \('squad', 'squad-articles', 'dpr', 'beir'\)"):
        load_dataset(fixtures / XQUAD, "csv")


def test_load_dataset_rejects_undetectable_and_missing_input(tmp_path: Path) -> None:
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps([{"question": "Wo?"}]), encoding="utf-8")
    with pytest.raises(DatasetError, match="cannot tell the format"):
        load_dataset(odd)
    with pytest.raises(DatasetError, match="no such file or folder"):
        load_dataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"expected exactly one \.json file"):
        load_dataset(tmp_path / "empty")


# ---------------------------------------------------------------- BEIR


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture
def beir_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "mini-beir"
    (folder / "qrels").mkdir(parents=True)
    write_jsonl(folder / "corpus.jsonl", [
        {"_id": "d1", "title": "Grundgesetz", "text": "Die Würde des Menschen ist unantastbar."},
        {"_id": "d2", "title": "", "text": "Der Bundestag wählt den Bundeskanzler."},
        {"_id": "d3", "text": "Berlin ist die Hauptstadt."},
    ])
    write_jsonl(folder / "queries.jsonl", [
        {"_id": "q1", "text": "Was ist unantastbar?"},
        {"_id": "q2", "text": "Wer wählt den Kanzler?"},
        {"_id": "q3", "text": "Nur mit Score 0 bewertet"},
        {"_id": "q4", "text": "Nicht im Test-Split"},
    ])
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\nq2\td3\t1\nq3\td3\t0\n", encoding="utf-8"
    )
    return folder


def test_load_beir_keeps_queries_with_a_relevant_doc(beir_folder: Path) -> None:
    evalset = load_beir(beir_folder)
    assert evalset.name == "mini-beir"
    assert list(evalset.corpus) == ["d1", "d2", "d3"]
    assert evalset.corpus["d1"] == CorpusDoc("d1", "Die Würde des Menschen ist unantastbar.", "Grundgesetz")
    assert evalset.corpus["d3"].title == ""
    assert evalset.queries == {"q1": "Was ist unantastbar?", "q2": "Wer wählt den Kanzler?"}
    assert evalset.qrels == {"q1": {"d1"}, "q2": {"d2", "d3"}}
    assert load_dataset(beir_folder).qrels == evalset.qrels


def test_load_beir_rejects_qrels_on_unknown_docs_and_queries(beir_folder: Path) -> None:
    qrels = beir_folder / "qrels" / "test.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\td9\t1\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"query 'q1' judges docs not in the corpus: \['d9'\]"):
        load_beir(beir_folder)
    qrels.write_text("q9\td1\t1\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"qrels name queries missing from queries.jsonl: \['q9'\]"):
        load_beir(beir_folder)
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\td1\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"test.tsv:2: expected query-id, corpus-id, score"):
        load_beir(beir_folder)


def test_load_beir_rejects_a_malformed_corpus_line(beir_folder: Path) -> None:
    with (beir_folder / "corpus.jsonl").open("a", encoding="utf-8") as f:
        f.write('{"title": "kein _id"}\n')
    with pytest.raises(DatasetError, match=r"corpus.jsonl:4: not a JSON object with _id and text"):
        load_beir(beir_folder)


# ---------------------------------------------------------------- invariants of EvalSet


def test_evalset_checks_its_invariants() -> None:
    doc = CorpusDoc("d1", "Text")
    with pytest.raises(DatasetError, match="corpus key 'x' holds doc 'd1'"):
        EvalSet("t", {"x": doc}, {}, {})
    with pytest.raises(DatasetError, match="doc 'd1' has a blank text"):
        EvalSet("t", {"d1": CorpusDoc("d1", " \n")}, {}, {})
    with pytest.raises(DatasetError, match="queries and qrels differ"):
        EvalSet("t", {"d1": doc}, {"q1": "Frage"}, {})
    with pytest.raises(DatasetError, match="query 'q1' has no relevant doc"):
        EvalSet("t", {"d1": doc}, {"q1": "Frage"}, {"q1": set()})


# ---------------------------------------------------------------- corpus files


def test_write_corpus_files_round_trips_the_corpus(tmp_path: Path, fixtures: Path) -> None:
    evalset = load_squad(fixtures / XQUAD)
    paths = write_corpus_files(evalset, tmp_path / "corpus")
    assert len(paths) == len(set(paths)) == 40
    assert sorted(paths) == sorted((tmp_path / "corpus").iterdir())
    for path in paths:
        assert path.suffix == ".txt"
        doc = evalset.corpus[doc_id_from_path(path)]
        assert path.read_bytes() == doc.text.encode("utf-8")
    assert write_corpus_files(evalset, tmp_path / "corpus") == paths  # a rerun rewrites the same files


def test_write_corpus_files_keeps_newlines_and_can_prepend_titles(tmp_path: Path) -> None:
    doc = CorpusDoc("abc", "Zeile eins\r\nZeile zwei\n", "Überschrift")
    evalset = EvalSet("t", {"abc": doc}, {"q": "Frage"}, {"q": {"abc"}})
    (plain,) = write_corpus_files(evalset, tmp_path / "plain")
    assert plain.read_bytes() == b"Zeile eins\r\nZeile zwei\n"
    (titled,) = write_corpus_files(evalset, tmp_path / "titled", include_title=True)
    assert titled.read_bytes() == "Überschrift\n\nZeile eins\r\nZeile zwei\n".encode()


def test_write_corpus_files_refuses_foreign_files_and_unsafe_ids(tmp_path: Path) -> None:
    evalset = EvalSet("t", {"d1": CorpusDoc("d1", "Text")}, {"q": "Frage"}, {"q": {"d1"}})
    (tmp_path / "other.txt").write_text("fremd", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"holds entries that are not docs of t: \['other.txt'\]"):
        write_corpus_files(evalset, tmp_path)
    unsafe = EvalSet("t", {"../x": CorpusDoc("../x", "Text")}, {"q": "Frage"}, {"q": {"../x"}})
    with pytest.raises(DatasetError, match=r"doc id '../x' is not a safe file name"):
        write_corpus_files(unsafe, tmp_path / "out")
    docs = {i: CorpusDoc(i, "Text") for i in ("Ab", "aB")}
    clash = EvalSet("t", docs, {"q": "Frage"}, {"q": {"Ab"}})
    with pytest.raises(DatasetError, match="differs from another only in case"):
        write_corpus_files(clash, tmp_path / "out")
