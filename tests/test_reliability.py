"""Bad input: every class is a generated file, each gives a clear per-file error, and the run goes on.

One ingest run over a folder of all of them (one run keeps the suite fast), then per-file checks:
the error names the file and the reason, and a failed file has no point in the store (nothing
half-ingested).
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

import pytest

from ingest.chunk import ChunkOptions, TokenChunker
from ingest.limits import Limits
from ingest.sparse import GermanAnalyzer, SparseEncoder
from ingest.store.base import StoreOptions
from ingest.store.qdrant import QdrantStore
from pipelines.indexing.run import IngestRunner
from pipelines.sources import source_name
from tests.standin import badfiles as bf

LIMITS = Limits(max_file_bytes=4_000_000, max_pages=3, max_unzipped_bytes=50_000_000, max_text_chars=400_000,
                parse_timeout_s=60)
WORDS = ["Kündigung", "Größe", "Betrieb", "Arbeitgeber", "Frist", "Woche", "Monat", "Straße"]

# file name -> regex the error must match (None: must be ingested)
EXPECTED: dict[str, str | None] = {
    "binaer.pdf": r"not a PDF file",
    "binaer.docx": r"corrupt or truncated DOCX file \(not a valid zip",
    "binaer.txt": r"binary data, not text",
    "abgeschnitten.pdf": r"cannot parse as PDF|no text found",
    "abgeschnitten.docx": r"corrupt or truncated DOCX file",
    "abgeschnitten.xlsx": r"corrupt or truncated XLSX file",
    "passwort.pdf": r"PDF is password-protected",
    "passwort.docx": r"DOCX file is password-protected",
    "passwort.xlsx": r"XLSX file is password-protected",
    "scan.pdf": r"no text found by OCR \(2 pages read",  # blank pages: OCR finds nothing (#14)
    "latin1.txt": None,
    "cp1252.txt": None,
    "utf16.txt": None,
    "zeilenenden.txt": None,
    "eine_zeile_100k.txt": None,
    "eine_zeile_3mb.txt": r"characters of text, over the limit of 400000 \(max_text_chars\)",
    "zu_gross.txt": r"bytes, over the limit of 4000000 \(max_file_bytes\)",
    "zu_viele_seiten.pdf": r"5 pages, over the limit of 3 \(max_pages\)",
    "tief.html": r"HTML nested 3002 levels deep",
    "tabelle.html": None,
    "tabelle.xlsx": None,
    "riesentabelle.xlsx": r"over the limit of 400000 \(max_text_chars\)",
    "bombe.docx": r"unpacks to \d+ bytes, over the limit of 50000000 \(max_unzipped_bytes",
    "fifo.txt": r"it is a FIFO, not a regular file",
    "schleife.txt": r"symlink loop",
    "gut.pdf": None,
    "gut.docx": None,
}


def _line(n_chars: int, seed: int) -> str:
    rnd = random.Random(seed)
    out: list[str] = []
    size = 0
    while size < n_chars:
        w = rnd.choice(WORDS)
        out.append(w)
        size += len(w) + 1
    return " ".join(out)


def make_corpus(root: Path) -> None:
    rnd = random.Random(5)
    g = bf.GERMAN
    (root / "leer.txt").write_bytes(b"")
    (root / "binaer.pdf").write_bytes(bytes(rnd.randrange(256) for _ in range(4096)))
    (root / "binaer.docx").write_bytes(bytes(rnd.randrange(256) for _ in range(4096)))
    (root / "binaer.txt").write_bytes(b"\x00\x01\xff\xfe\x00" * 800 + bytes(rnd.randrange(256) for _ in range(999)))
    good_pdf = bf.pdf_bytes(["Die Kuendigung muss schriftlich erfolgen.", "Seite zwei des Vertrags."])
    (root / "gut.pdf").write_bytes(good_pdf)
    (root / "abgeschnitten.pdf").write_bytes(bf.truncated(good_pdf))
    bf.docx(root / "gut.docx", [g, "Zweiter Absatz über die Größe."])
    (root / "abgeschnitten.docx").write_bytes(bf.truncated((root / "gut.docx").read_bytes()))
    bf.xlsx(root / "tabelle.xlsx", 40, 5)
    (root / "abgeschnitten.xlsx").write_bytes(bf.truncated((root / "tabelle.xlsx").read_bytes()))
    bf.encrypted_pdf(root / "passwort.pdf")
    bf.encrypted_ooxml(root / "passwort.docx")
    bf.encrypted_ooxml(root / "passwort.xlsx")
    (root / "scan.pdf").write_bytes(bf.pdf_bytes(["", ""]))
    (root / "latin1.txt").write_bytes(("Größe und Maß: " + g).encode("latin-1"))
    (root / "cp1252.txt").write_bytes(("„Preis“ 5 € – Größe: " + g).encode("cp1252"))
    (root / "utf16.txt").write_bytes(("Größe in UTF-16: " + g).encode("utf-16"))
    (root / "zeilenenden.txt").write_bytes(b"Erste Zeile.\r\nZweite Zeile.\rDritte Zeile.\nVierte Zeile.\r\n")
    (root / "eine_zeile_100k.txt").write_text(_line(60_000, 1), encoding="utf-8")
    (root / "eine_zeile_3mb.txt").write_text(_line(3_000_000, 2), encoding="utf-8")
    (root / "zu_gross.txt").write_text(g * 40_000, encoding="utf-8")
    (root / "zu_viele_seiten.pdf").write_bytes(bf.pdf_bytes([f"Seite {i}" for i in range(5)]))
    (root / "tief.html").write_text("<html><body>" + "<div>" * 3000 + "<p>Ganz tief: Größe</p>" + "</div>" * 3000
                                    + "</body></html>", encoding="utf-8")
    rows = "".join(f"<tr>{''.join(f'<td>Zeile {r} Spalte {c} Größe</td>' for c in range(5))}</tr>"
                   for r in range(60))
    (root / "tabelle.html").write_text(f"<html><body><table>{rows}</table></body></html>", encoding="utf-8")
    bf.xlsx(root / "riesentabelle.xlsx", 3000, 12)
    bf.docx_bomb(root / "bombe.docx", 120 << 20)
    os.mkfifo(root / "fifo.txt")
    os.symlink(root / "schleife2.txt", root / "schleife.txt")
    os.symlink(root / "schleife.txt", root / "schleife2.txt")
    os.symlink(root, root / "ordner_schleife")  # a folder loop: not followed


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory, tiny_embedder):
    root = tmp_path_factory.mktemp("bad")
    corpus = root / "korpus"
    corpus.mkdir()
    make_corpus(corpus)
    odd = os.fsencode(corpus) + b"/caf\xe9-name.txt"  # not UTF-8: Latin-1 byte in the name
    with open(odd, "wb") as fh:
        fh.write(bf.GERMAN.encode())
    long_file = bf.deep_path(corpus, 4200)
    store = QdrantStore(StoreOptions(collection="bad", path=str(root / "q")))
    runner = IngestRunner(tiny_embedder, TokenChunker(tiny_embedder, ChunkOptions(128, 16)), store, "tiny",
                          SparseEncoder(GermanAnalyzer()), progress=False, limits=LIMITS)
    report = runner.run([corpus])
    yield corpus, report, store, long_file
    store.close()


def test_every_bad_file_is_reported_and_the_run_goes_on(bad_run):
    corpus, report, store, _ = bad_run
    by_source = {f.source: f for f in report.files}
    for name, pattern in EXPECTED.items():
        result = by_source.get(source_name(corpus / name))
        assert result is not None, f"{name} not in the report"
        if pattern is None:
            assert result.status == "ingested", f"{name}: {result.error}"
            assert store.count({"source": result.source}) == result.chunks > 0
        else:
            assert result.status == "failed", f"{name} was {result.status}"
            assert result.error.startswith(result.source), result.error  # the message names the file
            assert re.search(pattern, result.error), f"{name}: {result.error}"
            assert store.count({"source": result.source}) == 0  # nothing half-ingested
    assert report.balanced


def test_empty_file_is_skipped_not_failed(bad_run):
    """#10.3: an empty file has nothing to index; with no stored version it is skipped, not an error."""
    corpus, report, store, _ = bad_run
    result = next(f for f in report.files if f.source == source_name(corpus / "leer.txt"))
    assert result.status == "skipped" and "file is empty (0 bytes)" in result.error
    assert store.count({"source": result.source}) == 0


