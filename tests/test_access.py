"""#12: tenants and groups on every point, enforced by the store for every read, count and delete (CLI side and
the store itself, on both embedded engines). Real parsing, the real MiniLM model, real engines."""

from __future__ import annotations

import json
import os

import pytest

from ingest.schema import DEFAULT_ACCESS, Access, AccessError, P
from ingest.store.access import OWNER, Principal, access_spec, restrict
from ingest.store.base import StoreOptions
from ingest.store.edge import EdgeStore
from ingest.store.filters import build_filter
from ingest.store.qdrant import QdrantStore
from pipelines.cli.main import main
from tests.test_hostile_sources import run
from tests.test_store_engines import DIM, make_chunks, unit_vector

HR = "Personalakte: Die Kündigungsfrist für Frau Meier beträgt drei Monate zum Quartalsende.\n"
SALES = "Vertrieb: Der Rabatt für Großkunden beträgt zwölf Prozent auf den Listenpreis.\n"
PUBLIC = "Hausordnung: Die Kantine ist montags bis freitags von elf bis vierzehn Uhr geöffnet.\n"


def names(result: dict) -> set[str]:
    return {os.path.basename(p["source"]) for p in result["passages"]}


def write(folder, name: str, text: str):
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text * 3, encoding="utf-8")
    return folder / name


def test_cli_tenants_and_groups_see_only_their_documents(capsys, cli_env):
    """#12.1/#12.4: --tenant/--groups at ingest set the access fields; reads as a tenant see only its points,
    groups narrow further; the owner (no --tenant) sees everything; another tenant's delete deletes nothing."""
    hr = write(cli_env / "a", "hr.txt", HR)
    public = write(cli_env / "a", "public.txt", PUBLIC)
    sales = write(cli_env / "b", "sales.txt", SALES)
    assert run(capsys, "ingest", str(hr), "--tenant", "acme", "--groups", "hr")[0] == 0
    assert run(capsys, "ingest", str(public), "--tenant", "acme")[0] == 0
    assert run(capsys, "ingest", str(sales), "--tenant", "globex")[0] == 0

    def seen(*flags: str) -> set[str]:
        code, res = run(capsys, "query", "Kündigungsfrist Rabatt Kantine", "--top-k", "10", *flags)
        assert code == 0
        return names(res)

    assert seen() == {"hr.txt", "public.txt", "sales.txt"}
    assert seen("--tenant", "acme") == {"public.txt"}
    assert seen("--tenant", "acme", "--groups", "hr") == {"hr.txt", "public.txt"}
    assert seen("--tenant", "acme", "--groups", "sales,marketing") == {"public.txt"}
    assert seen("--tenant", "globex", "--groups", "hr") == {"sales.txt"}
    assert seen("--tenant", "initech") == set()
    for mode in ("bm25", "dense"):
        assert seen("--tenant", "globex", "--mode", mode) == {"sales.txt"}
    code, res = run(capsys, "query", "Kündigungsfrist", "--tenant", "globex", "--filter", "tenant=acme")
    assert code == 0 and res["passages"] == []  # a filter naming another tenant narrows, never widens

    code, res = run(capsys, "delete", str(hr), "--tenant", "globex")
    assert res["points_deleted"] == 0 and seen("--tenant", "acme", "--groups", "hr") == {"hr.txt", "public.txt"}


def test_changing_groups_updates_the_payload_without_reembedding(capsys, cli_env):
    """#12.1: the same file re-ingested with other groups is unchanged content: its points get the new access
    fields, nothing is embedded or written again."""
    hr = write(cli_env / "a", "hr.txt", HR)
    code, first = run(capsys, "ingest", str(hr), "--tenant", "acme", "--groups", "hr")
    assert code == 0 and first["ingested"] == 1
    code, again = run(capsys, "ingest", str(hr), "--tenant", "acme", "--groups", "hr,legal")
    assert code == 0 and again["unchanged"] == 1 and again["points_written"] == 0
    assert again["points_updated"] == first["points_written"]
    code, res = run(capsys, "query", "Kündigungsfrist", "--tenant", "acme", "--groups", "legal")
    assert names(res) == {"hr.txt"}


def test_two_tenants_ingesting_one_path_keep_two_documents(capsys, cli_env):
    """#12: the tenant is part of the ids: tenant B's ingest of a path A also ingested neither overwrites nor
    deletes A's points, and each sees its own."""
    doc = write(cli_env / "shared", "handbuch.txt", PUBLIC)
    assert run(capsys, "ingest", str(doc), "--tenant", "acme")[1]["ingested"] == 1
    assert run(capsys, "ingest", str(doc), "--tenant", "globex")[1]["ingested"] == 1
    assert run(capsys, "ingest", str(doc))[1]["ingested"] == 1  # the owner writes tenant "default"
    for tenant in ("acme", "globex", "default"):
        _code, res = run(capsys, "query", "Kantine", "--tenant", tenant)
        assert names(res) == {"handbuch.txt"}
        assert {p["doc_id"] for p in res["passages"]} and all(p["text"] for p in res["passages"])
    _code, res = run(capsys, "query", "Kantine", "--top-k", "20")
    assert len({p["doc_id"] for p in res["passages"]}) == 3


