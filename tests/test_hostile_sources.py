"""Issue #10, items 1, 3, 4, 5, 11, 14 (symlink loops): how files become sources, and what the CLI
says about them. Runs the real CLI on the real MiniLM model (a PyPI package: no ../shared/data needed)
and the default embedded engine (edge)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.cli.main import main
from pipelines.indexing.discover import discover
from pipelines.sources import escape_name, file_path, source_name, unescape_name
from tests.standin import badfiles as bf

MIETE = "Der Vermieter muss die Kaution getrennt von seinem Vermögen bei einer Bank anlegen. "
ZINSEN = "Die Zinsen stehen dem Mieter zu und erhöhen die Sicherheit. "


def run(capsys, *args: str) -> tuple[int, dict]:
    code = main([*args, "--json"])
    out, _ = capsys.readouterr()
    out.encode("utf-8")  # #10.11: the JSON a machine reads is valid UTF-8 (no lone surrogates)
    return code, json.loads(out)


def by_name(report: dict) -> dict[str, dict]:
    return {os.path.basename(f["source"]): f for f in report["files"]}


def test_a_non_utf8_name_fails_no_other_file(capsys, cli_env):
    """#10.1 / #10.11: the issue's folder: two good files, a truncated PDF and `name_\\xff.txt`."""
    folder = cli_env / "docs"
    folder.mkdir()
    (folder / "miete.txt").write_text(MIETE * 3, encoding="utf-8")
    (folder / "zinsen.md").write_text("# Zinsen\n\n" + ZINSEN * 3, encoding="utf-8")
    (folder / "kaputt.pdf").write_bytes(bf.truncated(bf.pdf_bytes(["Kaution und Zinsen"])))
    raw = os.fsencode(folder) + b"/name_\xff.txt"
    with open(raw, "wb") as fh:
        fh.write((MIETE + ZINSEN).encode())
    code, report = run(capsys, "ingest", str(folder))
    files = by_name(report)
    assert code == 1 and report["balanced"] and report["files_seen"] == 4
    assert files["miete.txt"]["status"] == files["zinsen.md"]["status"] == "ingested"
    assert files["name_\\xff.txt"]["status"] == "ingested"  # stored under its escaped, valid name
    assert files["kaputt.pdf"]["status"] == "failed"
    escaped = folder.as_posix() + "/name_\\xff.txt"
    assert file_path(escaped) == Path(os.fsdecode(raw))  # the stored name leads back to the file
    code, res = run(capsys, "query", "Kaution", "--filter", f"source={os.fsdecode(raw)}", "--mode", "bm25")
    assert code == 0 and res["passages"] and {p["source"] for p in res["passages"]} == {escaped}
    code, again = run(capsys, "ingest", str(folder))  # unchanged: found under its escaped name
    assert by_name(again)["name_\\xff.txt"]["status"] == "unchanged"
    os.unlink(raw)
    code, res = run(capsys, "delete", escaped)  # the name as every report shows it
    assert code == 0 and res["points_deleted"] > 0 and res["sources"] == [escaped]


NAMES = [b"/a/name_\xff.txt", b"/a/name_\\xff.txt", b"/a/caf\xe9/\xc3\xa4\xff\xfe.md", "/a/Größe.txt".encode(),
         b"/a/x\\\\y", b"/a/\\", b"/a/\\x", b"/a/\xed\xa0\x80"]


def test_escaping_is_injective_reversible_and_the_identity_on_utf8():
    """#10.1: the escape keeps every byte, no two names share a stored name, and a UTF-8 name without a
    backslash is stored as it is."""
    stored = [escape_name(os.fsdecode(raw)) for raw in NAMES]
    assert len(set(stored)) == len(NAMES)
    for raw, text in zip(NAMES, stored, strict=True):
        text.encode("utf-8")
        assert os.fsencode(unescape_name(text)) == raw
    assert escape_name("/a/Größe x.txt") == "/a/Größe x.txt"


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=24), st.binary(min_size=1, max_size=24))
def test_escaping_property(a, b):
    """#10.1: for any two byte names, equal stored names mean equal names, and every name comes back."""
    ea, eb = escape_name(os.fsdecode(a)), escape_name(os.fsdecode(b))
    ea.encode("utf-8")
    assert os.fsencode(unescape_name(ea)) == a
    assert (ea == eb) == (a == b)


