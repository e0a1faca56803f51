"""Retrieval evaluation sets: SQuAD-style, DPR-style and BEIR-style files loaded into one `EvalSet`.

Every loader returns an EvalSet whose invariants `EvalSet.__post_init__` checks: corpus keys are the
docs' ids, no doc text is blank, the queries and the qrels have the same ids, and every query has at
least one relevant doc, all of them in the corpus. Doc ids from SQuAD and DPR files are content
hashes of the passage text (`text_id`), so the same passage gets the same id in every run and every
file. `write_corpus_files` turns a corpus into one `.txt` file per doc for the real ingest path.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest.errors import InputError

FORMATS = ("squad", "squad-articles", "dpr", "beir")
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class DatasetError(InputError):
    """An evaluation set cannot be read: missing file, unknown format, malformed or inconsistent data (the
    one input of an `eval` run: exit 1)."""


@dataclass(frozen=True)
class CorpusDoc:
    """One retrievable unit of an evaluation corpus."""

    doc_id: str
    text: str
    title: str = ""


@dataclass(frozen=True)
class EvalSet:
    """A corpus, the queries, and for each query the ids of its relevant docs (all in the corpus)."""

    name: str
    corpus: dict[str, CorpusDoc]
    queries: dict[str, str]
    qrels: dict[str, set[str]]
    # gold answer texts per query (SQuAD and DPR sets carry them): what `answer_in_context` looks for
    answers: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._check_corpus()
        self._check_qrels()

    def _check_corpus(self) -> None:
        for doc_id, doc in self.corpus.items():
            if doc.doc_id != doc_id:
                raise DatasetError(f"{self.name}: corpus key {doc_id!r} holds doc {doc.doc_id!r}")
            if not doc.text.strip():
                raise DatasetError(f"{self.name}: doc {doc_id!r} has a blank text")

    def _check_qrels(self) -> None:
        if self.queries.keys() != self.qrels.keys():
            odd = sorted(self.queries.keys() ^ self.qrels.keys())[:5]
            raise DatasetError(f"{self.name}: queries and qrels differ in their ids, e.g. {odd}")
        for qid, relevant in self.qrels.items():
            if not relevant:
                raise DatasetError(f"{self.name}: query {qid!r} has no relevant doc")
            missing = sorted(relevant - self.corpus.keys())
            if missing:
                raise DatasetError(f"{self.name}: query {qid!r} judges docs not in the corpus: {missing}")


def text_id(text: str) -> str:
    """Stable doc id of a passage: the first 16 hex digits of the SHA-1 of its UTF-8 text."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def load_squad(path: str | Path, name: str | None = None) -> EvalSet:
    """SQuAD v1.1 JSON (a file, or a folder holding exactly one .json) by MTEB's GermanQuAD protocol.

    Corpus: the unique paragraph contexts (id `text_id(context)`, title: the article title).
    Queries: the questions, keyed by their `id`. Each question's one relevant doc is its context.
    """
    file = _json_file(Path(path))
    return _squad_from(_read_json(file), name or _default_name(Path(path)), file)


def load_dpr(path: str | Path, name: str | None = None) -> EvalSet:
    """DPR-style JSON list of `{question, positive_ctxs[{text, title?}], hard_negative_ctxs[...]}`.

    Corpus: every positive and hard-negative passage, deduplicated by text (id `text_id(text)`; the
    first title seen wins). Queries: the questions, keyed by an `id` field if present, else by
    `text_id(question)`. Relevant: the question's positive passages.
    """
    file = _json_file(Path(path))
    return _dpr_from(_read_json(file), name or _default_name(Path(path)), file)


def load_beir(folder: str | Path, split: str = "test", name: str | None = None) -> EvalSet:
    """BEIR folder: `corpus.jsonl` (`_id`, `text`, `title`), `queries.jsonl` (`_id`, `text`) and
    `qrels/<split>.tsv` (query-id, corpus-id, score; an optional header line).

    A pair with score > 0 is relevant. As in BEIR's loader, only the queries with at least one
    relevant doc in the split are kept.
    """
    folder = Path(folder)
    corpus: dict[str, CorpusDoc] = {}
    for row in _read_jsonl(folder / "corpus.jsonl"):
        doc_id = str(row["_id"])
        if doc_id in corpus:
            raise DatasetError(f"{folder / 'corpus.jsonl'}: doc id {doc_id!r} appears twice")
        corpus[doc_id] = CorpusDoc(doc_id, row["text"], row.get("title") or "")
    all_queries = {str(row["_id"]): row["text"] for row in _read_jsonl(folder / "queries.jsonl")}
    qrels = _read_qrels(folder / "qrels" / f"{split}.tsv")
    unknown = sorted(qrels.keys() - all_queries.keys())
    if unknown:
        raise DatasetError(f"{folder}: qrels name queries missing from queries.jsonl: {unknown[:5]}")
    queries = {qid: text for qid, text in all_queries.items() if qid in qrels}
    return EvalSet(name or _default_name(folder), corpus, queries, qrels)