def test_non_utf8_name_is_ingested_escaped_and_overlong_path_reported(bad_run):
    """#10.1: a name that is not UTF-8 is stored under a valid, escaped source; the others are unaffected."""
    corpus, report, store, long_file = bad_run
    escaped = corpus.as_posix() + "/caf\\xe9-name.txt"
    result = next(f for f in report.files if f.source == escaped)
    assert result.status == "ingested" and store.count({"source": escaped}) == result.chunks > 0
    errors = [f.error for f in report.files if f.status == "failed"]
    assert any("cannot list folder: File name too long" in e for e in errors), errors
    assert len(os.fsencode(long_file)) > 4096


def test_encodings_are_decoded_not_mangled(bad_run):
    corpus, _, store, _ = bad_run
    for name, needle in [("latin1.txt", "Größe und Maß"), ("cp1252.txt", "„Preis“ 5 €"), ("utf16.txt", "Größe in")]:
        hits = store.client.scroll("bad", scroll_filter=None, limit=1000, with_payload=True)[0]
        texts = [h.payload["text"] for h in hits if h.payload["source"] == source_name(corpus / name)]
        assert any(needle in t for t in texts), (name, texts)
    texts = [h.payload["text"] for h in store.client.scroll("bad", limit=1000, with_payload=True)[0]
             if h.payload["source"] == source_name(corpus / "zeilenenden.txt")]
    assert texts and not any("\r" in t for t in texts)  # CR and CRLF became LF


