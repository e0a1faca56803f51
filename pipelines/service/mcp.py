"""The MCP door (`german-rag mcp`; the service's `/mcp`): four read-only tools over the service's runtime, with the
official MCP Python SDK (`mcp` 2.x, its MCPServer).

Transports: stdio (`german-rag mcp`, one client, acting as the settings' principal like the CLI) and streamable
HTTP, which is the service's own endpoint `/mcp` (`german-rag serve`, or `german-rag mcp --transport http`):
the request gate checks its API key before the SDK reads a byte, and every tool call acts as that key's
principal (tenant, groups), read from the request the call came in. Stateless JSON responses: each POST
carries its own key, so nothing of one key's session is reused by another.

Tool inputs are strict (a string is not a number, `true` is not a top_k); every refusal is a tool error
(`isError`, the message says what to fix); an unknown tool is the SDK's own error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Literal, TypeVar

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import AfterValidator, BaseModel, Field
from starlette.applications import Starlette
from starlette.routing import Route

from ingest.errors import ErrorKind, GermanRagError
from ingest.store.access import Principal
from pipelines.config import Settings
from pipelines.service.http import Unauthorized
from pipelines.service.mcp_results import (
    ContextResult,
    PassageResult,
    SearchResult,
    SourcePage,
    context_text,
    passage_text,
    search_text,
    sources_text,
)
from pipelines.service.mcp_tools import McpTools
from pipelines.service.models import FilterValue, check_filters
from pipelines.service.principals import Caller
from pipelines.service.runtime import ServiceRuntime
from retrieval.context import STRATEGIES
from retrieval.query_check import MAX_EXPAND, MAX_QUERY_CHARS, MAX_TOP_K

log = logging.getLogger(__name__)
MCP_PATH = "/mcp"
M = TypeVar("M", bound=BaseModel)
PrincipalOf = Callable[[Context], Principal]

Query = Annotated[str, Field(strict=True, min_length=1, max_length=MAX_QUERY_CHARS,
                             description="die Frage, auf Deutsch / the question, in German")]
Mode = Literal["dense", "bm25", "hybrid"]
Truncate = Annotated[bool, Field(strict=True, description="eine Frage über dem Token-Limit des Modells kürzen statt "
                                 "abzulehnen / cut a query over the model's token limit instead of refusing it")]
Filters = Annotated[dict[str, FilterValue], AfterValidator(check_filters), Field(
    description="Feld -> Wert, Werteliste (einer davon) oder Bereich / field -> value, list of values (any of "
    "them) or range {\"gte\": x, \"lt\": y} (gt, gte, lt, lte on integer, float and datetime fields; dates "
    "YYYY-MM-DD). Fields: source, doc_id, page, heading_path, chunk_index, title, author, file_type, file_size, "
    "modified, pages, language, date, ocr, meta.KEY")]
MinRelevance = Annotated[float | Literal["auto"] | None, Field(
    description="kalibrierte Mindestrelevanz 0..1 oder 'auto'; darunter wird nichts geliefert (die Sammlung "
    "enthält keine Antwort) / calibrated relevance 0..1 or 'auto' a passage needs; below it nothing is returned "
    "(default: setting min_relevance)")]

DESCRIPTIONS = {
    "search": "Durchsucht die deutschen Dokumente und liefert die besten Passagen mit Quelle, Titel, Seite, "
              "Gliederungspfad, Zeichenbereich, chunk_id und Score. / Searches the German documents and returns "
              "the top passages with source, title, page, heading path, character span, chunk_id and score.",
    "get_context": "Stellt Kontext für ein Sprachmodell zusammen: passende Passagen, nach Fundstelle "
                   "zusammengeführt, als nummerierte Quellen [1], [2] … innerhalb eines Token-Budgets. / Builds "
                   "context for a language model: matching passages merged by span, numbered as sources [1], "
                   "[2] … within a token budget; the citations say where each source's text lies.",
    "get_passage": "Holt eine Passage über ihre chunk_id (aus search oder get_context), auf Wunsch mit N "
                   "Nachbar-Abschnitten davor und danach, samt Herkunft. / Fetches a passage by its chunk_id "
                   "(from search or get_context), optionally with N neighbouring chunks on each side, with its "
                   "provenance.",
    "list_sources": "Listet die gespeicherten Quellen (Dokumente) mit Titel, Anzahl der Abschnitte und Feldern, "
                    "seitenweise. / Lists the stored sources (documents) with title, chunk count and fields, one "
                    "page at a time.",
}
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)


def answer(result: M, text: Callable[[M], str]) -> CallToolResult:
    """A tool's result: the structured content and a text rendering of it for a model to read."""
    return CallToolResult(content=[TextContent(type="text", text=text(result))],
                          structured_content=result.model_dump(mode="json"))


def tool_call(work: Callable[[], M]) -> M:
    """Run a tool's work; the project's errors become tool errors with their message (an internal one says
    only that, its traceback goes to the log)."""
    try:
        return work()
    except GermanRagError as exc:
        if exc.kind is ErrorKind.INTERNAL:
            log.error("internal error in an MCP tool", exc_info=exc)
            raise ToolError("internal error; see the server log") from exc
        raise ToolError(str(exc)) from exc