def test_a_name_spelling_an_escape_never_replaces_the_undecodable_one(capsys, cli_env):
    """#10.1: `n\\xff.txt` (a UTF-8 name with a backslash) and `n<0xff>.txt`, ingested in separate runs,
    are two sources: neither replaces the other; verify finds both files."""
    folder = cli_env / "d"
    folder.mkdir()
    (folder / "n\\xff.txt").write_text("Die Kündigungsfrist beträgt drei Monate.", encoding="utf-8")
    with open(os.fsencode(folder) + b"/n\xff.txt", "wb") as fh:
        fh.write("Der Urlaub muss gewährt werden.".encode())
    assert run(capsys, "ingest", str(folder / "n\\xff.txt"))[1]["ingested"] == 1
    code, report = run(capsys, "ingest", os.fsdecode(os.fsencode(folder) + b"/n\xff.txt"))
    assert code == 0 and report["ingested"] == 1 and report["points_deleted"] == 0
    code, res = run(capsys, "query", "Kündigungsfrist", "--mode", "bm25")
    assert [os.path.basename(p["source"]) for p in res["passages"]] == ["n\\\\xff.txt"]
    code, res = run(capsys, "verify", str(folder))
    assert code == 0 and res["ok"] and res["sources_checked"] == 2, res["problems"]


def test_an_emptied_file_removes_its_document(capsys, cli_env):
    """#10.3: a file emptied (0 bytes, or only whitespace) removes its stored document, reported as removed;
    afterwards it is skipped (nothing to index), and verify is satisfied."""
    folder = cli_env / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text(MIETE, encoding="utf-8")
    (folder / "b.md").write_text(ZINSEN, encoding="utf-8")
    code, report = run(capsys, "ingest", str(folder))
    assert code == 0 and report["ingested"] == 2
    (folder / "a.txt").write_bytes(b"")
    (folder / "b.md").write_text("\n\n   \n", encoding="utf-8")
    code, report = run(capsys, "ingest", str(folder))
    files = by_name(report)
    assert code == 0 and report["balanced"] and report["removed"] == 2
    assert files["a.txt"]["points_deleted"] == 1 and "file is empty" in files["a.txt"]["error"]
    assert files["b.md"]["status"] == "removed"
    code, res = run(capsys, "query", "Kaution Zinsen", "--mode", "bm25")
    assert res["passages"] == []
    code, report = run(capsys, "ingest", str(folder))
    assert code == 0 and report["skipped"] == 2
    code, res = run(capsys, "verify", str(folder))
    assert code == 0 and res["ok"], res["problems"]


def test_relative_sources_are_found_after_the_file_is_gone(capsys, cli_env):
    """#10.4: ingest, delete, --filter and verify resolve a relative path the same way, file or not;
    `delete FOLDER` deletes the sources under it, with the count, and `--dry-run` deletes nothing."""
    (cli_env / "c1" / "sub").mkdir(parents=True)
    (cli_env / "c1" / "x.txt").write_text(MIETE, encoding="utf-8")
    (cli_env / "c1" / "sub" / "y.txt").write_text(ZINSEN, encoding="utf-8")
    (cli_env / "c10.txt").write_text(MIETE, encoding="utf-8")  # shares the prefix, not the folder
    code, report = run(capsys, "ingest", "c1/x.txt", "c1", "c10.txt")
    assert code == 0 and report["ingested"] == 3 and report["files_seen"] == 3
    os.remove("c1/x.txt")
    code, res = run(capsys, "query", "Kaution", "--filter", "source=c1/x.txt", "--mode", "bm25")
    assert code == 0 and [p["source"] for p in res["passages"]] == [(cli_env / "c1/x.txt").as_posix()]
    code, res = run(capsys, "verify", "c1")
    assert code == 1 and [(p["kind"], os.path.basename(p["source"])) for p in res["problems"]] == [("orphan", "x.txt")]
    code, res = run(capsys, "delete", "c1/x.txt")
    assert code == 0 and res["points_deleted"] == 1
    code, res = run(capsys, "delete", "c1", "--dry-run")
    assert code == 0 and res["sources"] == [(cli_env / "c1/sub/y.txt").as_posix()] and res["points"] == 1
    assert res["points_deleted"] == 0
    code, res = run(capsys, "delete", "c1")
    assert code == 0 and res["sources_deleted"] == 1 and res["points_deleted"] == 1
    code, res = run(capsys, "query", "Kaution", "--mode", "bm25")
    assert [os.path.basename(p["source"]) for p in res["passages"]] == ["c10.txt"]