def test_parse_time_limit_stops_the_worker_and_the_run_goes_on(tmp_path, tiny_embedder):
    bf.xlsx(tmp_path / "a_langsam.xlsx", 8000, 10)  # several seconds to parse
    (tmp_path / "b_danach.txt").write_text(bf.GERMAN, encoding="utf-8")
    store = QdrantStore(StoreOptions(collection="t", path=str(tmp_path / "q")))
    runner = IngestRunner(tiny_embedder, TokenChunker(tiny_embedder), store, "tiny", progress=False,
                          limits=Limits(parse_timeout_s=1.5))
    try:
        report = runner.run([tmp_path / "a_langsam.xlsx", tmp_path / "b_danach.txt"])
        slow, after = report.files
        assert slow.status == "failed" and "parsing took longer than 1.5 s (parse_timeout_s)" in slow.error
        assert after.status == "ingested", after.error  # a fresh worker took the next file
        assert store.count({"source": slow.source}) == 0
    finally:
        store.close()


def test_files_that_vanish_or_change_during_the_run(tmp_path, tiny_embedder, monkeypatch):
    import pipelines.indexing.triage as ir  # where triage hashes files

    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("a.txt", "b.txt", "c.txt", "d.txt"):
        (docs / name).write_text(f"{name}: {bf.GERMAN}", encoding="utf-8")
    store = QdrantStore(StoreOptions(collection="t", path=str(tmp_path / "q")))
    runner = IngestRunner(tiny_embedder, TokenChunker(tiny_embedder), store, "tiny", progress=False,
                          limits=Limits(parse_timeout_s=0))  # in process, so the hook below sees the parse
    real_hash = ir.sha256_file

    def hash_then_edit(path, source):
        if path.name == "a.txt":  # b.txt is deleted after discovery, before its turn
            (docs / "b.txt").unlink()
        digest = real_hash(path, source)
        if path.name == "c.txt":  # c.txt is rewritten between hashing and parsing
            path.write_text("Ganz neuer Inhalt, länger als vorher. " * 3, encoding="utf-8")
        if path.name == "d.txt":  # d.txt is deleted between hashing and parsing
            path.unlink()
        return digest

    monkeypatch.setattr(ir, "sha256_file", hash_then_edit)
    try:
        report = runner.run([docs])
        files = {Path(f.source).name: f for f in report.files}
        a, b, c, d = (files[n] for n in ("a.txt", "b.txt", "c.txt", "d.txt"))
        assert a.status == "ingested"
        assert b.status == "failed" and re.search(r"b\.txt: cannot read file: No such file", b.error)
        assert c.status == "failed" and "changed while it was being ingested; run again" in c.error
        assert d.status == "failed" and "d.txt" in d.error and "No such file" in d.error
        for gone in (b, c, d):
            assert store.count({"source": gone.source}) == 0
        monkeypatch.setattr(ir, "sha256_file", real_hash)
        again = runner.run([docs])
        assert sorted((Path(f.source).name, f.status) for f in again.files) == [
            ("a.txt", "unchanged"), ("c.txt", "ingested")]  # the next run takes it
    finally:
        store.close()


def test_unreadable_permissions_are_not_testable_as_root_so_a_directory_named_like_a_file_is_used(tmp_path):
    """As root, chmod 000 does not stop a read; a FIFO (above) and a folder named `x.pdf` are real stand-ins."""
    from ingest.limits import file_stamp
    from ingest.schema import ParseError

    (tmp_path / "ordner.pdf").mkdir()
    with pytest.raises(ParseError, match=r"ordner\.pdf: cannot read file: it is a directory"):
        file_stamp(tmp_path / "ordner.pdf", str(tmp_path / "ordner.pdf"))
    locked = tmp_path / "gesperrt.txt"
    locked.write_text("x")
    locked.chmod(0)
    if os.geteuid() != 0:  # a normal user gets the permission error named
        from pipelines.indexing.triage import sha256_file

        with pytest.raises(ParseError, match=r"gesperrt\.txt: cannot read file: Permission denied"):
            sha256_file(locked, str(locked))