def build_mcp(tools: McpTools, principal_of: PrincipalOf) -> MCPServer:
    """The MCPServer with its four tools; `principal_of` says whom a call acts for."""
    server: MCPServer = MCPServer("german-rag", title="german-rag", version="1", log_level="WARNING",
                                  instructions="Retrieval über deutsche Dokumente mit Quellenangaben / retrieval "
                                               "over German documents with citations.")

    @server.tool(description=DESCRIPTIONS["search"], annotations=READ_ONLY)
    def search(ctx: Context, query: Query,
               top_k: Annotated[int, Field(strict=True, ge=1, le=MAX_TOP_K, description="Anzahl / how many "
                                           "passages")] = 5,
               mode: Annotated[Mode | None, Field(description="dense, bm25 oder/or hybrid (Standard/default: "
                                                  "setting retrieval_mode)")] = None,
               filters: Filters | None = None, truncate: Truncate = False,
               min_relevance: MinRelevance = None) -> Annotated[CallToolResult, SearchResult]:
        who = principal_of(ctx)
        return answer(tool_call(lambda: tools.search(who, query, top_k, mode, filters, truncate, min_relevance)),
                      search_text)

    @server.tool(description=DESCRIPTIONS["get_context"], annotations=READ_ONLY)
    def get_context(ctx: Context, query: Query,
                    budget: Annotated[int | None, Field(strict=True, ge=1, le=1_000_000, description="Tokens des "
                                                        "Kontexts / tokens of context (default: setting "
                                                        "context_budget)")] = None,
                    filters: Filters | None = None,
                    strategy: Annotated[str | None, Field(strict=True, max_length=40, description="packing "
                                                          f"strategy, one of {list(STRATEGIES)} (default: setting "
                                                          "context_strategy)")] = None,
                    mode: Annotated[Mode | None, Field(description="dense, bm25 oder/or hybrid")] = None,
                    truncate: Truncate = False,
                    min_relevance: MinRelevance = None) -> Annotated[CallToolResult, ContextResult]:
        who = principal_of(ctx)
        return answer(tool_call(lambda: tools.get_context(who, query, budget, filters, strategy, mode, truncate,
                                                          min_relevance)), context_text)

    @server.tool(description=DESCRIPTIONS["get_passage"], annotations=READ_ONLY)
    def get_passage(ctx: Context,
                    chunk_id: Annotated[str, Field(strict=True, min_length=1, max_length=100, description="die "
                                                   "chunk_id eines Treffers / a hit's chunk_id")],
                    neighbours: Annotated[int, Field(strict=True, ge=0, le=MAX_EXPAND, description="Nachbarn je "
                                                     "Seite / neighbour chunks on each side")] = 0,
                    ) -> Annotated[CallToolResult, PassageResult]:
        who = principal_of(ctx)
        return answer(tool_call(lambda: tools.get_passage(who, chunk_id, neighbours)), passage_text)

    @server.tool(description=DESCRIPTIONS["list_sources"], annotations=READ_ONLY)
    def list_sources(ctx: Context,
                     contains: Annotated[str | None, Field(strict=True, min_length=1, max_length=4096, description=(
                         "nur Quellen, deren Name oder Titel dies enthält / only sources whose name or title "
                         "contains this (any case)"))] = None,
                     offset: Annotated[int, Field(strict=True, ge=0, le=10_000_000, description="next_offset der "
                                                  "vorigen Seite / the previous page's next_offset")] = 0,
                     limit: Annotated[int, Field(strict=True, ge=1, le=1000)] = 50,
                     ) -> Annotated[CallToolResult, SourcePage]:
        who = principal_of(ctx)
        return answer(tool_call(lambda: tools.list_sources(who, contains, offset, limit)), sources_text)

    return server


# -- transports ---------------------------------------------------------------------------------------------
def http_principal(ctx: Context) -> Principal:
    """The principal of the HTTP request a call came in (the gate put its caller into the ASGI scope)."""
    request = ctx.request_context.request
    caller = getattr(request, "scope", {}).get("state", {}).get("caller")
    if not isinstance(caller, Caller):  # the gate answers such a request itself; never reached behind it
        raise ToolError(str(Unauthorized("missing API key: send 'Authorization: Bearer KEY'")))
    return caller.principal


def mount_mcp(app: Starlette, runtime: ServiceRuntime) -> StreamableHTTPSessionManager:
    """Add `/mcp` (streamable HTTP, stateless, JSON responses) to the service's app, behind its gate; returns
    the session manager, whose `run()` the app's lifespan must hold open."""
    server = build_mcp(McpTools(runtime), http_principal)
    # The SDK's DNS-rebinding guard for a loopback host (the Host and Origin a browser page could forge),
    # none elsewhere: a public bind needs API keys (app.check_bind).
    mcp_app = server.streamable_http_app(streamable_http_path=MCP_PATH, stateless_http=True, json_response=True,
                                         host=runtime.settings.host)
    (route,) = [r for r in mcp_app.routes if isinstance(r, Route) and r.path == MCP_PATH]
    # POST only: stateless, nothing is ever sent on a GET stream (the SDK would hold one open for nothing),
    # and there is no session to DELETE. Other methods answer 405.
    app.router.routes.append(Route(MCP_PATH, endpoint=route.endpoint, methods=["POST"]))
    return server.session_manager


def serve_stdio(settings: Settings) -> int:
    """`german-rag mcp`: one client over stdin/stdout, acting as the settings' principal (tenant and groups, or
    the local owner) like the CLI; the model loads once, in the background, while the client connects."""
    principal = settings.principal
    # The runtime's store is the owner's, as in the service; each call reads through `principal`'s view of it
    # (a runtime built for a tenant would also set up uploads as that tenant, which it may not own).
    runtime = ServiceRuntime(settings.model_copy(update={"tenant": None}))
    server = build_mcp(McpTools(runtime), lambda ctx: principal)
    runtime.start()
    try:
        anyio.run(server.run_stdio_async)
    finally:
        runtime.stop()
    return 0
