import json
import os
import shutil
import subprocess
import sys

import pytest

from pipelines.cli.main import main


def run_cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *args):
    code, out, err = run_cli(capsys, *args, "--json")
    return code, json.loads(out), err


@pytest.fixture()
def corpus(settings_env, fixtures):
    folder = settings_env / "docs"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(fixtures / "gesetze/b/burlg/index.md", folder / "burlg.md")
    shutil.copy(fixtures / "documents/office/ONLYOFFICE-Beispieldokument.docx", folder / "sub/beispiel.docx")
    shutil.copy(fixtures / "documents/pdf/bgbl1_2020_j1890-1_0100.pdf", folder / "sub/scan.pdf")
    (folder / "notiz.txt").write_text("Der Betriebsrat trifft sich montags um 9 Uhr.", encoding="utf-8")
    (folder / "bild.png").write_bytes(b"\x89PNG\r\n")
    return folder


def test_ingest_reports_balance_and_reingest_is_a_noop(capsys, corpus):
    code, report, _ = run_json(capsys, "ingest", str(corpus))
    assert code == 1  # the broken PNG failed; the scanned PDF is read by OCR (#14)
    assert report["files_seen"] == 5
    assert (report["ingested"], report["unchanged"], report["failed"], report["skipped"]) == (4, 0, 1, 0)
    assert report["balanced"] and report["chunks"] == report["points_written"] > 10
    failed = [f for f in report["files"] if f["status"] == "failed"]
    assert "bild.png" in failed[0]["error"] and "cannot parse as PNG" in failed[0]["error"]
    assert set(report["stage_seconds"]) == {"parse", "chunk", "embed", "store"}

    code, again, _ = run_json(capsys, "ingest", str(corpus))
    assert (again["ingested"], again["unchanged"], again["points_written"]) == (0, 4, 0)


def test_changed_file_replaces_its_chunks_and_delete_removes_it(capsys, corpus):
    note = corpus / "notiz.txt"
    run_json(capsys, "ingest", str(note))
    note.write_text("Der Betriebsrat trifft sich dienstags um 10 Uhr. Neu ist der Raum 2.14.", encoding="utf-8")
    code, report, _ = run_json(capsys, "ingest", str(note))
    assert code == 0 and report["ingested"] == 1 and report["points_deleted"] == 1
    code, res, _ = run_json(capsys, "query", "Wann trifft sich der Betriebsrat?", "--top-k", "5")
    assert [p["text"] for p in res["passages"]] == [note.read_text(encoding="utf-8")]
    code, res, _ = run_json(capsys, "delete", str(note))
    assert code == 0 and res["points_deleted"] == 1
    code, res, _ = run_json(capsys, "delete", str(note))
    assert code == 1 and res["points_deleted"] == 0


def test_query_returns_sources_spans_and_filters(capsys, corpus):
    run_json(capsys, "ingest", str(corpus))
    code, res, _ = run_json(capsys, "query", "Urlaub Werktage", "--top-k", "3",
                            "--filter", f"source={corpus / 'burlg.md'}")
    assert code == 0 and len(res["passages"]) == 3
    doc_text = None
    for p in res["passages"]:
        assert p["source"].endswith("burlg.md") and p["end"] > p["start"]
        assert set(p) >= {"score", "source", "page", "heading_path", "start", "end", "text"}
        doc_text = doc_text or __import__("ingest.parse", fromlist=["x"]).parse_file(corpus / "burlg.md").text
        assert doc_text[p["start"] : p["end"]] == p["text"]
    code, _, err = run_cli(capsys, "query", "Urlaub", "--filter", "farbe=rot")
    # bad usage (#10.14), not a failed query; the store's filter rule names the field
    assert code == 2 and "--filter farbe=rot: filter field 'farbe' is not filterable" in err


def test_over_long_query_needs_truncate(capsys, corpus):
    run_json(capsys, "ingest", str(corpus / "notiz.txt"))
    long_query = "Urlaub " * 600
    code, _, err = run_cli(capsys, "query", long_query)
    assert code == 1 and "over the model's limit" in err
    code, res, _ = run_json(capsys, "query", long_query, "--truncate")
    assert code == 0 and res["passages"]


def test_bad_input_loses_nothing_already_stored(capsys, corpus):
    run_json(capsys, "ingest", str(corpus / "notiz.txt"))
    (corpus / "leer.txt").write_bytes(b"")
    (corpus / "falsch.pdf").write_bytes(os.urandom(4096))
    (corpus / "daten.xyz").write_text("x")
    (corpus / "weg.txt").symlink_to(corpus / "fehlt.txt")
    bad = [str(corpus / n) for n in ("leer.txt", "falsch.pdf", "daten.xyz", "weg.txt")]
    code, report, _ = run_json(capsys, "ingest", *bad, str(corpus / "notiz.txt"))
    assert code == 1 and report["failed"] == 3 and report["skipped"] == 1 and report["unchanged"] == 1
    errors = {os.path.basename(f["source"]): f["error"] for f in report["files"] if f["status"] != "unchanged"}
    assert "file is empty" in errors["leer.txt"]
    assert "not a PDF file" in errors["falsch.pdf"]
    assert "unsupported file type '.xyz'" in errors["daten.xyz"]
    assert "dangling symlink" in errors["weg.txt"]
    code, res, _ = run_json(capsys, "query", "Betriebsrat")
    assert res["passages"][0]["source"].endswith("notiz.txt")


def test_model_mismatch_and_bad_config_exit_2(capsys, corpus, minilm_dir, monkeypatch):
    run_json(capsys, "ingest", str(corpus / "notiz.txt"))
    code, _, err = run_cli(capsys, "query", "Urlaub", "--model", str(minilm_dir))
    assert code == 2 and "was built with model" in err
    monkeypatch.setenv("GERMAN_RAG_CHUNK_TOKENS", "viele")
    code, _, err = run_cli(capsys, "config")
    assert code == 2 and "chunk_tokens (env GERMAN_RAG_CHUNK_TOKENS" in err


def test_config_layers_and_hides_secrets(capsys, settings_env, monkeypatch):
    (settings_env / "german-rag.toml").write_text('collection = "aus_datei"\ntop_k = 7\n')
    monkeypatch.setenv("GERMAN_RAG_TOP_K", "9")
    monkeypatch.setenv("GERMAN_RAG_QDRANT_API_KEY", "geheim")
    code, cfg, _ = run_json(capsys, "config")
    assert code == 0 and cfg["collection"] == "aus_datei" and cfg["top_k"] == 9
    assert cfg["qdrant_api_key"] == "**********"
    code, cfg, _ = run_json(capsys, "config", "--collection", "von_cli")
    assert cfg["collection"] == "von_cli"
    code, _, err = run_cli(capsys, "config", "--collection", "böse name")
    assert code == 2 and "collection" in err


def test_demo_without_model_stops_with_instructions(settings_env, monkeypatch):
    monkeypatch.setenv("GERMAN_RAG_EMBED_MODEL", "aari1995/German_Semantic_STS_V2")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(settings_env / "hf")}
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "demo"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 2
    assert "GERMAN_RAG_EMBED_MODEL" in proc.stderr and "Traceback" not in proc.stderr


def test_demo_runs_on_a_local_model(capsys, settings_env):
    code, out, _ = run_cli(capsys, "demo")
    assert code == 0
    assert "Frage: Wie viele Werktage Urlaub" in out and "burlg.md" in out


def test_usage_error_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["ingest"])
    assert exc.value.code == 2