def load_dataset(path: str | Path, format: str | None = None, name: str | None = None) -> EvalSet:
    """Load an evaluation set as `format` (one of FORMATS), or detect the format when it is None.

    Detection: a folder with `corpus.jsonl` is BEIR; JSON with a top-level `data` key is SQuAD; a
    JSON list whose items have `positive_ctxs` is DPR. Raises DatasetError when nothing matches.
    """
    path = Path(path)
    if format is not None and format not in FORMATS:
        raise DatasetError(f"format must be one of {FORMATS} or None, got {format!r}")
    name = name or _default_name(path)
    if format == "beir" or (format is None and (path / "corpus.jsonl").is_file()):
        return load_beir(path, name=name)
    file = _json_file(path)
    data = _read_json(file)
    builders: dict[str, Callable[[Any, str, Path], EvalSet]] = {"squad": _squad_from, "dpr": _dpr_from,
                                                                 "squad-articles": _squad_articles_from}
    return builders[format or _detect_json(data, file)](data, name, file)


def write_corpus_files(evalset: EvalSet, folder: str | Path, include_title: bool = False) -> list[Path]:
    """Write each corpus doc as `<folder>/<doc_id>.txt` (UTF-8, newlines kept) and return the paths.

    The text is the doc's text, preceded by its title and a blank line when `include_title` is set
    and the title is not empty. The folder is created if missing; it may already hold this corpus'
    files (they are rewritten) but nothing else, so that ingesting the folder ingests exactly the
    corpus. Raises DatasetError for a doc id that is not a safe file name or for a foreign entry.
    """
    folder = Path(folder)
    names = _file_names(evalset)
    folder.mkdir(parents=True, exist_ok=True)
    foreign = sorted(p.name for p in folder.iterdir() if p.name not in names.values())
    if foreign:
        raise DatasetError(f"{folder} holds entries that are not docs of {evalset.name}: {foreign[:5]}")
    paths = []
    for doc_id, doc in evalset.corpus.items():
        text = f"{doc.title}\n\n{doc.text}" if include_title and doc.title else doc.text
        path = folder / names[doc_id]
        path.write_text(text, encoding="utf-8", newline="")
        paths.append(path)
    return paths


def doc_id_from_path(path: str | Path) -> str:
    """The doc id of a file written by `write_corpus_files` (its name without `.txt`)."""
    return Path(path).stem


def _squad_from(data: Any, name: str, file: Path) -> EvalSet:
    corpus: dict[str, CorpusDoc] = {}
    queries: dict[str, str] = {}
    qrels: dict[str, set[str]] = {}
    answers: dict[str, list[str]] = {}
    try:
        for article in data["data"]:
            for paragraph in article["paragraphs"]:
                doc_id = _add_doc(corpus, paragraph["context"], article.get("title") or "", file)
                for qa in paragraph["qas"]:
                    _add_query(queries, qrels, str(qa["id"]), qa["question"], {doc_id}, file)
                    answers[str(qa["id"])] = [a["text"] for a in qa.get("answers") or ()]
    except (KeyError, TypeError) as exc:
        raise DatasetError(f"{file}: not SQuAD JSON ({type(exc).__name__}: {exc})") from exc
    return EvalSet(name, corpus, queries, qrels, answers)


def _squad_articles_from(data: Any, name: str, file: Path) -> EvalSet:
    """SQuAD with one document per article (its paragraphs joined by blank lines), not per paragraph: documents
    span several chunks, so merging neighbouring chunks and expansion matter (`answer_in_context`). A question's
    relevant doc is its article."""
    try:
        merged = {"data": [{"title": a.get("title") or "", "paragraphs": [{
            "context": "\n\n".join(p["context"] for p in a["paragraphs"]),
            "qas": [qa for p in a["paragraphs"] for qa in p["qas"]]}]} for a in data["data"]]}
    except (KeyError, TypeError) as exc:
        raise DatasetError(f"{file}: not SQuAD JSON ({type(exc).__name__}: {exc})") from exc
    return _squad_from(merged, name, file)


