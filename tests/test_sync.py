"""`german-rag sync`: a folder that changes between runs (add, change, rename, delete), roots that must not
be trusted (missing, empty, partly unreadable), the mass-delete guard, dry-run exactness, and sources outside
the roots left alone. Real CLI, real MiniLM model, real embedded Qdrant (edge engine by default)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from pipelines.build import build_embedder, build_ingest_runner, build_store
from pipelines.cli.main import main
from pipelines.config import load_settings
from pipelines.indexing.discover import discover
from pipelines.indexing.sync import Syncer, SyncOptions, is_gone, root_problem
from pipelines.sources import source_name

TEXTS = {
    "urlaub.txt": "Der Urlaub beträgt jährlich mindestens 24 Werktage. Als Werktage gelten alle Kalendertage, "
                  "die nicht Sonn- oder gesetzliche Feiertage sind. ",
    "miete.txt": "Der Vermieter muss die Kaution getrennt von seinem Vermögen bei einer Bank anlegen. ",
    "arbeit.md": "# Arbeitszeit\n\nDie werktägliche Arbeitszeit der Arbeitnehmer darf acht Stunden nicht "
                 "überschreiten. ",
    "kuendigung.txt": "Das Arbeitsverhältnis kann mit einer Frist von vier Wochen gekündigt werden. ",
}


def run(capsys, *args: str) -> tuple[int, dict]:
    code = main([*args, "--json"])
    out, _ = capsys.readouterr()
    return code, json.loads(out)


def stored(capsys) -> list[str]:
    """Every stored source (owner's view) by its file name, sorted: `delete --dry-run` of the working folder."""
    code, out = run(capsys, "delete", str(Path.cwd()), "--dry-run")
    return sorted(os.path.basename(s) for s in out.get("sources", [])) if code == 0 else []


def make_tree(root: Path, names=tuple(TEXTS)) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        (root / name).write_text(TEXTS[name] * 4, encoding="utf-8")


def by_name(report: dict) -> dict[str, dict]:
    return {os.path.basename(f["source"]): f for f in report["files"]}


def test_a_changing_folder_stays_in_step(capsys, cli_env):
    """Runs over one folder: add, then change + rename + delete + add in one run; counts balance."""
    docs = cli_env / "docs"
    make_tree(docs)
    code, first = run(capsys, "sync", str(docs))
    assert code == 0 and first["ingested"] == 4 and first["deleted"] == 0 and first["balanced"]

    (docs / "urlaub.txt").write_text(TEXTS["urlaub.txt"] * 5, encoding="utf-8")  # changed
    os.rename(docs / "miete.txt", docs / "mietrecht.txt")  # renamed: its bytes are stored under the old name
    (docs / "sub").mkdir()
    os.rename(docs / "arbeit.md", docs / "sub" / "arbeit.md")  # moved
    (docs / "kuendigung.txt").unlink()  # gone
    (docs / "neu.txt").write_text("Eine neue Datei über die Probezeit von sechs Monaten. " * 3, encoding="utf-8")
    code, second = run(capsys, "sync", str(docs))
    files = by_name(second)
    assert code == 0, second
    assert second["balanced"] and second["files_seen"] == len(second["files"])
    assert files["urlaub.txt"]["status"] == "ingested"
    for new, old in (("mietrecht.txt", "miete.txt"), ("arbeit.md", "arbeit.md")):
        moved = files[new] if new != old else next(f for f in second["files"] if f["source"].endswith("sub/arbeit.md"))
        assert moved["status"] == "ingested" and moved["renamed_from"].endswith(old)
        assert moved["chunks_reused"] == moved["chunks"] > 0  # every vector reused: no model call for it
    deleted = {os.path.relpath(s, docs) for s in second["deleted_sources"]}
    assert deleted == {"kuendigung.txt", "miete.txt", "arbeit.md"}
    assert {r["to"].rsplit("/", 1)[1] for r in second["renamed"]} == {"mietrecht.txt", "arbeit.md"}
    assert stored(capsys) == ["arbeit.md", "mietrecht.txt", "neu.txt", "urlaub.txt"]

    code, third = run(capsys, "sync", str(docs))  # nothing changed: nothing written, nothing deleted
    assert code == 0 and third["unchanged"] == 4 and third["deleted"] == 0 and third["points_written"] == 0

    # a search no longer finds the deleted file's text
    code, hits = run(capsys, "query", "Frist von vier Wochen gekündigt", "--mode", "bm25")
    assert all(not p["source"].endswith("kuendigung.txt") for p in hits["passages"])


def test_a_missing_or_empty_root_deletes_nothing_and_the_other_roots_go_on(capsys, cli_env):
    a, b = cli_env / "a", cli_env / "b"
    make_tree(a, ["urlaub.txt", "miete.txt"])
    make_tree(b, ["arbeit.md"])
    assert run(capsys, "sync", str(a), str(b))[0] == 0
    shutil.rmtree(a)  # an unmounted share: the mount point is gone
    (b / "neu.txt").write_text(TEXTS["kuendigung.txt"] * 3, encoding="utf-8")
    code, report = run(capsys, "sync", str(a), str(b))
    assert code == 1 and report["deleted"] == 0
    failed = [f for f in report["files"] if f["status"] == "failed"]
    assert len(failed) == 1 and "sync root is missing" in failed[0]["error"] and failed[0]["source"].endswith("/a")
    assert by_name(report)["neu.txt"]["status"] == "ingested"
    assert stored(capsys) == ["arbeit.md", "miete.txt", "neu.txt", "urlaub.txt"]

    a.mkdir()  # mounted again, but empty (a share that answers with nothing)
    code, report = run(capsys, "sync", str(a))
    assert code == 1 and report["deleted"] == 0 and "sync root is empty" in report["files"][0]["error"]
    assert "urlaub.txt" in stored(capsys)


def test_a_mass_delete_needs_the_flag(capsys, cli_env):
    docs = cli_env / "docs"
    make_tree(docs)
    assert run(capsys, "sync", str(docs))[0] == 0
    for name in ("urlaub.txt", "miete.txt", "arbeit.md"):  # 3 of 4 gone: 75 % > 50 %
        (docs / name).unlink()
    code, report = run(capsys, "sync", str(docs))
    assert code == 1 and report["deleted"] == 0 and report["failed"] == 3
    assert all("--allow-mass-delete" in f["error"] for f in report["files"] if f["status"] == "failed")
    assert len(stored(capsys)) == 4  # nothing deleted

    code, plan = run(capsys, "sync", str(docs), "--dry-run", "--allow-mass-delete")
    assert code == 0 and len(plan["delete"]) == 3 and plan["refused"] == []
    code, report = run(capsys, "sync", str(docs), "--allow-mass-delete")
    assert code == 0 and report["deleted"] == 3 and stored(capsys) == ["kuendigung.txt"]


def test_the_share_is_a_setting(capsys, cli_env, monkeypatch):
    docs = cli_env / "docs"
    make_tree(docs)
    assert run(capsys, "sync", str(docs))[0] == 0
    (docs / "urlaub.txt").unlink()  # 25 %
    monkeypatch.setenv("GERMAN_RAG_SYNC_MAX_DELETE_SHARE", "0.2")
    code, report = run(capsys, "sync", str(docs))
    assert code == 1 and report["deleted"] == 0
    monkeypatch.setenv("GERMAN_RAG_SYNC_MAX_DELETE_SHARE", "0.25")  # at the share: allowed (more than it is not)
    assert run(capsys, "sync", str(docs))[1]["deleted"] == 1


def test_dry_run_lists_exactly_what_a_sync_then_does(capsys, cli_env):
    docs = cli_env / "docs"
    make_tree(docs)
    assert run(capsys, "sync", str(docs))[0] == 0
    before = stored(capsys)
    (docs / "urlaub.txt").write_text("Geändert: dreißig Tage Urlaub. " * 4, encoding="utf-8")
    os.rename(docs / "miete.txt", docs / "kaution.txt")
    (docs / "arbeit.md").unlink()
    (docs / "neu.txt").write_text("Neu hinzugekommen: die Probezeit. " * 4, encoding="utf-8")

    code, plan = run(capsys, "sync", str(docs), "--dry-run")
    assert code == 0 and plan["dry_run"] is True
    name = os.path.basename
    assert [name(s) for s in plan["add"]] == ["neu.txt"]
    assert [name(s) for s in plan["replace"]] == ["urlaub.txt"]
    assert [name(s) for s in plan["unchanged"]] == ["kuendigung.txt"]
    assert [(name(r["from"]), name(r["to"])) for r in plan["rename"]] == [("miete.txt", "kaution.txt")]
    assert sorted(name(s) for s in plan["delete"]) == ["arbeit.md", "miete.txt"]
    assert stored(capsys) == before  # the dry run changed nothing

    code, report = run(capsys, "sync", str(docs))
    files = by_name(report)
    assert code == 0
    assert sorted(name(s) for s in report["deleted_sources"]) == sorted(name(s) for s in plan["delete"])
    assert [n for n, f in files.items() if f["status"] == "ingested" and not f["renamed_from"]] == \
        ["neu.txt", "urlaub.txt"]
    assert files["kaution.txt"]["renamed_from"].endswith("miete.txt")
    assert files["kuendigung.txt"]["status"] == "unchanged"


def test_sources_outside_the_roots_are_never_touched(capsys, cli_env):
    a, other = cli_env / "a", cli_env / "other"
    make_tree(a, ["urlaub.txt", "miete.txt"])
    make_tree(other, ["arbeit.md", "kuendigung.txt"])
    aa = cli_env / "a-b"  # a sibling whose name starts with the root's: not under it
    make_tree(aa, ["urlaub.txt"])
    assert run(capsys, "ingest", str(other), str(aa))[0] == 0
    assert run(capsys, "sync", str(a))[0] == 0
    (other / "arbeit.md").unlink()
    shutil.rmtree(aa)
    code, report = run(capsys, "sync", str(a))
    assert code == 0 and report["deleted"] == 0
    assert len(stored(capsys)) == 5  # other's gone file and a-b's stay until they are synced themselves


def test_a_tenant_sync_deletes_only_that_tenants_documents(capsys, cli_env):
    docs = cli_env / "docs"
    make_tree(docs, ["urlaub.txt", "miete.txt", "arbeit.md"])
    assert run(capsys, "ingest", str(docs), "--tenant", "acme")[0] == 0
    assert run(capsys, "ingest", str(docs), "--tenant", "globex")[0] == 0
    (docs / "miete.txt").unlink()
    code, report = run(capsys, "sync", str(docs), "--tenant", "acme")
    assert code == 0 and [os.path.basename(s) for s in report["deleted_sources"]] == ["miete.txt"]
    code, hits = run(capsys, "query", "Kaution getrennt anlegen", "--mode", "bm25", "--tenant", "globex")
    assert any(p["source"].endswith("miete.txt") for p in hits["passages"])  # globex's copy is globex's to sync
    code, hits = run(capsys, "query", "Kaution getrennt anlegen", "--mode", "bm25", "--tenant", "acme")
    assert not any(p["source"].endswith("miete.txt") for p in hits["passages"])


def test_a_folder_that_could_not_be_listed_deletes_nothing_under_it(cli_env):
    """Files in an unreadable subfolder were not seen, so they are not 'gone' (as root, chmod cannot hide a
    folder: the walk's error is given as discover reports it)."""
    docs = cli_env / "docs"
    make_tree(docs)
    (docs / "sub").mkdir()
    (docs / "sub" / "tief.txt").write_text(TEXTS["miete.txt"] * 3, encoding="utf-8")
    settings = load_settings(None)
    store = build_store(settings)
    try:
        runner = build_ingest_runner(settings, build_embedder(settings), store, progress=False)
        syncer = Syncer(runner, [docs], SyncOptions(allow_mass_delete=True))
        assert syncer.sync().count("ingested") == 5
        shutil.rmtree(docs / "sub")
        (docs / "miete.txt").unlink()
        candidates, _ = discover([docs])
        blind = [(source_name(docs / "sub"), "cannot list folder: Permission denied")]
        facts = syncer._facts(candidates, blind, syncer.roots, scope=None)
        assert sorted(os.path.basename(s) for s in facts.vanished) == ["miete.txt"]
    finally:
        store.close()


def test_apply_handles_a_rename_and_a_removed_folder(cli_env):
    """The watcher's entry point: changed and removed paths; a rename in one call reuses the vectors."""
    docs = cli_env / "docs"
    make_tree(docs)
    (docs / "sub").mkdir()
    for i in range(3):
        (docs / "sub" / f"teil{i}.txt").write_text(f"Teil {i}: " + TEXTS["urlaub.txt"] * 2, encoding="utf-8")
    settings = load_settings(None)
    store = build_store(settings)
    try:
        runner = build_ingest_runner(settings, build_embedder(settings), store, progress=False)
        syncer = Syncer(runner, [docs])
        assert syncer.sync().count("ingested") == 7
        os.rename(docs / "miete.txt", docs / "kaution.txt")
        report = syncer.apply([docs / "kaution.txt"], [docs / "miete.txt"])
        files = {os.path.basename(f.source): f for f in report.files}
        assert files["kaution.txt"].renamed_from.endswith("miete.txt")
        assert files["kaution.txt"].chunks_reused == files["kaution.txt"].chunks
        assert files["miete.txt"].status == "deleted" and report.balanced
        shutil.rmtree(docs / "sub")
        report = syncer.apply([], [docs / "sub"])
        assert sorted(os.path.basename(f.source) for f in report.files if f.status == "deleted") == \
            ["teil0.txt", "teil1.txt", "teil2.txt"]
        report = syncer.apply([], [cli_env / "elsewhere.txt", docs / "urlaub.txt"])  # not gone: kept
        assert report.files == []
        assert sorted(os.path.basename(s) for s in store.sources()) == \
            ["arbeit.md", "kaution.txt", "kuendigung.txt", "urlaub.txt"]
    finally:
        store.close()


def test_root_checks_and_gone(tmp_path):
    assert "missing" in root_problem(tmp_path / "nope")
    (tmp_path / "f").write_text("x")
    assert "missing or not a folder" in root_problem(tmp_path / "f")
    (tmp_path / "leer").mkdir()
    (tmp_path / "leer" / ".hidden").write_text("x")
    assert "empty" in root_problem(tmp_path / "leer")
    assert root_problem(tmp_path) is None
    assert is_gone(str(tmp_path / "nope")) and not is_gone(str(tmp_path / "f"))
    assert is_gone(str(tmp_path / "f" / "below"))  # ENOTDIR: a file where a folder was


@pytest.mark.parametrize("share", ["0", "1.5"])
def test_a_bad_share_is_a_configuration_error(capsys, cli_env, monkeypatch, share):
    monkeypatch.setenv("GERMAN_RAG_SYNC_MAX_DELETE_SHARE", share)
    assert main(["sync", str(cli_env)]) == 2
    assert "sync_max_delete_share" in capsys.readouterr().err


def test_an_owner_sync_moves_a_file_between_tenants_when_its_sidecar_does(capsys, cli_env):
    """A sidecar that moves a file from acme to globex: after the owner's sync acme no longer reads it (its old
    copy is deleted once globex's is stored); the dry run lists that copy first."""
    docs = cli_env / "docs"
    make_tree(docs, ["miete.txt", "urlaub.txt"])
    side = docs / "miete.txt.meta.json"
    side.write_text(json.dumps({"tenant": "acme"}), encoding="utf-8")
    assert run(capsys, "sync", str(docs))[0] == 0

    def tenants_reading() -> set[str]:
        found = set()
        for tenant in ("acme", "globex", "default"):
            code, hits = run(capsys, "query", "Kaution getrennt anlegen", "--mode", "bm25", "--tenant", tenant)
            assert code == 0
            if any(p["source"].endswith("miete.txt") for p in hits["passages"]):
                found.add(tenant)
        return found

    assert tenants_reading() == {"acme"}
    side.write_text(json.dumps({"tenant": "globex"}), encoding="utf-8")
    code, plan = run(capsys, "sync", str(docs), "--dry-run")
    assert code == 0 and [(os.path.basename(c["source"]), c["tenant"]) for c in plan["other_tenants"]] == \
        [("miete.txt", "acme")]
    code, report = run(capsys, "sync", str(docs))
    miete = by_name(report)["miete.txt"]
    assert code == 0 and miete["status"] == "ingested" and miete["points_deleted"] > 0
    assert tenants_reading() == {"globex"}
    side.unlink()  # no sidecar: the run's tenant (the owner writes `default`)
    assert run(capsys, "sync", str(docs))[0] == 0
    assert tenants_reading() == {"default"}
    assert run(capsys, "sync", str(docs), "--dry-run")[1]["other_tenants"] == []
