"""Document fields in the payload: file facts, front matter, sidecar metadata (.meta.json / .meta.yaml) and
`--meta`, on every chunk; a changed sidecar changes the payload with every vector reused. Real CLI, MiniLM,
embedded Qdrant."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ingest.schema import P
from pipelines.build import build_store
from pipelines.cli.main import main
from pipelines.config import load_settings

TEXT = "Der Urlaub beträgt jährlich mindestens 24 Werktage. Als Werktage gelten alle Kalendertage. " * 12


def run(capsys, *args: str) -> tuple[int, dict]:
    code = main([*args, "--json"])
    out, _ = capsys.readouterr()
    return code, json.loads(out)


def payloads() -> dict[str, list[dict]]:
    """File name -> the payloads of its points, read back from the store."""
    store = build_store(load_settings(None))
    try:
        out: dict[str, list[dict]] = {}
        for _, payload, _ in store.scan([P.SOURCE, P.FILE_TYPE, P.FILE_SIZE, P.MODIFIED, P.META, P.META_HASH,
                                         P.TITLE, P.PAGES, P.DOC_ID]):
            out.setdefault(os.path.basename(payload[P.SOURCE]), []).append(payload)
        return out
    finally:
        store.close()


def one(points: list[dict], key: str):
    """A document field: the same on every point of the document."""
    values = {json.dumps(p.get(key), sort_keys=True) for p in points}
    assert len(values) == 1, f"{key} differs between the chunks of one document: {values}"
    return json.loads(values.pop())


def test_file_facts_front_matter_sidecars_and_meta_flag(capsys, cli_env):
    docs = cli_env / "docs"
    docs.mkdir()
    (docs / "urlaub.txt").write_text(TEXT, encoding="utf-8")
    (docs / "urlaub.txt.meta.json").write_text(json.dumps({"meta": {"projekt": "Umzug", "stufe": 2}}), "utf-8")
    (docs / "notiz.md").write_text("---\ntitle: Notiz zur Kaution\nprojekt: Alt\nseiten: [1, 2]\n---\n\n# Kaution\n\n"
                                   + TEXT, encoding="utf-8")
    (docs / "bericht.txt").write_text(TEXT.replace("Urlaub", "Bericht"), encoding="utf-8")
    (docs / "bericht.txt.meta.yaml").write_text("meta:\n  frist: 2024-06-30\n  geprueft: true\n", "utf-8")
    os.utime(docs / "urlaub.txt", ns=(1_700_000_000 * 10**9, 1_700_000_000 * 10**9))
    code, report = run(capsys, "ingest", str(docs), "--meta", "quelle=Freigabe", "--meta", "projekt=Standard")
    assert code == 0 and report["ingested"] == 3 and report["files_seen"] == 3  # sidecars are not documents
    stored = payloads()

    urlaub = stored["urlaub.txt"]
    assert len(urlaub) > 1
    assert one(urlaub, P.FILE_TYPE) == "txt" and one(urlaub, P.FILE_SIZE) == len(TEXT.encode())
    assert one(urlaub, P.MODIFIED) == "2023-11-14T22:13:20Z"
    assert one(urlaub, P.META) == {"quelle": "Freigabe", "projekt": "Umzug", "stufe": 2}  # sidecar over --meta
    assert len(one(urlaub, P.META_HASH)) == 32

    notiz = stored["notiz.md"]  # front matter < --meta; a list value is not a field
    assert one(notiz, P.META) == {"title": "Notiz zur Kaution", "projekt": "Standard", "quelle": "Freigabe"}
    assert one(stored["bericht.txt"], P.META) == {"frist": "2024-06-30", "geprueft": True, "quelle": "Freigabe",
                                                  "projekt": "Standard"}


def test_a_changed_sidecar_changes_the_payload_and_reuses_every_vector(capsys, cli_env):
    docs = cli_env / "docs"
    docs.mkdir()
    (docs / "urlaub.txt").write_text(TEXT, encoding="utf-8")
    side = docs / "urlaub.txt.meta.json"
    side.write_text(json.dumps({"meta": {"projekt": "A"}}), "utf-8")
    assert run(capsys, "sync", str(docs))[0] == 0
    first = payloads()["urlaub.txt"]

    side.write_text(json.dumps({"meta": {"projekt": "B"}}), "utf-8")
    code, report = run(capsys, "sync", str(docs))
    f = report["files"][0]
    assert code == 0 and f["status"] == "ingested" and f["chunks_reused"] == f["chunks"] == len(first)
    after = payloads()["urlaub.txt"]
    assert len(after) == len(first) and one(after, P.META) == {"projekt": "B"}
    assert one(after, P.DOC_ID) != one(first, P.DOC_ID)  # the old version's points are gone

    side.unlink()  # no sidecar: no user metadata, back to the plain file's id
    code, report = run(capsys, "sync", str(docs))
    assert code == 0 and report["files"][0]["chunks_reused"] == len(first)
    assert P.META not in payloads()["urlaub.txt"][0]
    assert run(capsys, "sync", str(docs))[1]["unchanged"] == 1


def test_a_bad_sidecar_fails_its_file_only(capsys, cli_env):
    docs = cli_env / "docs"
    docs.mkdir()
    bad = {
        "a.txt": ("a.txt.meta.json", json.dumps({"group": ["hr"]})),  # a mistyped key is not metadata
        "b.txt": ("b.txt.meta.json", json.dumps({"meta": {"liste": [1, 2]}})),
        "c.txt": ("c.txt.meta.json", json.dumps({"meta": {"mit punkt.": "x"}})),
        "d.txt": ("d.txt.meta.yaml", "meta: [unclosed"),
        "e.txt": ("e.txt.meta.json", json.dumps({"meta": "kein Objekt"})),
    }
    for name, (side, content) in bad.items():
        (docs / name).write_text(TEXT, encoding="utf-8")
        (docs / side).write_text(content, encoding="utf-8")
    (docs / "f.txt").write_text(TEXT, encoding="utf-8")
    (docs / "f.txt.meta.json").write_text("{}", encoding="utf-8")
    (docs / "f.txt.meta.yaml").write_text("{}", encoding="utf-8")  # two sidecars: which one?
    (docs / "gut.txt").write_text(TEXT, encoding="utf-8")
    code, report = run(capsys, "ingest", str(docs))
    assert code == 1
    status = {os.path.basename(f["source"]): f for f in report["files"]}
    assert status["gut.txt"]["status"] == "ingested"
    errors = {n: status[n]["error"] for n in "abcdef" for n in [f"{n}.txt"]}
    assert all(status[n]["status"] == "failed" for n in errors)
    assert "unknown key(s) ['group']" in errors["a.txt"] and "under 'meta'" in errors["a.txt"]
    assert "liste" in errors["b.txt"] and "list" in errors["b.txt"]
    assert "mit punkt." in errors["c.txt"]
    assert "not valid YAML" in errors["d.txt"]
    assert "'meta' must be a mapping" in errors["e.txt"]
    assert "2 sidecars" in errors["f.txt"]


def test_bad_meta_flags_are_usage_errors(capsys, cli_env):
    (cli_env / "a.txt").write_text(TEXT, encoding="utf-8")
    for flag in ("ohne-gleich", "=wert", "mit punkt.=x"):
        assert main(["ingest", str(cli_env / "a.txt"), "--meta", flag]) == 2
        assert "--meta" in capsys.readouterr().err
    assert not Path(cli_env / "qdrant").exists() or payloads() == {}


def test_verify_reads_sidecars_and_meta_like_ingest(capsys, cli_env):
    docs = cli_env / "docs"
    docs.mkdir()
    (docs / "urlaub.txt").write_text(TEXT, encoding="utf-8")
    side = docs / "urlaub.txt.meta.yaml"
    side.write_text("groups: [hr]\nmeta:\n  projekt: A\n", "utf-8")
    assert run(capsys, "ingest", str(docs))[0] == 0
    code, report = run(capsys, "verify", str(docs))
    assert code == 0 and report["ok"], report
    side.write_text("groups: [hr]\nmeta:\n  projekt: B\n", "utf-8")
    code, report = run(capsys, "verify", str(docs))
    assert code == 1 and [p["kind"] for p in report["problems"]] == ["outdated"]


def test_parsed_fields_are_stored_and_filter_with_ranges(capsys, cli_env, fixtures):
    """The parser's title, date and language reach the payload and answer --filter, ranges included."""
    laws = fixtures / "gesetze"
    assert run(capsys, "ingest", str(laws))[0] == 0
    stored: dict[str, dict] = {}
    store = build_store(load_settings(None))
    try:
        for _, payload, _ in store.scan([P.SOURCE, P.TITLE, P.DATE, P.DATE_PHRASE, P.LANGUAGE, P.FILE_TYPE]):
            stored[payload[P.SOURCE].split("/")[-2]] = payload
    finally:
        store.close()
    assert stored["arbzg"][P.TITLE] == "Arbeitszeitgesetz" and stored["arbzg"][P.DATE] == "2020-12-22"
    assert stored["burlg"][P.DATE] == "2013-04-20" and "20.4.2013" in stored["burlg"][P.DATE_PHRASE]
    assert {p[P.LANGUAGE] for p in stored.values()} == {"de"} and {p[P.FILE_TYPE] for p in stored.values()} == {"md"}

    def laws_found(*filters: str) -> set[str]:
        args = [x for f in filters for x in ("--filter", f)]
        code, out = run(capsys, "query", "Arbeitnehmer Urlaub Arbeitszeit Gesetz", "--mode", "bm25", "--top-k", "50",
                        *args)
        assert code == 0, out
        return {p["source"].split("/")[-2] for p in out["passages"]}

    assert {"arbzg", "burlg"} <= laws_found()
    assert "arbzg" in laws_found("date>=2020-01-01") <= {"arbzg", "gg", "kschg"}
    assert laws_found("date<2014-01-01") == {"burlg"}
    assert "arbzg" in laws_found("date>2017-07-17", "date<=2020-12-22") <= {"arbzg", "gg"}
    assert laws_found("title=Arbeitszeitgesetz") == {"arbzg"}
    code, out = run(capsys, "query", "werktägliche Arbeitszeit", "--mode", "bm25", "--filter",
                    "title=Arbeitszeitgesetz")
    assert code == 0
    doc = out["passages"][0]["document"]  # what a generator cites: the document's fields with each passage
    assert doc["title"] == "Arbeitszeitgesetz" and doc["date"] == "2020-12-22" and doc["file_type"] == "md"
    assert main(["query", "werktägliche Arbeitszeit", "--mode", "bm25", "--top-k", "1"]) == 0
    assert capsys.readouterr().out.startswith("1. bm25=")
    assert laws_found("date>=2030-01-01") == set()


def test_a_collection_from_before_document_fields_gets_them_without_a_model_call(capsys, cli_env, monkeypatch):
    """Upgrading: a collection written under an older FIELDS_VERSION (the version before this one wrote no
    document fields) is re-parsed once, every vector reused; the next run finds it unchanged."""
    import pipelines.indexing.run as run_module

    docs = cli_env / "docs"
    docs.mkdir()
    (docs / "urlaub.txt").write_text(TEXT, encoding="utf-8")
    current = run_module.FIELDS_VERSION
    monkeypatch.setattr(run_module, "FIELDS_VERSION", "fields-v0")
    assert run(capsys, "ingest", str(docs))[0] == 0
    monkeypatch.setattr(run_module, "FIELDS_VERSION", current)
    code, report = run(capsys, "ingest", str(docs))
    f = report["files"][0]
    assert code == 0 and f["status"] == "ingested" and f["chunks_reused"] == f["chunks"] > 0
    assert one(payloads()["urlaub.txt"], P.FILE_TYPE) == "txt"
    assert run(capsys, "ingest", str(docs))[1]["unchanged"] == 1