def _dpr_from(data: Any, name: str, file: Path) -> EvalSet:
    corpus: dict[str, CorpusDoc] = {}
    queries: dict[str, str] = {}
    qrels: dict[str, set[str]] = {}
    answers: dict[str, list[str]] = {}
    try:
        for item in data:
            positives = {_add_ctx(corpus, ctx, file) for ctx in item["positive_ctxs"]}
            for ctx in item.get("hard_negative_ctxs") or ():
                _add_ctx(corpus, ctx, file)
            qid = str(item.get("id") or text_id(item["question"]))
            _add_query(queries, qrels, qid, item["question"], positives, file)
            answers[qid] = [str(a) for a in item.get("answers") or ()]
    except (KeyError, TypeError, AttributeError) as exc:
        raise DatasetError(f"{file}: not DPR JSON ({type(exc).__name__}: {exc})") from exc
    return EvalSet(name, corpus, queries, qrels, answers)


def _add_ctx(corpus: dict[str, CorpusDoc], ctx: dict[str, Any], file: Path) -> str:
    return _add_doc(corpus, ctx["text"], ctx.get("title") or "", file)


def _add_doc(corpus: dict[str, CorpusDoc], text: str, title: str, file: Path) -> str:
    doc_id = text_id(text)
    known = corpus.get(doc_id)
    if known is None:
        corpus[doc_id] = CorpusDoc(doc_id, text, title)
    elif known.text != text:
        raise DatasetError(f"{file}: two different passages hash to doc id {doc_id!r}")
    return doc_id


def _add_query(
    queries: dict[str, str], qrels: dict[str, set[str]], qid: str, text: str, relevant: set[str], file: Path
) -> None:
    if qid in queries:
        raise DatasetError(f"{file}: query id {qid!r} appears twice")
    queries[qid] = text
    qrels[qid] = relevant


def _detect_json(data: Any, file: Path) -> str:
    if isinstance(data, dict) and "data" in data:
        return "squad"
    if isinstance(data, list) and data and isinstance(data[0], dict) and "positive_ctxs" in data[0]:
        return "dpr"
    raise DatasetError(f"{file}: cannot tell the format (neither SQuAD nor DPR JSON); pass format=")


def _json_file(path: Path) -> Path:
    if path.is_file():
        return path
    if not path.is_dir():
        raise DatasetError(f"{path}: no such file or folder")
    found = sorted(path.glob("*.json"))
    if len(found) != 1:
        raise DatasetError(f"{path}: expected exactly one .json file, found {[p.name for p in found]}")
    return found[0]


def _read_json(file: Path) -> Any:
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{file}: cannot read JSON ({exc})") from exc


def _read_jsonl(file: Path) -> Iterator[dict[str, Any]]:
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{file}: cannot read ({exc})") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            _ = row["_id"], row["text"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DatasetError(f"{file}:{number}: not a JSON object with _id and text ({exc})") from exc
        yield row


def _read_qrels(file: Path) -> dict[str, set[str]]:
    try:
        rows = list(csv.reader(file.read_text(encoding="utf-8").splitlines(), delimiter="\t"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{file}: cannot read ({exc})") from exc
    first = 2 if rows and rows[0] and rows[0][0] == "query-id" else 1
    qrels: dict[str, set[str]] = {}
    for number, row in enumerate(rows[first - 1 :], start=first):
        if not row:
            continue
        try:
            qid, doc_id, score = row
            relevant = float(score) > 0
        except ValueError as exc:
            raise DatasetError(f"{file}:{number}: expected query-id, corpus-id, score, got {row}") from exc
        if relevant:
            qrels.setdefault(qid, set()).add(doc_id)
    return qrels


def _file_names(evalset: EvalSet) -> dict[str, str]:
    names: dict[str, str] = {}
    folded: set[str] = set()
    for doc_id in evalset.corpus:
        if not _SAFE_ID.fullmatch(doc_id):
            raise DatasetError(f"doc id {doc_id!r} is not a safe file name (letters, digits, . _ -)")
        if doc_id.casefold() in folded:
            raise DatasetError(f"doc id {doc_id!r} differs from another only in case; file names would clash")
        folded.add(doc_id.casefold())
        names[doc_id] = f"{doc_id}.txt"
    return names


def _default_name(path: Path) -> str:
    return path.stem if path.is_file() else path.name