def test_a_symlink_and_its_target_are_one_source(capsys, cli_env):
    """#10.5: one source per real file: a symlinked file and its target are ingested once."""
    folder = cli_env / "docs"
    folder.mkdir()
    (folder / "original.txt").write_text(MIETE, encoding="utf-8")
    (folder / "verweis.txt").symlink_to(folder / "original.txt")
    code, report = run(capsys, "ingest", str(folder), str(folder / "verweis.txt"))
    assert code == 0 and report["files_seen"] == 1 and report["ingested"] == 1
    assert report["files"][0]["source"] == source_name(folder / "original.txt")
    code, res = run(capsys, "query", "Kaution", "--mode", "bm25")
    assert len(res["passages"]) == 1


def test_symlink_loops_and_dangling_links_say_so(tmp_path):
    """#10.14: a symlink loop is reported as a loop (not as an unsupported file type)."""
    os.symlink(tmp_path / "b.txt", tmp_path / "a.txt")
    os.symlink(tmp_path / "a.txt", tmp_path / "b.txt")
    os.symlink(tmp_path / "fehlt.txt", tmp_path / "weg.txt")
    candidates, errors = discover([tmp_path])
    assert candidates == []
    reasons = {os.path.basename(p): why for p, why in errors}
    assert "symlink loop" in reasons["a.txt"] and "symlink loop" in reasons["b.txt"]
    assert "dangling symlink" in reasons["weg.txt"]


def test_json_output_stays_valid_utf8_for_undecodable_arguments(capsys, cli_env):
    """#10.11: an argument that is not UTF-8 still gives valid UTF-8 JSON and text."""
    bad = os.fsdecode(b"/nirgends/ordner_\xfe/datei.txt")
    code, report = run(capsys, "ingest", bad)
    assert code == 1 and report["files"][0]["source"] == "/nirgends/ordner_\\xfe/datei.txt"
    code = main(["ingest", bad])
    out, err = capsys.readouterr()
    (out + err).encode("utf-8")
    assert code == 1 and "ordner_\\xfe" in out


def test_a_changed_file_that_yields_no_chunks_removes_its_document(tmp_path, minilm_dir):
    """#10.3: text that chunks to nothing is empty too; its stored version goes, and the run carries on
    with the other files of the batch (a chunker that returns nothing for one file stands in for text the
    real chunker cannot split: none is known, the path must hold anyway)."""
    from ingest.chunk import TokenChunker
    from ingest.embed import EmbedderOptions, HFEmbedder
    from ingest.limits import Limits
    from ingest.store.base import StoreOptions
    from ingest.store.edge import EdgeStore
    from pipelines.indexing.run import IngestRunner

    class SilentOn(TokenChunker):
        def chunk(self, doc, doc_id):
            return [] if doc.source.endswith("a.txt") else super().chunk(doc, doc_id)

    (tmp_path / "a.txt").write_text(MIETE, encoding="utf-8")
    (tmp_path / "b.txt").write_text(ZINSEN, encoding="utf-8")
    embedder = HFEmbedder(EmbedderOptions(model=str(minilm_dir)))
    store = EdgeStore(StoreOptions(collection="c", path=str(tmp_path / "q")))
    try:
        first = IngestRunner(embedder, TokenChunker(embedder), store, "m", progress=False,
                             limits=Limits(parse_timeout_s=0)).run([tmp_path / "a.txt", tmp_path / "b.txt"])
        assert first.count("ingested") == 2
        (tmp_path / "a.txt").write_text(MIETE + ZINSEN, encoding="utf-8")
        (tmp_path / "b.txt").write_text(ZINSEN + MIETE, encoding="utf-8")
        report = IngestRunner(embedder, SilentOn(embedder), store, "m", progress=False,
                              limits=Limits(parse_timeout_s=0)).run([tmp_path / "a.txt", tmp_path / "b.txt"])
        status = {os.path.basename(f.source): f.status for f in report.files}
        assert status == {"a.txt": "removed", "b.txt": "ingested"} and report.balanced
        assert store.count({"source": source_name(tmp_path / "a.txt")}) == 0
    finally:
        store.close()


