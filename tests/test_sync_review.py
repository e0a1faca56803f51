"""A hostile review of `german-rag sync`: the ways a reconcile could delete a document whose file still exists,
delete under a root it was told not to trust, hang on a file it should never open, or tell in a dry run
something else than the run then does. Real files, real CLI or Syncer, real MiniLM, real embedded store."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

from pipelines.build import build_embedder, build_ingest_runner, build_store
from pipelines.config import load_settings
from pipelines.indexing.discover import discover
from pipelines.indexing.sync import Syncer, SyncOptions, is_gone
from pipelines.sources import escape_name
from tests.test_sync import TEXTS, by_name, make_tree, run, stored


def open_syncer(roots: list[Path], options: SyncOptions | None = None):
    settings = load_settings(None)
    store = build_store(settings)
    runner = build_ingest_runner(settings, build_embedder(settings), store, progress=False)
    return Syncer(runner, roots, options), store


def finishes(fn, fifo: Path) -> bool:
    """Whether `fn()` returns without opening `fifo` for reading: a reader of a FIFO without a writer blocks
    forever, so a hung `fn` is released (by opening the FIFO for writing) and reported as False."""
    worker = threading.Thread(target=fn, daemon=True)
    worker.start()
    worker.join(60)  # a hang guard, not a speed target: the work itself takes a second or two
    if not worker.is_alive():
        return True
    os.close(os.open(fifo, os.O_WRONLY))
    worker.join()
    return False


def test_a_failed_root_inside_another_root_keeps_its_documents(capsys, cli_env):
    """`sync docs docs/sub`, docs/sub unmounted (an empty mount point): its root fails, so nothing stored under
    it may be deleted, also not by the walk of docs around it (2 of 6 is under the mass-delete share)."""
    docs = cli_env / "docs"
    make_tree(docs)
    make_tree(docs / "sub", ["urlaub.txt", "miete.txt"])
    assert run(capsys, "sync", "docs", "docs/sub")[0] == 0
    for f in (docs / "sub").iterdir():
        f.unlink()
    code, report = run(capsys, "sync", "docs", "docs/sub")
    assert code == 1 and report["deleted"] == 0, report["deleted_sources"]
    assert "sync root is empty" in report["files"][0]["error"]
    assert len(stored(capsys)) == 6
    code, plan = run(capsys, "sync", "docs", "docs/sub", "--dry-run")
    assert plan["delete"] == [] and plan["refused"] == []


def test_a_file_replaced_by_a_folder_of_its_name_is_gone(capsys, cli_env):
    """`miete.txt` is a folder now: the document of the file named so is gone (lstat succeeding on a folder
    must not keep it searchable forever); the file inside the folder is new."""
    docs = cli_env / "docs"
    make_tree(docs)
    assert run(capsys, "sync", "docs")[0] == 0
    (docs / "miete.txt").unlink()
    (docs / "miete.txt").mkdir()
    (docs / "miete.txt" / "neu.txt").write_text("Neu: die Probezeit dauert sechs Monate. " * 3, encoding="utf-8")
    code, report = run(capsys, "sync", "docs")
    assert code == 0 and [os.path.relpath(s, docs) for s in report["deleted_sources"]] == ["miete.txt"]
    assert stored(capsys) == ["arbeit.md", "kuendigung.txt", "neu.txt", "urlaub.txt"]
    assert is_gone(str(docs / "miete.txt")) and not is_gone(str(docs / "miete.txt" / "neu.txt"))


def test_a_file_back_before_the_deletes_is_not_deleted(cli_env):
    """The ingest of a large share takes hours: a file that was missing at the walk and is back when its turn to
    be deleted comes (a share that hiccuped, an editor's save-by-rename) keeps its document."""
    docs = cli_env / "docs"
    make_tree(docs)
    (docs / "zz.txt").write_text("Zuletzt: " + TEXTS["miete.txt"] * 3, encoding="utf-8")
    syncer, store = open_syncer([docs])
    try:
        assert syncer.sync().count("ingested") == 5
        os.rename(docs / "kuendigung.txt", cli_env / "kuendigung.bak")
        (docs / "zz.txt").write_text("Geändert: " + TEXTS["miete.txt"] * 3, encoding="utf-8")

        def back(result) -> None:  # the file returns while the changed zz.txt is being ingested
            if result.source.endswith("zz.txt"):
                os.rename(cli_env / "kuendigung.bak", docs / "kuendigung.txt")

        report = syncer.sync(on_file=back)
        assert report.count("deleted") == 0
        assert "kuendigung.txt" in {os.path.basename(s) for s in store.sources()}
    finally:
        store.close()


def test_a_fifo_in_a_root_is_never_opened(cli_env):
    """A FIFO named like a document blocks its reader until someone writes: the ingest refuses it before opening
    it; the dry run and the rename search (which hashes new files when a source vanished) must do so too."""
    docs = cli_env / "docs"
    make_tree(docs)
    syncer, store = open_syncer([docs])
    try:
        assert syncer.sync().count("ingested") == 4
        (docs / "miete.txt").unlink()  # a vanished source: new files are hashed to find a rename
        os.mkfifo(docs / "pipe.txt")
        plans, reports = [], []
        assert finishes(lambda: plans.append(syncer.plan()), docs / "pipe.txt"), "the dry run opened the FIFO"
        assert [f["source"] for f in plans[0].failed] == [str(docs / "pipe.txt")]
        assert plans[0].add == []
        assert finishes(lambda: reports.append(syncer.sync()), docs / "pipe.txt"), "the sync opened the FIFO"
        assert reports[0].count("failed") == 1 and reports[0].count("deleted") == 1
    finally:
        store.close()


def test_dry_run_and_run_agree_on_skipped_files_and_copies(capsys, cli_env):
    """An unsupported file is skipped by the run, so the plan must not list it to add; a rename to an unsupported
    name is no rename (the document is gone: deleted, counted in the share); of two copies of a vanished file one
    is the rename, the other a new document (both in the plan and in the report)."""
    docs = cli_env / "docs"
    make_tree(docs)
    (docs / "mehr.txt").write_text("Noch eine Datei über Werktage und Feiertage. " * 3, encoding="utf-8")
    assert run(capsys, "sync", "docs")[0] == 0
    (docs / "bild.gif").write_bytes(b"GIF89a kein Text")
    os.rename(docs / "miete.txt", docs / "miete.bak")
    shutil.copy(docs / "urlaub.txt", docs / "urlaub-kopie.txt")
    os.rename(docs / "urlaub.txt", docs / "ferien.txt")  # the rename: the first new copy by name

    code, plan = run(capsys, "sync", "docs", "--dry-run")
    name = os.path.basename
    assert code == 0
    assert [name(s) for s in plan["add"]] == ["urlaub-kopie.txt"]
    assert sorted(name(s) for s in plan["skipped"]) == ["bild.gif", "miete.bak"]
    assert [(name(r["from"]), name(r["to"])) for r in plan["rename"]] == [("urlaub.txt", "ferien.txt")]
    assert sorted(name(s) for s in plan["delete"]) == ["miete.txt", "urlaub.txt"]

    code, report = run(capsys, "sync", "docs")
    files = by_name(report)
    assert code == 0 and report["skipped"] == 2
    assert [(name(r["from"]), name(r["to"])) for r in report["renamed"]] == [("urlaub.txt", "ferien.txt")]
    assert files["urlaub-kopie.txt"]["status"] == "ingested" and files["urlaub-kopie.txt"]["renamed_from"] is None
    assert sorted(name(s) for s in report["deleted_sources"]) == sorted(name(s) for s in plan["delete"])


def test_an_unlisted_folder_below_a_symlinked_root_hides_its_files(cli_env):
    """discover names an unlistable folder as walked (through the root's symlink) and escaped (a non-UTF-8 name as
    `\\xNN`); stored sources are real paths: the folder must still hide the files stored under it."""
    real = cli_env / "real"
    make_tree(real, ["urlaub.txt", "miete.txt", "arbeit.md"])
    sub = os.fsdecode(b"unter\xe4")  # Latin-1 `unterä`: not UTF-8
    (real / sub).mkdir()
    (real / sub / "tief.txt").write_text(TEXTS["kuendigung.txt"] * 3, encoding="utf-8")
    link = cli_env / "link"
    os.symlink(real, link)
    syncer, store = open_syncer([link], SyncOptions(allow_mass_delete=True))
    try:
        assert syncer.sync().count("ingested") == 4
        shutil.rmtree(real / sub)
        candidates, _ = discover([link])
        blind = [(escape_name(os.path.abspath(link / sub)), "cannot list folder: Permission denied")]
        facts = syncer._facts(candidates, blind, syncer.roots, scope=None)
        assert facts.vanished == {}
    finally:
        store.close()


def test_a_store_gone_during_the_deletes_is_asked_once_not_once_per_source(tiny_embedder, tmp_path, caplog):
    """Each store call waits out its retries (15 s by default): after the first deletion that found the store
    gone, the other vanished sources are reported "not deleted" without asking again (a thousand vanished files
    would otherwise hold the run for hours before its exit 3)."""
    from ingest.chunk import ChunkOptions, TokenChunker
    from ingest.store.base import StoreOptions
    from ingest.store.qdrant import QdrantStore
    from pipelines.indexing.run import IngestRunner
    from tests.standin.qdrant_rest import FaultProxy, StandinQdrant

    docs = tmp_path / "docs"
    make_tree(docs)
    (docs / "mehr.txt").write_text("Noch eine Datei über Werktage und Feiertage. " * 3, encoding="utf-8")
    with StandinQdrant() as server:
        proxy = FaultProxy(server.port)
        proxy.start()
        store = QdrantStore(StoreOptions(collection="sync", url=proxy.url, timeout=5, retries=1, retry_backoff_s=0.01))
        runner = IngestRunner(tiny_embedder, TokenChunker(tiny_embedder, ChunkOptions(48, 8)), store, "tiny",
                              progress=False)
        syncer = Syncer(runner, [docs], SyncOptions(allow_mass_delete=True))
        try:
            assert syncer.sync().count("ingested") == 5
            for name in ("urlaub.txt", "miete.txt", "arbeit.md"):
                (docs / name).unlink()
            caplog.clear()
            report = syncer.sync(on_file=lambda result: proxy.stop())  # gone once the walk and triage are done
        finally:
            proxy.stop()
            store.close()
    retried = [r for r in caplog.records if r.getMessage() == "qdrant call failed, retrying"]
    assert report.outage and report.count("deleted") == 0 and report.count("failed") == 3
    assert len(retried) == 1, [r.__dict__.get("op") for r in retried]


def test_apply_skips_an_unsupported_file_as_sync_does(cli_env):
    """The watcher hands every changed file to apply: an image saved in a watched folder is skipped there as in a
    sync of the folder, not a failure logged and counted on each save (nobody named it on a command line)."""
    docs = cli_env / "docs"
    make_tree(docs, ["miete.txt"])
    (docs / "bild.gif").write_bytes(b"GIF89a kein Text")
    syncer, store = open_syncer([docs])
    try:
        report = syncer.apply([docs / "bild.gif"], [])
        assert [(f.status, f.error) for f in report.files] == \
            [("skipped", f"{docs / 'bild.gif'}: unsupported file type '.gif'")]
        assert syncer.sync().count("skipped") == 1
    finally:
        store.close()
