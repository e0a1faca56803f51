"""#15 MCP: the SDK's own client against `german-rag mcp` over stdio (a subprocess) and the service's /mcp over
streamable HTTP (a real uvicorn server with a keys file of two tenants), on a real collection ingested from the
bundled German examples with the tiny German BERT."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from pipelines.api import ingest_paths
from pipelines.service.principals import add_key
from tests.test_service_support import EXAMPLES, live_server, service_settings

ROOT = Path(__file__).resolve().parents[1]
TOOLS = {"search", "get_context", "get_passage", "list_sources"}
VERTRIEB = ("Vertriebsrichtlinie der Globex GmbH\n\nDer Rabatt für Großkunden beträgt zwölf Prozent auf den "
            "Listenpreis. Urlaub im Vertrieb wird mit der Teamleitung abgestimmt.\n\n") * 6
GHOST = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(scope="module")
def collection(tiny_model_dir, tmp_path_factory) -> tuple[Path, Path]:
    """The examples as tenant acme, a sales note as tenant globex; returns (store folder, globex's file)."""
    root = tmp_path_factory.mktemp("mcp")
    note = root / "globex" / "vertrieb.txt"
    note.parent.mkdir()
    note.write_text(VERTRIEB, encoding="utf-8")
    base = service_settings(tiny_model_dir, root / "store")
    for tenant, paths in (("acme", [str(EXAMPLES)]), ("globex", [str(note)])):
        report = ingest_paths(base.model_copy(update={"tenant": tenant}), paths, progress=False)
        assert report.count("failed") == 0 and report.summary()["balanced"]
    return root / "store", note


@pytest.fixture(scope="module")
def server(collection, tiny_model_dir, tmp_path_factory):
    """A keyed service on a copy of the collection: read keys of acme and globex."""
    root = tmp_path_factory.mktemp("mcp-http")
    shutil.copytree(collection[0], root / "store")
    keys_file = root / "keys.toml"
    keys = {t: add_key(keys_file, t, (), "read", f"{t}-read")[0] for t in ("acme", "globex")}
    settings = service_settings(tiny_model_dir, root / "store", keys_file=str(keys_file), upload_dir=str(root))
    with live_server(settings) as srv:
        srv.keys = keys  # type: ignore[attr-defined]
        yield srv


def over_http(srv, tenant: str, work: Callable[[Client], Awaitable[Any]]) -> Any:
    """Run `work` with an SDK client connected to /mcp with `tenant`'s read key."""
    async def main() -> Any:
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {srv.keys[tenant]}"})
        async with http, Client(streamable_http_client(f"{srv.url}/mcp", http_client=http)) as client:
            return await work(client)
    return asyncio.run(main())


def call(srv, tenant: str, tool: str, args: dict) -> Any:
    async def work(client: Client) -> Any:
        return await client.call_tool(tool, args)
    return over_http(srv, tenant, work)


def ok(result) -> dict:
    assert not result.is_error, result.content[0].text
    assert result.content[0].type == "text" and result.content[0].text
    return result.structured_content


# -- HTTP ----------------------------------------------------------------------------------------------------
def test_http_without_a_valid_key_is_401_and_only_post_is_served(server):
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream"}
    for auth in ({}, {"Authorization": "Bearer falsch"}):
        r = httpx.post(f"{server.url}/mcp", json=body, headers={**headers, **auth}, timeout=30)
        assert r.status_code == 401, r.text
        assert r.json()["error"]["kind"] == "unauthorized"
    key = {"Authorization": f"Bearer {server.keys['acme']}"}
    assert httpx.get(f"{server.url}/mcp", headers={**headers, **key}, timeout=30).status_code == 405  # no stream


def test_tools_are_listed_with_german_and_english_descriptions_and_schemas(server):
    async def work(client: Client):
        return (await client.list_tools()).tools

    tools = {t.name: t for t in over_http(server, "acme", work)}
    assert set(tools) == TOOLS
    for name, english in (("search", "Searches"), ("get_context", "Builds context"), ("get_passage", "Fetches"),
                          ("list_sources", "Lists")):
        german, _, rest = tools[name].description.partition(" / ")
        assert english in rest and any(w in german for w in ("die", "der", "eine", "Quellen"))
        assert tools[name].output_schema["type"] == "object"
        assert tools[name].annotations.read_only_hint is True
    search = tools["search"].input_schema
    assert search["required"] == ["query"]
    assert search["properties"]["top_k"]["maximum"] == 100 and "filters" in search["properties"]
    assert set(tools["get_passage"].input_schema["properties"]) == {"chunk_id", "neighbours"}
    assert {"passages", "mode", "query"} <= set(tools["search"].output_schema["properties"])
    assert "citations" in tools["get_context"].output_schema["properties"]


def test_search_returns_passages_with_provenance(server):
    result = call(server, "acme", "search", {"query": "Wie viele Urlaubstage stehen mir zu?", "top_k": 3,
                                             "mode": "hybrid"})
    found = ok(result)
    assert found["mode"] == "hybrid" and 1 <= len(found["passages"]) <= 3
    first = found["passages"][0]
    for key in ("chunk_id", "doc_id", "source", "title", "page", "heading_path", "start", "end", "score", "text"):
        assert key in first
    assert [p["rank"] for p in found["passages"]] == list(range(1, len(found["passages"]) + 1))
    assert first["end"] - first["start"] >= len(first["text"].strip()) > 0
    assert result.content[0].text.startswith("[1] ") and first["chunk_id"] in result.content[0].text


def test_search_filters_match_the_http_api_ranges_included(server):
    found = ok(call(server, "acme", "search", {"query": "Arbeitszeit Urlaub", "top_k": 10, "mode": "bm25",
                                               "filters": {"chunk_index": {"gte": 3, "lt": 6},
                                                           "file_type": ["md", "txt"]}}))
    assert found["passages"] and all(3 <= p["chunk_index"] < 6 for p in found["passages"])


def test_get_context_numbers_its_sources_within_the_budget(server):
    result = call(server, "acme", "get_context", {"query": "Wann verfällt der Urlaub?", "budget": 300})
    ctx = ok(result)
    assert 0 < ctx["tokens"] <= ctx["budget"] == 300
    assert [c["number"] for c in ctx["citations"]] == list(range(1, len(ctx["citations"]) + 1))
    assert ctx["text"].startswith("[1] ") and all(c["chunk_ids"] for c in ctx["citations"])
    assert result.content[0].text.startswith(ctx["text"])


def test_get_passage_merges_neighbours_and_keeps_provenance(server):
    hit = ok(call(server, "acme", "search", {"query": "Urlaubsentgelt", "top_k": 1, "mode": "bm25"}))["passages"][0]
    alone = ok(call(server, "acme", "get_passage", {"chunk_id": hit["chunk_id"]}))
    assert alone["chunk_ids"] == [hit["chunk_id"]] and alone["text"] == hit["text"]
    assert (alone["start"], alone["end"], alone["source"]) == (hit["start"], hit["end"], hit["source"])
    grown = ok(call(server, "acme", "get_passage", {"chunk_id": hit["chunk_id"].upper(), "neighbours": 1}))
    assert hit["chunk_id"] in grown["chunk_ids"] and len(grown["chunk_ids"]) >= 2
    assert grown["start"] <= hit["start"] and grown["end"] >= hit["end"] and hit["text"] in grown["text"]
    assert grown["first_index"] <= hit["chunk_index"] <= grown["last_index"]


def test_list_sources_pages_and_filters(server):
    first = ok(call(server, "acme", "list_sources", {"limit": 2}))
    assert first["total"] == 4 and len(first["sources"]) == 2 and first["next_offset"] == 2
    rest = ok(call(server, "acme", "list_sources", {"offset": 2, "limit": 2}))
    assert rest["next_offset"] is None
    names = [s["source"] for s in first["sources"] + rest["sources"]]
    assert names == sorted(names) and len(set(names)) == 4
    burlg = ok(call(server, "acme", "list_sources", {"contains": "MINDESTURLAUB"}))["sources"]
    assert [Path(s["source"]).name for s in burlg] == ["burlg.md"]
    assert burlg[0]["title"] and burlg[0]["chunks"] > 1 and burlg[0]["fields"]["file_type"] == "md"


def test_a_tenants_key_never_sees_another_tenants_documents(server, collection):
    """acme's key: globex's sales note is in no search mode, no context, no listing; its chunk id is "not found"
    with the same message as an id nobody has. globex's key sees only the note."""
    note = str(collection[1])
    globex = ok(call(server, "globex", "search", {"query": "Rabatt Großkunden Urlaub", "top_k": 20}))
    assert {p["source"] for p in globex["passages"]} == {note}
    chunk_id = globex["passages"][0]["chunk_id"]
    for mode in ("dense", "bm25", "hybrid"):
        seen = ok(call(server, "acme", "search", {"query": "Rabatt Großkunden Listenpreis", "top_k": 50, "mode": mode}))
        assert note not in {p["source"] for p in seen["passages"]}
    for filters in ({"source": note}, {"tenant": "globex"}):
        assert ok(call(server, "acme", "search", {"query": "Rabatt", "filters": filters}))["passages"] == []
    ctx = ok(call(server, "acme", "get_context", {"query": "Rabatt für Großkunden", "budget": 2000}))
    assert note not in {c["source"] for c in ctx["citations"]} and "Globex" not in ctx["text"]
    assert note not in {s["source"] for s in ok(call(server, "acme", "list_sources", {"limit": 1000}))["sources"]}
    assert [s["source"] for s in ok(call(server, "globex", "list_sources", {}))["sources"]] == [note]
    theirs, nobodys = (call(server, "acme", "get_passage", {"chunk_id": c}) for c in (chunk_id, GHOST))
    assert theirs.is_error and nobodys.is_error
    assert theirs.content[0].text.replace(chunk_id, "ID") == nobodys.content[0].text.replace(GHOST, "ID")
    assert ok(call(server, "globex", "get_passage", {"chunk_id": chunk_id}))["source"] == note


BAD_CALLS = [
    ("search", {"query": "Urlaub", "top_k": "5"}, "top_k"),
    ("search", {"query": "Urlaub", "top_k": True}, "top_k"),
    ("search", {"query": "Urlaub", "top_k": 0}, "top_k"),
    ("search", {"query": ""}, "query"),
    ("search", {"query": "   "}, "query"),
    ("search", {"query": "x" * 16_001}, "query"),
    ("search", {"top_k": 3}, "query"),
    ("search", {"query": 42}, "query"),
    ("search", {"query": "Urlaub " * 2000}, "over the model's limit"),
    ("get_context", {"query": "Urlaub " * 2000, "mode": "dense"}, "over the model's limit"),
    ("search", {"query": "Urlaub", "truncate": "ja"}, "truncate"),
    ("search", {"query": "Urlaub", "mode": "semantisch"}, "mode"),
    ("search", {"query": "Urlaub", "filters": {"farbe": "rot"}}, "farbe"),
    ("search", {"query": "Urlaub", "filters": {"source": {"gte": "a"}}}, "source"),
    ("search", {"query": "Urlaub", "filters": {"page": -1}}, "page"),
    ("search", {"query": "Urlaub", "filters": "source=x"}, "filters"),
    ("get_context", {"query": "Urlaub", "budget": 3}, "budget"),
    ("get_context", {"query": "Urlaub", "budget": "viel"}, "budget"),
    ("get_context", {"query": "Urlaub", "strategy": "alles"}, "strategy"),
    ("get_passage", {"chunk_id": "kein-id"}, "chunk_id"),
    ("get_passage", {"chunk_id": GHOST}, "no chunk"),
    ("get_passage", {"chunk_id": GHOST, "neighbours": 99}, "neighbours"),
    ("list_sources", {"limit": 0}, "limit"),
    ("list_sources", {"offset": -1}, "offset"),
]


def test_bad_input_is_a_tool_error_and_the_server_goes_on(server):
    async def work(client: Client):
        results = [await client.call_tool(tool, args) for tool, args, _ in BAD_CALLS]
        unknown = await client.call_tool("loeschen", {})
        after = await client.call_tool("search", {"query": "Urlaub " * 2000, "top_k": 1, "truncate": True})
        return results, unknown, after

    results, unknown, after = over_http(server, "acme", work)
    for (tool, args, needle), result in zip(BAD_CALLS, results, strict=True):
        assert result.is_error, (tool, args)
        assert needle in result.content[0].text, (tool, args, result.content[0].text)
    assert unknown.is_error and "Unknown tool" in unknown.content[0].text  # the SDK's own answer
    assert ok(after)["passages"]


# -- stdio ---------------------------------------------------------------------------------------------------
def test_stdio_subprocess_acts_as_the_settings_principal(collection, tiny_model_dir, tmp_path):
    """`python -m pipelines.cli mcp` spawned by the SDK's stdio client, env pointing at a copy of the collection
    with GERMAN_RAG_TENANT=globex: it lists the tools, answers with structured results, sees only globex's
    documents, and reports bad input as a tool error."""
    shutil.copytree(collection[0], tmp_path / "store")
    env = {"GERMAN_RAG_EMBED_MODEL": str(tiny_model_dir), "GERMAN_RAG_QDRANT_PATH": str(tmp_path / "store"),
           "GERMAN_RAG_TENANT": "globex", "GERMAN_RAG_OFFLINE": "true", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false", "DO_NOT_TRACK": "1",
           **{k: os.environ[k] for k in ("PATH", "HOME", "TMPDIR") if k in os.environ}}
    params = StdioServerParameters(command=sys.executable, args=["-m", "pipelines.cli", "mcp"], env=env,
                                   cwd=str(tmp_path))

    async def main():
        async with Client(params) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            found = await client.call_tool("search", {"query": "Rabatt Urlaub", "top_k": 5})
            listed = await client.call_tool("list_sources", {})
            bad = await client.call_tool("search", {"query": "Urlaub", "top_k": "drei"})
            return names, found, listed, bad

    names, found, listed, bad = asyncio.run(main())
    assert names == TOOLS
    note = str(collection[1])
    assert {p["source"] for p in ok(found)["passages"]} == {note}
    assert [s["source"] for s in ok(listed)["sources"]] == [note]
    assert bad.is_error and "top_k" in bad.content[0].text


# -- the store's lookup by chunk id, on both embedded engines -------------------------------------------------
@pytest.mark.parametrize("engine", ["edge", "local"])
def test_fetch_chunk_reads_through_the_principals_view(engine, tiny_model_dir, tmp_path, collection):
    from ingest.store.access import Principal
    from pipelines.build import build_store

    settings = service_settings(tiny_model_dir, tmp_path / "q", qdrant_engine=engine)
    assert ingest_paths(settings.model_copy(update={"tenant": "globex"}), [str(collection[1])],
                        progress=False).count("failed") == 0
    store = build_store(settings)
    try:
        (chunk_id, payload, _), *_ = list(store.scan(["chunk_id", "text"]))
        assert store.fetch_chunk(chunk_id)["text"] == payload["text"]
        assert store.scoped(Principal("globex", frozenset(), "read")).fetch_chunk(chunk_id)["chunk_id"] == chunk_id
        assert store.scoped(Principal("acme", frozenset(), "read")).fetch_chunk(chunk_id) is None
        assert store.fetch_chunk(GHOST) is None
    finally:
        store.close()