def test_in_process_parsing_in_a_fresh_process_loads_the_model(tmp_path, minilm_dir):
    """`--parse-timeout 0` parses in process while the model loads on the main thread: hiding torch from
    spaCy's import there made the model's own torch import fail (found while fixing #10.15's lazy imports)."""
    import subprocess
    import sys

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text(MIETE, encoding="utf-8")
    (tmp_path / "docs" / "b.md").write_text("# Zinsen\n\n" + ZINSEN, encoding="utf-8")
    env = {**os.environ, "GERMAN_RAG_EMBED_MODEL": str(minilm_dir), "GERMAN_RAG_QDRANT_PATH": str(tmp_path / "q"),
           "HF_HUB_OFFLINE": "1"}
    env.pop("GERMAN_RAG_CONFIG", None)
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "ingest", "docs", "--parse-timeout", "0", "--json"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert json.loads(proc.stdout)["ingested"] == 2


def test_a_folder_with_undecodable_name_and_a_file_spelling_an_escape(capsys, cli_env):
    """#10.1: verify finds `x\\xfe.txt` (a literal backslash) inside a folder whose name is not UTF-8."""
    folder = os.fsencode(cli_env) + b"/d\xff"
    os.mkdir(folder)
    for name, text in [(b"/x\\xfe.txt", "Kündigungsfrist drei Monate."), (b"/ok.txt", "Urlaub gewähren.")]:
        with open(folder + name, "wb") as fh:
            fh.write(text.encode())
    assert run(capsys, "ingest", os.fsdecode(folder))[1]["ingested"] == 2
    code, res = run(capsys, "verify", os.fsdecode(folder))
    assert code == 0 and res["ok"], res["problems"]


@pytest.mark.parametrize("args", [("delete", ""), ("ingest", ""), ("verify", ""), ("ingest", "docs", "")])
def test_an_empty_path_is_bad_usage_not_the_working_folder(capsys, cli_env, args):
    """#10.4: `delete ""` (an unset shell variable) deleted every source under the working folder."""
    (cli_env / "docs").mkdir()
    (cli_env / "docs" / "a.txt").write_text(MIETE, encoding="utf-8")
    assert run(capsys, "ingest", "docs")[0] == 0
    code, res = run(capsys, *args)
    assert code == 2 and "empty path" in res["error"]
    assert run(capsys, "query", "Kaution", "--mode", "bm25")[1]["passages"]  # nothing was deleted


@pytest.mark.parametrize("text", ["", "\u200b\ufeff", "\u034f", "\u115f", "\u1160\uffa0", "\u3164", "\ufe0f",
                                  "\u2800", " \t\n", os.fsdecode(b"K\xff")])
def test_empty_invisible_or_undecodable_queries_are_bad_usage(capsys, cli_env, text):
    """#10.14 / #10.9: a query that shows nothing (or is not text) exits 2 with a message, never a traceback,
    in every mode."""
    (cli_env / "a.txt").write_text(MIETE, encoding="utf-8")
    run(capsys, "ingest", "a.txt")
    for mode in ("hybrid", "bm25"):
        code, res = run(capsys, "query", text, "--mode", mode)
        assert code == 2 and res["error"].startswith("query:"), res


def test_query_flags_and_filters_name_what_is_wrong(capsys, cli_env):
    """#10.14: out-of-range --expand/--mmr name the flag (exit 2); a folder as source filter and a malformed
    doc id are usage errors; an upper-case doc id finds the document."""
    (cli_env / "c1").mkdir()
    (cli_env / "c1" / "a.txt").write_text(MIETE, encoding="utf-8")
    run(capsys, "ingest", "c1")
    for flags, needle in [(("--expand", "9"), "--expand 9"), (("--mmr", "2"), "--mmr 2.0"),
                          (("--filter", "source=c1"), "is a folder"), (("--filter", "doc_id=NOT-A-UUID"), "UUID")]:
        code, res = run(capsys, "query", "Kaution", "--mode", "bm25", *flags)
        assert code == 2 and needle in res["error"], (flags, res)
    code, res = run(capsys, "query", "Kaution", "--mode", "bm25")
    doc_id = res["passages"][0]["doc_id"]
    code, res = run(capsys, "query", "Kaution", "--mode", "bm25", "--filter", f"doc_id={doc_id.upper()}")
    assert code == 0 and [p["doc_id"] for p in res["passages"]] == [doc_id]