def test_bad_tenant_or_group_is_a_usage_error(capsys, cli_env):
    code = main(["query", "x", "--tenant", "\x00", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 2 and "tenant" in out["error"]
    with pytest.raises(AccessError):
        Access("acme", ("",))


@pytest.fixture(params=["edge", "local"])
def engine(request, tmp_path):
    options = StoreOptions(collection="t", path=str(tmp_path / request.param))
    store = EdgeStore(options) if request.param == "edge" else QdrantStore(options)
    store.ensure_collection("modell", DIM)
    yield store
    store.close()


def put(store, source: str, doc_id: str, access: Access | None, text: str) -> None:
    chunks = make_chunks(source, doc_id, [text])
    if access is None:  # a point from before access fields existed
        store.upsert_chunks(chunks, [unit_vector(text)])
        for key in (P.TENANT, P.GROUPS):
            store._set_payload(build_filter({P.DOC_ID: doc_id}), {key: None})  # as an old collection has them
        return
    store.upsert_chunks(chunks, [unit_vector(text)], access=access)


def test_points_without_access_fields_are_the_default_tenants(engine):
    """#12.1 migration: points written before tenants existed (no tenant, no groups) belong to tenant `default`
    and every user of it; other tenants never see them."""
    put(engine, "alt.txt", "d0", None, "alter Text")
    put(engine, "neu.txt", "d1", Access("acme"), "neuer Text")
    seen = {p: {h.payload["source"] for h in engine.scoped(p).search_dense(unit_vector("Text"), 10)}
            for p in (Principal("default"), Principal("acme"), OWNER, Principal("default", frozenset({"x"})))}
    assert seen[Principal("default")] == {"alt.txt"} == seen[Principal("default", frozenset({"x"}))]
    assert seen[Principal("acme")] == {"neu.txt"} and seen[OWNER] == {"alt.txt", "neu.txt"}


def test_every_read_and_delete_of_a_scoped_store_is_narrowed(engine):
    """#12.3: search (dense, bm25, hybrid), count, sources, scan, fetch_chunks, doc_states and deletes of a view
    see only the principal's points; the view shares the connection, closing it leaves the store open."""
    put(engine, "a.txt", "da", Access("acme", ("hr",)), "Kündigung Frist")
    put(engine, "b.txt", "db", Access("globex"), "Kündigung Rabatt")
    view = engine.scoped(Principal("globex"))
    dense = unit_vector("Kündigung")
    assert {h.payload["source"] for h in view.search_dense(dense, 10)} == {"b.txt"}
    assert {h.payload["source"] for h in view.search_hybrid(dense, ([1], [1.0]), 10)} <= {"b.txt"}
    assert view.count() == 1 and set(view.sources()) == {"b.txt"}
    assert [p["source"] for _, p, _ in view.scan([P.SOURCE])] == ["b.txt"]
    assert view.fetch_chunks("da", [0]) == [] and view.doc_state("a.txt").present == {}
    assert view.delete_source("a.txt") == 0 and view.delete_doc("da") == 0
    with pytest.raises(AccessError):
        view.upsert_chunks(make_chunks("c.txt", "dc", ["x"]), [unit_vector("x")], access=Access("acme"))
    view.close()
    assert engine.count() == 2 and engine.scoped(Principal("acme", frozenset({"hr"}))).count() == 1


def test_restrict_ands_the_user_filter_with_the_access_filter():
    user = build_filter({P.TENANT: "globex"})
    spec = restrict(user, Principal("acme"))
    assert spec is not None and spec.must[0] == user and spec.must[1] == access_spec(Principal("acme"))
    assert restrict(user, OWNER) == user and access_spec(OWNER) is None
    assert DEFAULT_ACCESS.tenant == "default"


def test_engines_translate_filters_only_through_the_access_narrowing():
    """#12.3: the one function no caller can skip. In each engine, the only call of its filter translation is
    inside `_native`, which narrows by the principal first; every read, count, delete and payload update goes
    through `_native` (or `_selection`, which calls it)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "ingest" / "store"
    for module, translate in (("qdrant.py", "to_client_filter"), ("edge.py", "to_edge_filter")):
        tree = ast.parse((root / module).read_text(encoding="utf-8"))
        callers = [fn.name for fn in ast.walk(tree) if isinstance(fn, ast.FunctionDef)
                   for node in ast.walk(fn) if isinstance(node, ast.Call)
                   and getattr(node.func, "id", None) == translate]
        assert callers == ["_native"], f"{module}: {translate} called from {callers}"


def test_sidecar_files_set_a_documents_access(capsys, cli_env):
    """#12.1: `NAME.meta.json` sets a file's tenant and groups; a broken sidecar or a tenant the run may not write
    fails that file alone; sidecars are never ingested themselves."""
    folder = cli_env / "docs"
    write(folder, "hr.txt", HR)
    (folder / "hr.txt.meta.json").write_text(json.dumps({"tenant": "acme", "groups": ["hr"]}), encoding="utf-8")
    write(folder, "public.txt", PUBLIC)
    write(folder, "sales.txt", SALES)
    (folder / "sales.txt.meta.json").write_text('{"tenant": "globex", "owner": "x"}', encoding="utf-8")
    code, report = run(capsys, "ingest", str(folder))
    by_name = {os.path.basename(f["source"]): f for f in report["files"]}
    assert set(by_name) == {"hr.txt", "public.txt", "sales.txt"} and report["balanced"]
    assert code == 1 and by_name["sales.txt"]["status"] == "failed"
    assert "sales.txt.meta.json" in by_name["sales.txt"]["error"] and "owner" in by_name["sales.txt"]["error"]
    assert by_name["hr.txt"]["status"] == by_name["public.txt"]["status"] == "ingested"
    assert names(run(capsys, "query", "Kündigungsfrist Kantine", "--tenant", "acme", "--groups", "hr")[1]) == {"hr.txt"}
    assert names(run(capsys, "query", "Kündigungsfrist Kantine", "--tenant", "default")[1]) == {"public.txt"}

    code, report = run(capsys, "ingest", str(folder / "hr.txt"), "--tenant", "globex")
    assert code == 1 and "not the tenant this run writes" in report["files"][0]["error"]


def test_an_older_collection_gets_the_access_indexes_when_opened(tmp_path):
    """#12.1 migration: a collection made before tenants has no payload index on tenant/groups; opening it for
    ingest adds them (the edge engine; a server gets the same through create_payload_index)."""
    import qdrant_edge as qe

    options = StoreOptions(collection="alt", path=str(tmp_path / "q"))
    store = EdgeStore(options)
    store.ensure_collection("modell", DIM)
    for key in (P.TENANT, P.GROUPS):
        store.shard.update(qe.UpdateOperation.delete_field_index(key))
    assert P.TENANT not in store.shard.info().payload_schema
    store.close()
    again = EdgeStore(options)
    again.ensure_collection("modell", DIM)
    assert {P.TENANT, P.GROUPS} <= set(again.shard.info().payload_schema)
    again.close()


def test_cli_writes_and_deletes_are_audit_lines(capsys, cli_env, monkeypatch):
    """#12.3: every write and delete is one structured audit line, from the CLI too (tenant, who, what, counts),
    on stderr whatever the log level (here as JSON lines)."""
    monkeypatch.setenv("GERMAN_RAG_LOG_JSON", "true")
    doc = write(cli_env / "a", "hr.txt", HR)
    lines = []
    for args in (("ingest", str(doc)), ("delete", str(doc))):
        assert main([*args, "--tenant", "acme", "--json"]) == 0
        err = capsys.readouterr().err
        lines += [rec for rec in map(json.loads, err.splitlines()) if rec["logger"] == "german_rag.audit"]
    assert [(r["action"], r["tenant"]) for r in lines] == [("ingest", "acme"), ("delete", "acme")]
    assert lines[0]["ingested"] == 1 and lines[0]["points_written"] > 0 and lines[1]["source"].endswith("hr.txt")
    assert all(r["key"].startswith("cli") for r in lines)


def test_verify_as_a_tenant_sees_every_group_of_it(capsys, cli_env):
    """#12 review: `verify --tenant T` checks what T's ingest wrote, group-restricted documents included (it
    reported them as missing when it read with the reader's groups); other tenants' documents stay unseen."""
    folder = cli_env / "docs"
    write(folder, "hr.txt", HR)
    (folder / "hr.txt.meta.json").write_text(json.dumps({"tenant": "acme", "groups": ["hr"]}), encoding="utf-8")
    write(folder, "public.txt", PUBLIC)
    (folder / "public.txt.meta.json").write_text(json.dumps({"tenant": "acme"}), encoding="utf-8")
    other = write(cli_env / "b", "sales.txt", SALES)
    assert run(capsys, "ingest", str(folder))[0] == 0
    assert run(capsys, "ingest", str(other), "--tenant", "globex")[0] == 0
    code, report = run(capsys, "verify", str(folder), "--tenant", "acme")
    assert code == 0 and report["problems"] == [], report
