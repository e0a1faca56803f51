"""A hostile review of the #15 doors (POST /v1/context, Dify's /retrieval, OpenAI's /v1/embeddings, the MCP tools
over /mcp) on one real server: keys of two tenants and a group, the tiny German model, an embedded store.
Each door must answer malformed JSON (NaN, Infinity, huge numbers, lone surrogates, deep nesting, duplicate keys,
wrong types, 10 MB) with a 4xx in its own shape, never read across tenants or groups, and the doors that pack
context must agree with each other for the same settings."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx
import numpy as np
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from pipelines.service.principals import add_key
from tests.test_service_support import live_server, service_settings, wait_job

KEYS = {"acme-read": ("acme", (), "read"), "acme-hr": ("acme", ("hr",), "read"), "acme-admin": ("acme", (), "admin"),
        "acme-write": ("acme", (), "write"), "globex-read": ("globex", (), "read"),
        "globex-write": ("globex", (), "write")}
HR = "Personalakte: Die Kündigungsfrist für Frau Meier beträgt drei Monate zum Quartalsende. " * 3
KANTINE = "Hausordnung: Die Kantine ist montags bis freitags von elf bis vierzehn Uhr geöffnet. " * 3
VERTRIEB = "Vertrieb: Der Rabatt für Großkunden beträgt zwölf Prozent auf den Listenpreis. " * 3
REGELN = "\n\n".join(f"Absatz {i}: Die Regel {i} gilt für die Abteilung {i % 5}. Der Urlaub beträgt {20 + i} Tage. "
                     "Resturlaub verfällt im März." for i in range(40)) + "\n"
UPLOADS = (("acme-admin", "hr.txt", HR, "hr"), ("acme-write", "kantine.txt", KANTINE, ""),
           ("acme-write", "regeln.txt", REGELN, ""), ("globex-write", "vertrieb.txt", VERTRIEB, ""))
QUERY = "Kündigungsfrist Meier Kantine Rabatt Großkunden"
DOORS = ("/v1/context", "/retrieval", "/v1/embeddings", "/mcp")


@pytest.fixture(scope="module")
def srv(tiny_model_dir, tmp_path_factory):
    """Settings with a neighbour window of 2 and one candidate for context, so that a door that ignores the
    `expand` setting packs other chunks than one that honours it."""
    root = tmp_path_factory.mktemp("doors-review")
    keys_file = root / "keys.toml"
    keys = {name: add_key(keys_file, t, g, r, name)[0] for name, (t, g, r) in KEYS.items()}
    settings = service_settings(tiny_model_dir, root / "q", keys_file=str(keys_file), upload_dir=str(root),
                                expand=2, context_candidates=1)
    with live_server(settings) as server:
        for key, name, text, groups in UPLOADS:
            with server.client(keys[key]) as c:
                r = c.post("/v1/documents", files=[("files", (name, text.encode(), "text/plain"))],
                           data={"groups": groups} if groups else None)
                assert r.status_code == 202, r.text
                assert wait_job(c, r.json()["job_id"])["state"] == "succeeded"
        server.keys = keys  # type: ignore[attr-defined]
        server.model = str(tiny_model_dir)  # type: ignore[attr-defined]
        yield server


def post(srv, path: str, body: object, key: str | None = "acme-read") -> httpx.Response:
    headers = {"Authorization": f"Bearer {srv.keys[key]}"} if key else {}
    if path == "/mcp":
        headers |= {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-06-18"}
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return c.post(path, content=content, headers={**headers, "Content-Type": "application/json"})


def mcp_call(srv, key: str, tool: str, args: dict) -> Any:
    async def main() -> Any:
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {srv.keys[key]}"})
        async with http, Client(streamable_http_client(f"{srv.url}/mcp", http_client=http)) as client:
            return await client.call_tool(tool, args)
    return asyncio.run(main())


def rpc(tool: str, args: str) -> bytes:
    head = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool}})[:-2]
    return f'{head}, "arguments": {args}}}}}'.encode()  # the arguments as given, NaN and lone surrogates included


def dify(query: str = QUERY, **extra) -> dict:
    return {"knowledge_id": "german_rag:bm25", "query": query,
            "retrieval_setting": {"top_k": 20, "score_threshold": 0.0}, **extra}


# -- the doors that pack context agree ------------------------------------------------------------------------
def test_mcp_get_context_honours_the_expand_setting_like_v1_context(srv):
    """strategy `expand` with setting expand=2: /v1/context (and the CLI) take two neighbours on each side; the
    MCP tool get_context must pack the same context for the same question, not the default window of one."""
    ask = {"query": "Regel 17 Abteilung 2 Urlaub 37 Tage", "budget": 100_000, "strategy": "expand", "mode": "bm25"}
    r = post(srv, "/v1/context", ask)
    assert r.status_code == 200, r.text
    http = r.json()
    result = mcp_call(srv, "acme-read", "get_context", ask)
    assert not result.is_error, result.content[0].text
    mcp = result.structured_content
    assert [c["chunk_ids"] for c in mcp["citations"]] == [c["chunk_ids"] for c in http["citations"]]
    assert mcp["text"] == http["text"] and mcp["tokens"] == http["tokens"]


# -- malformed JSON: a 4xx in the door's own shape, never a 5xx ----------------------------------------------
HOSTILE = {
    "nan": b'{"query":"Kantine","budget":NaN,"top_k":NaN}',
    "infinity": b'{"query":"Kantine","budget":Infinity}',
    "huge number": b'{"query":"Kantine","budget":1' + b"0" * 5000 + b"}",
    "lone surrogate": b'{"query":"K\\ud800","input":"K\\udfff","model":"x"}',
    "deep nesting": b'{"query":"K","filters":{"source":' + b"[" * 5000 + b"]" * 5000 + b"}}",
    "not json": b'{"query":',
    "an array": b"[]",
    "latin-1": '{"query":"K\xe4se"}'.encode("latin-1"),
}


@pytest.mark.parametrize("path", DOORS)
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_malformed_bodies_are_4xx_in_the_doors_shape(srv, path, name):
    r = post(srv, path, HOSTILE[name])
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    body = r.json()
    shape = {"/retrieval": {"error_code", "error_msg"}, "/v1/embeddings": {"error"}, "/v1/context": {"error"},
             "/mcp": {"jsonrpc", "id", "error"}}[path]
    assert set(body) == shape, body
    assert "Traceback" not in r.text


@pytest.mark.parametrize("path", DOORS)
def test_a_body_over_the_limit_is_a_413_in_the_doors_shape(srv, path):
    # 2 MiB: bodies up to DRAIN_BYTES over the limit are drained, so the 413 reaches the client (a 10 MB body is
    # cut at once and a client still sending may see a reset instead: gate.py)
    r = post(srv, path, b'{"query":"' + b"a" * (2 << 20) + b'"}')
    assert r.status_code == 413, r.text
    assert ("error_code" in r.json()) == (path == "/retrieval")


@pytest.mark.parametrize("args", ['{"query":"K\\ud800"}', '{"query":"K","top_k":NaN}', '{"query":"K","top_k":1e400}',
                                  '{"query":"K","filters":{"page":{"gte":Infinity}}}', '{"query":"K","query":5}',
                                  '{"query":"K","filters":"source"}', '{"query":"K","top_k":true}'])
def test_mcp_tool_arguments_that_are_not_valid_are_errors_not_crashes(srv, args):
    r = post(srv, "/mcp", rpc("search", args))
    assert r.status_code in (200, 400), r.text
    body = r.json()
    assert body.get("error") or body["result"]["isError"], body


def test_nan_and_infinity_never_reach_a_threshold_a_budget_or_a_filter(srv):
    cases = [("/retrieval", b'{"knowledge_id":"german_rag","query":"K","retrieval_setting":{"top_k":5,'
                            b'"score_threshold":NaN}}'),
             ("/retrieval", b'{"knowledge_id":"german_rag","query":"K","retrieval_setting":{"top_k":5,'
                            b'"score_threshold":-Infinity}}'),
             ("/v1/context", b'{"query":"K","filters":{"page":{"gte":NaN}}}'),
             ("/v1/context", b'{"query":"K","filters":{"meta.jahr":123456789012345678901234567890}}'),
             ("/v1/embeddings", b'{"model":"x","input":"K","dimensions":NaN}')]
    for path, body in cases:
        r = post(srv, path, body)
        assert r.status_code in (400, 404, 422), (path, body, r.text)


# -- no door reads across tenants or groups ------------------------------------------------------------------
def _passages(srv, key: str) -> dict[str, str]:
    """chunk id -> source of every chunk `key` can find."""
    r = post(srv, "/v1/retrieve", {"query": QUERY, "top_k": 100, "mode": "bm25"}, key)
    assert r.status_code == 200, r.text
    return {p["chunk_id"]: p["source"] for p in r.json()["passages"]}


def test_get_passage_of_another_tenant_or_group_is_not_found_like_a_made_up_id(srv):
    hr = next(c for c, s in _passages(srv, "acme-hr").items() if s == "upload:hr.txt")
    sales = next(iter(_passages(srv, "globex-read")))
    ghost = "00000000-0000-4000-8000-000000000000"
    for key, chunk in (("acme-read", hr), ("globex-read", hr), ("acme-hr", sales), ("acme-read", sales.upper())):
        result = mcp_call(srv, key, "get_passage", {"chunk_id": chunk, "neighbours": 5})
        assert result.is_error, (key, result.structured_content)
        assert result.content[0].text.replace(chunk.lower(), ghost) == \
            mcp_call(srv, key, "get_passage", {"chunk_id": ghost}).content[0].text
    assert not mcp_call(srv, "acme-hr", "get_passage", {"chunk_id": hr, "neighbours": 5}).is_error


@pytest.mark.parametrize("key, sources", [
    ("acme-read", {"upload:kantine.txt", "upload:regeln.txt"}),
    ("acme-hr", {"upload:hr.txt", "upload:kantine.txt", "upload:regeln.txt"}),
    ("globex-read", {"upload:vertrieb.txt"})])
def test_every_door_shows_a_key_only_its_tenants_and_groups_sources(srv, key, sources):
    listed = mcp_call(srv, key, "list_sources", {"limit": 1000}).structured_content
    assert {s["source"] for s in listed["sources"]} == sources and listed["total"] == len(sources)
    for needle in ("hr", "Meier", "vertrieb", "Rabatt"):
        found = mcp_call(srv, key, "list_sources", {"contains": needle}).structured_content
        assert {s["source"] for s in found["sources"]} <= sources
    r = post(srv, "/retrieval", dify(), key)
    assert {rec["metadata"]["source"] for rec in r.json()["records"]} <= sources
    for name, value in (("source", "upload:hr.txt"), ("source", "upload:vertrieb.txt"), ("tenant", "globex"),
                        ("groups", "hr")):
        cond = {"conditions": [{"name": name, "comparison_operator": "is", "value": value}]}
        r = post(srv, "/retrieval", dify(metadata_condition=cond), key)
        assert r.status_code == 200 and {rec["metadata"]["source"] for rec in r.json()["records"]} <= sources
    r = post(srv, "/v1/context", {"query": QUERY, "budget": 100_000, "strategy": "merge"}, key)
    assert {c["source"] for c in r.json()["citations"]} <= sources
    for secret in ("Personalakte", "Listenpreis") if key == "acme-read" else ():
        assert secret not in r.json()["text"]


# -- semantics ------------------------------------------------------------------------------------------------
def test_context_citation_spans_are_the_documents_text_at_every_budget(srv):
    """The block after each citation header is exactly REGELN[start:end], cut or not, merged or not."""
    for strategy in ("topk", "merge"):
        for budget in (60, 97, 300, 5000):
            r = post(srv, "/v1/context", {"query": "Urlaub Resturlaub März Abteilung", "budget": budget,
                                          "strategy": strategy, "mode": "bm25",
                                          "filters": {"source": "upload:regeln.txt"}})
            assert r.status_code == 200, r.text
            ctx = r.json()
            assert ctx["tokens"] <= budget
            for i, c in enumerate(ctx["citations"]):
                begin = ctx["text"].index("\n", ctx["text"].index(f"[{c['number']}] ")) + 1
                stop = ctx["text"].find(f"\n\n[{c['number'] + 1}] ", begin) if i + 1 < len(ctx["citations"]) \
                    else len(ctx["text"])
                assert ctx["text"][begin:stop] == REGELN[c["start"]:c["end"]], (strategy, budget, c)


def test_base64_embeddings_are_the_float_vectors_and_usage_sums_the_inputs(srv):
    texts = ["Kantine", "Rabatt für Großkunden", "Kündigungsfrist"]
    floats = post(srv, "/v1/embeddings", {"model": srv.model, "input": texts}).json()
    packed = post(srv, "/v1/embeddings", {"model": srv.model, "input": texts, "encoding_format": "base64"}).json()
    for f, b in zip(floats["data"], packed["data"], strict=True):
        decoded = np.frombuffer(base64.b64decode(b["embedding"]), dtype="<f4")
        assert np.array_equal(decoded, np.asarray(f["embedding"], dtype="<f4"))
    single = [post(srv, "/v1/embeddings", {"model": srv.model, "input": t}).json()["usage"]["prompt_tokens"]
              for t in texts]
    assert floats["usage"] == packed["usage"] == {"prompt_tokens": sum(single), "total_tokens": sum(single)}


def test_an_expanded_citation_names_every_chunk_its_span_holds(srv):
    r = post(srv, "/v1/retrieve", {"query": "Urlaub Resturlaub März Abteilung", "top_k": 100, "mode": "bm25",
                                   "expand": 0, "filters": {"source": "upload:regeln.txt"}})
    chunks = {p["chunk_id"]: (p["start"], p["end"]) for p in r.json()["passages"]}
    ctx = post(srv, "/v1/context", {"query": "Regel 17 Abteilung 2 Urlaub 37 Tage", "budget": 100_000,
                                    "strategy": "expand", "mode": "bm25"}).json()
    for c in ctx["citations"]:
        inside = {cid for cid, (s, e) in chunks.items() if c["start"] <= s and e <= c["end"]}
        assert inside <= set(c["chunk_ids"]), (c["chunk_ids"], inside)
