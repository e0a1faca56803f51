"""#14 end to end: `german-rag ingest` of the scanned Bundesgesetzblatt page (tests/fixtures copy) stores its
OCR'd text with `ocr: true` and its page confidence, the report counts the page, and a sentence from the scan
finds it (also with `--filter ocr=true`). `--ocr off` keeps the old "needs OCR" failure. Real tesseract, MiniLM,
embedded Qdrant."""

from __future__ import annotations

import json
import shutil

import pytest

from ingest.schema import P
from pipelines.build import build_store
from pipelines.cli.main import main
from pipelines.config import load_settings

pytestmark = pytest.mark.skipif(not shutil.which("tesseract") or not shutil.which("pdftoppm"),
                                reason="tesseract/pdftoppm not installed (make installs them)")
SCAN = "documents/pdf/bgbl1_2020_j1890-1_0100.pdf"


def run(capsys, *args: str) -> tuple[int, dict]:
    code = main([*args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_the_scanned_example_is_stored_with_ocr_true_and_found_by_a_sentence(capsys, cli_env, fixtures):
    scan = cli_env / "scan.pdf"
    shutil.copy(fixtures / SCAN, scan)
    code, report = run(capsys, "ingest", str(scan))
    assert code == 0 and report["ingested"] == 1 and report["ocr_pages"] == 1, report
    assert report["ocr_low_confidence"] == [] and report["ocr_problems"] == []
    store = build_store(load_settings(None))
    try:
        points = [p for _, p, _ in store.scan([P.OCR, P.OCR_PAGES, P.TEXT, P.PAGE])]
    finally:
        store.close()
    assert points and all(p[P.OCR] is True for p in points)
    assert set(points[0][P.OCR_PAGES]) == {"1"} and points[0][P.OCR_PAGES]["1"] > 60
    assert all(p[P.PAGE] == 1 for p in points)
    text = " ".join(p[P.TEXT] for p in points)
    assert "Kernkapital" in text and "Risikodeckungspotenzial" in text  # umlaut-free anchors; ü below
    assert "Verfügung" in text and "Vermögensgegenstände" in text

    sentence = "Hartes Kernkapital, das zur Einhaltung der kombinierten Kapitalpufferanforderung erforderlich ist"
    for extra in ([], ["--filter", "ocr=true"]):
        code, hits = run(capsys, "query", sentence, "--mode", "hybrid", *extra)
        assert code == 0 and hits["passages"][0]["source"].endswith("scan.pdf")
        assert hits["passages"][0]["document"]["ocr"] is True


def test_ocr_off_keeps_a_scan_a_reported_failure(capsys, cli_env, fixtures):
    scan = cli_env / "scan.pdf"
    shutil.copy(fixtures / SCAN, scan)
    code, report = run(capsys, "ingest", str(scan), "--ocr", "off")
    assert code == 1 and report["failed"] == 1 and "needs OCR" in report["files"][0]["error"]
