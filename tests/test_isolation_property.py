"""#10.1, the general property: no single input, however broken (content, name, size, type), changes
the outcome of any other input of the same run.

Hypothesis draws one bad input from every class the suite knows and puts it into a folder of good
German files; the good files' points (ids, payloads, vectors) must equal those of a run without it,
on both embedded engines and on the REST stand-in of a server (tests/standin/qdrant_rest.py, which
serves qdrant-client's engine over Qdrant's HTTP API). The bad input itself ends as exactly one
report line and the report balances. Bounded examples (derandomized) by default; many more under
`--run-slow`. Files are parsed in process (parse_timeout_s=0) to keep an example under a second; the
worker process has its own tests (tests/test_reliability.py, tests/test_parse_worker.py).
Permission classes are not drawn: the suite runs as root here, and root reads a mode-000 file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import unicodedata
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from ingest.chunk import ChunkOptions, TokenChunker
from ingest.embed import EmbedderOptions, HFEmbedder
from ingest.limits import Limits
from ingest.schema import P
from ingest.sparse import GermanAnalyzer, SparseEncoder
from ingest.store.base import StoreOptions
from ingest.store.edge import EdgeStore
from ingest.store.qdrant import QdrantStore
from pipelines.indexing.run import IngestRunner
from pipelines.sources import source_name
from tests.standin import badfiles as bf
from tests.standin.qdrant_rest import StandinQdrant

LIMITS = Limits(max_file_bytes=200_000, max_pages=3, max_unzipped_bytes=5_000_000, max_text_chars=50_000,
                parse_timeout_s=0)
GOOD = {
    "miete.txt": "Der Vermieter muss die Kaution getrennt von seinem Vermögen anlegen. " * 4,
    "zinsen.md": "# Zinsen\n\nDie Zinsen stehen dem Mieter zu und erhöhen die Sicherheit.\n\n## Frist\n\n"
                 "Die Kündigungsfrist beträgt drei Monate.",
}


def _write(data: bytes) -> Callable[[Path, str], None]:
    return lambda path, _: path.write_bytes(data)


def _symlink_loop(path: Path, _: str) -> None:
    other = path.with_name(path.name + ".andere.txt")
    os.symlink(other, path)
    os.symlink(path, other)


def _text_over_limit(path: Path, _: str) -> None:
    path.write_text("Größe " * 12_000, encoding="utf-8")  # 72k characters > max_text_chars


# class -> (file name suffix, how to make it)
BAD_CLASSES: dict[str, tuple[str, Callable[[Path, str], None]]] = {
    "empty": (".txt", _write(b"")),
    "whitespace only": (".md", _write(b"\n \n\t\n")),
    "binary as text": (".txt", _write(b"\x00\x01\xff\xfe\x00" * 400)),
    "binary as pdf": (".pdf", _write(os.urandom(2048))),
    "binary as docx": (".docx", _write(os.urandom(2048))),
    "truncated pdf": (".pdf", _write(bf.truncated(bf.pdf_bytes(["Kaution", "Zinsen"])))),
    "scanned pdf": (".pdf", _write(bf.pdf_bytes(["", ""]))),
    "too many pages": (".pdf", _write(bf.pdf_bytes([f"Seite {i}" for i in range(5)]))),
    "encrypted pdf": (".pdf", lambda p, _: bf.encrypted_pdf(p)),
    "encrypted docx": (".docx", lambda p, _: bf.encrypted_ooxml(p)),
    "zip bomb": (".docx", lambda p, _: bf.docx_bomb(p, 8 << 20)),
    "too large": (".txt", _write(b"Kaution " * 30_000)),
    "too much text": (".txt", _text_over_limit),
    "deep html": (".html", _write(b"<html><body>" + b"<div>" * 3000 + b"<p>tief</p>" + b"</div>" * 3000)),
    "unsupported type": (".xyz", _write(b"Kaution")),
    "fifo": (".txt", lambda p, _: os.mkfifo(p)),
    "symlink loop": (".txt", _symlink_loop),
    "dangling symlink": (".txt", lambda p, _: os.symlink(p.with_name("gibt-es-nicht"), p)),
    "good text, hostile name": (".txt", lambda p, text: p.write_text(text, encoding="utf-8")),
    "good text, cp1252 body": (".txt", lambda p, text: p.write_bytes(text.encode("cp1252", "replace"))),
}
# Names: undecodable bytes, control characters, quotes, NFD umlauts, a leading dash, near NAME_MAX.
NAME = st.one_of(
    st.binary(min_size=1, max_size=12).filter(lambda b: b"/" not in b and b"\0" not in b and b not in (b".", b"..")),
    st.sampled_from(["name_\xff", "zeile\nzwei", "\"'`$(x)", unicodedata.normalize("NFD", "Größe"), "-rf",
                     "x" * 240, "\u202egnp", " "]).map(lambda s: os.fsencode(s)),
)
TEXT = st.text(st.sampled_from(list("abcäöüßÄÖÜ .,\n")), min_size=1, max_size=200)


@pytest.fixture(scope="module")
def embedder(minilm_dir):
    emb = HFEmbedder(EmbedderOptions(model=str(minilm_dir)))
    emb.load()
    return emb


@pytest.fixture(scope="module")
def standin():
    with StandinQdrant() as s:
        yield s


@pytest.fixture(scope="module")
def good_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("gut")
    for name, text in GOOD.items():
        (folder / name).write_text(text, encoding="utf-8")
    bf.docx(folder / "vertrag.docx", ["Der Mietvertrag läuft auf unbestimmte Zeit.", bf.GERMAN])
    return folder


def points_of(store, sources: set[str]) -> dict[str, tuple[dict, np.ndarray]]:
    fields = [P.SOURCE, P.DOC_ID, P.TEXT, P.START, P.END, P.CHUNK_INDEX, P.CHUNK_COUNT, P.CONTENT_HASH,
              P.DOC_HASH, P.PAGE, P.HEADING_PATH]
    return {pid: (payload, np.asarray(vec)) for pid, payload, vec in store.scan(fields, vectors=True)
            if payload[P.SOURCE] in sources}


def ingest_once(engine: str, standin: StandinQdrant, embedder, folder: Path):
    collection = "c" + uuid.uuid4().hex[:12]
    where = tempfile.mkdtemp(prefix="iso-")
    options = (StoreOptions(collection=collection, url=standin.url, retries=0) if engine == "rest"
               else StoreOptions(collection=collection, path=where))
    store = EdgeStore(options) if engine == "edge" else QdrantStore(options)
    runner = IngestRunner(embedder, TokenChunker(embedder, ChunkOptions(64, 8)), store, "minilm",
                          SparseEncoder(GermanAnalyzer()), progress=False, limits=LIMITS)
    try:
        report = runner.run([folder])
        good = {source_name(folder / n) for n in [*GOOD, "vertrag.docx"]}
        return report, points_of(store, good)
    finally:
        store.close()
        shutil.rmtree(where, ignore_errors=True)


@pytest.mark.parametrize("engine", ["edge", "local", "rest"])
def test_one_bad_input_changes_no_other_outcome(engine, request, standin, embedder, good_folder):
    baseline_report, baseline = ingest_once(engine, standin, embedder, good_folder)
    assert baseline_report.count("ingested") == 3 and len(baseline) >= 3
    slow = request.config.getoption("--run-slow")

    @settings(max_examples=60 if slow else 8, deadline=None, derandomize=not slow,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(kind=st.sampled_from(sorted(BAD_CLASSES)), name=NAME, text=TEXT)
    def check(kind: str, name: bytes, text: str) -> None:
        suffix, make = BAD_CLASSES[kind]
        path = Path(os.fsdecode(os.fsencode(good_folder) + b"/" + name + suffix.encode()))
        note(f"{kind}: {path!r}")
        if os.path.lexists(path) or path.name in GOOD:
            return
        made = [path, path.with_name(path.name + ".andere.txt")]
        try:
            make(path, text)
            report, points = ingest_once(engine, standin, embedder, good_folder)
        finally:
            for p in made:
                if os.path.lexists(p):
                    os.unlink(p)
        assert report.balanced
        by_source = {f.source: f for f in report.files}
        for good in [*GOOD, "vertrag.docx"]:
            assert by_source[source_name(good_folder / good)].status == "ingested", report.to_dict()
        assert len(report.files) in (4, 5)  # the good files + one line per bad path (a loop has two)
        assert points.keys() == baseline.keys()
        for pid, (payload, vec) in points.items():
            assert payload == baseline[pid][0]
            assert np.allclose(vec, baseline[pid][1], atol=2e-3)

    check()