def test_a_newline_in_a_file_name_cannot_forge_report_lines(capsys, cli_env):
    """#10.11: text output spells control characters in names as escapes (the JSON is exact)."""
    (cli_env / "d").mkdir()
    (cli_env / "d" / "a\n  FAILED: geheim.pdf: gefälscht\n.pdf").write_text("x", encoding="utf-8")
    code = main(["ingest", "d"])
    out, _ = capsys.readouterr()
    assert code == 1
    assert not any(line.startswith("  FAILED: geheim.pdf") for line in out.splitlines()), out
    assert "a\\n  FAILED: geheim.pdf" in out


def test_undecodable_filter_values_are_bad_usage(capsys, cli_env):
    """#10.9 (second review): a filter value with undecodable bytes reached the engine (a traceback)."""
    (cli_env / "a.txt").write_text(MIETE, encoding="utf-8")
    run(capsys, "ingest", "a.txt")
    code, res = run(capsys, "query", "Kaution", "--mode", "bm25", "--filter", "heading_path=" + os.fsdecode(b"\xff"))
    assert code == 2 and "not valid text" in res["error"]


def test_store_filter_refuses_lone_surrogates():
    """#10.9: the root check, for every caller of the store."""
    from ingest.schema import StoreError
    from ingest.store.filters import build_filter

    for filters in [{"heading_path": "\udcff"}, {"source": ["a", "\ud800"]}]:
        with pytest.raises(StoreError, match="not valid text"):
            build_filter(filters)


def test_a_source_filter_names_one_file_even_when_its_spelling_is_ambiguous(capsys, cli_env):
    """#10.1 (second review): `source=d/name_\\xff.txt` matched both the literal-backslash file and the
    byte-0xff file; the existing file wins, as in delete."""
    folder = cli_env / "d"
    folder.mkdir()
    (folder / "name_\\xff.txt").write_text("Kaution anlegen.", encoding="utf-8")
    with open(os.fsencode(folder) + b"/name_\xff.txt", "wb") as fh:
        fh.write(b"Arbeitszeit acht Stunden.")
    run(capsys, "ingest", "d")
    code, res = run(capsys, "query", "Arbeitszeit Kaution", "--mode", "bm25", "--filter", "source=d/name_\\xff.txt")
    assert code == 0 and [p["text"] for p in res["passages"]] == ["Kaution anlegen."]
    os.remove(folder / "name_\\xff.txt")  # now only the spelled form of the byte-0xff file is meant
    code, res = run(capsys, "query", "Arbeitszeit Kaution", "--mode", "bm25", "--filter", "source=d/name_\\xff.txt")
    assert code == 0 and [p["text"] for p in res["passages"]] == ["Arbeitszeit acht Stunden."]


def test_delete_reports_cannot_be_forged_by_a_folder_name(capsys, cli_env):
    """#10.11 (second review): delete's header line showed the folder name raw."""
    folder = cli_env / "n\nOK: deleted 0 points"
    folder.mkdir()
    (folder / "u.txt").write_text("Urlaub verfällt.", encoding="utf-8")
    run(capsys, "ingest", str(folder))
    assert main(["delete", str(folder), "--dry-run"]) == 0
    out, _ = capsys.readouterr()
    assert not any(line.startswith("OK: deleted") for line in out.splitlines()), out


def test_a_closed_pipe_ends_quietly(tmp_path, cli_env):
    """#10.9 (third review): `german-rag ingest … | head -1` printed a BrokenPipeError traceback."""
    import subprocess
    import sys

    many = cli_env / "many"
    many.mkdir()
    for i in range(1500):
        (many / f"unsupported_file_with_a_long_name_{i}.xyz").write_text("x", encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(f"{sys.executable} -m pipelines.cli ingest many | head -1", shell=True, cwd=cli_env,
                          env=env, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stdout.startswith("collection ")


def test_errors_of_binary_text_files_name_the_stored_source(capsys, cli_env):
    """#10.11 (third review): the error of a binary `.txt` named the relative path, unlike every other."""
    (cli_env / "f").mkdir()
    (cli_env / "f" / "binaer.txt").write_bytes(b"\x00\x01\xff\xfe\x00" * 400)
    code, report = run(capsys, "ingest", "f")
    assert code == 1 and report["files"][0]["error"].startswith((cli_env / "f" / "binaer.txt").as_posix() + ":")
