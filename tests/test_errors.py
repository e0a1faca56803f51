"""#11.3 One error root: every error has a kind; one table maps kinds to exit codes, one to HTTP statuses.

Each kind is met through the real doors: `german-rag` in-process (pipelines.cli.main.main) and the HTTP
service on a real uvicorn server, on the real MiniLM model. Qdrant down at the start is a URL nobody
listens on; Qdrant going away mid-run is the REST stand-in (tests/standin/qdrant_rest.py) answering 503
from a chosen request on, or the fault proxy in front of it being stopped.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import httpx
import pytest

from ingest.chunk import ChunkOptionsError
from ingest.embed_backends import BackendError
from ingest.errors import (
    ConfigError,
    ErrorKind,
    GermanRagError,
    InputError,
    InternalError,
    UnavailableError,
    UsageError,
)
from ingest.limits import LimitError
from ingest.meta_fields import MetaFieldError
from ingest.ocr import OcrPageError, OcrUnavailableError
from ingest.schema import (
    AccessError,
    EmptyDocumentError,
    IngestError,
    ModelUnavailableError,
    ParseError,
    StoreError,
    TokenLimitError,
)
from ingest.sparse import SparseConfigError
from ingest.store.base import CollectionNameError, StoreLockedError, StoreOptions, StoreUnavailableError
from ingest.store.filters import FilterError
from pipelines import config
from pipelines.cli import commands
from pipelines.cli.main import EXIT_CODES, exit_code, main
from pipelines.evaluation.datasets import DatasetError
from pipelines.indexing.fields import MetaValueError
from pipelines.indexing.sidecar import SidecarError
from pipelines.service import dify, dify_filters, http, openai_embeddings
from retrieval.context import BudgetError
from retrieval.prompt import PromptError
from retrieval.schema import EmptyQueryError, QueryError, RerankerUnavailableError, RetrievalError
from retrieval.tokens import TokenizerError
from tests.conftest import ROOT, cli_environment
from tests.standin.qdrant_rest import FaultProxy, StandinQdrant
from tests.test_service_support import live_server, service_settings

U, C, IN, N, X = (ErrorKind.USAGE, ErrorKind.CONFIGURATION, ErrorKind.INPUT, ErrorKind.UNAVAILABLE,
                 ErrorKind.INTERNAL)
KINDS = {
    UsageError: U, ConfigError: C, InputError: IN, UnavailableError: N, InternalError: X,
    IngestError: X, ParseError: IN, EmptyDocumentError: IN, LimitError: IN, TokenLimitError: IN,
    ModelUnavailableError: C, BackendError: C, SparseConfigError: C, ChunkOptionsError: C,
    StoreError: C, CollectionNameError: C, StoreUnavailableError: N, StoreLockedError: N, FilterError: U,
    RetrievalError: U, QueryError: U, EmptyQueryError: U, RerankerUnavailableError: C, DatasetError: IN,
    AccessError: U, SidecarError: IN, MetaValueError: IN, MetaFieldError: U, OcrUnavailableError: C, OcrPageError: IN,
    http.ServiceError: X, http.InvalidInput: U, http.EmptyInput: U, http.Overloaded: N, http.NotReady: N,
    http.Misconfigured: C, http.NotFound: U, http.Unauthorized: U, http.Forbidden: U, http.TooLarge: IN,
    http.LengthRequired: U, http.RequestTimeout: IN, http.UnsupportedType: IN, http.MissingKey: U, http.InvalidKey: U,
    dify.UnknownKnowledge: U, dify_filters.UnsupportedCondition: U, openai_embeddings.UnknownModel: U,
    openai_embeddings.EmbeddingInputError: U,
    BudgetError: U, TokenizerError: C, PromptError: C,
}
EXITS = {U: 2, C: 2, IN: 1, N: 3, X: 70}
TEXT = "Der Urlaub beträgt jährlich mindestens vierundzwanzig Werktage. Die Arbeitszeit darf acht Stunden nicht "


def all_error_classes() -> set[type[GermanRagError]]:
    found, todo = set(), [GermanRagError]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__module__.split(".")[0] in ("ingest", "retrieval", "pipelines") and sub not in found:
                found.add(sub)
                todo.append(sub)
    return found


# -- the tables ------------------------------------------------------------------------------------------
def test_every_project_error_has_the_kind_written_down():
    assert all_error_classes() == set(KINDS) - {GermanRagError}
    for cls, kind in KINDS.items():
        assert cls("x").kind is kind, cls
        assert isinstance(cls("x"), GermanRagError)
    assert not issubclass(StoreError, IngestError)  # the store is not ingestion: retrieval meets it too
    assert config.ConfigError is ConfigError and config.UsageError is UsageError
    assert StoreUnavailableError("x").retryable and not StoreError("x").retryable


def test_every_kind_has_one_exit_code_and_one_http_status():
    assert set(EXIT_CODES) == set(ErrorKind) and set(ErrorKind) <= set(http.HTTP_ERRORS)
    for cls, kind in KINDS.items():
        assert exit_code(cls("x"))[0] == EXITS[kind], cls
        assert http.http_error(cls("x")).status in (400, 401, 403, 404, 408, 411, 413, 415, 422, 429, 500, 503)
    assert exit_code(RuntimeError("a bug"))[0] == 70 and http.http_error(RuntimeError("a bug")).status == 500
    statuses = {cls: http.http_error(cls("x")) for cls in KINDS}
    assert (statuses[FilterError].status, statuses[QueryError].status, statuses[TokenLimitError].status) == (422,) * 3
    assert (statuses[EmptyQueryError].status, statuses[EmptyQueryError].name) == (400, "empty")
    assert statuses[StoreUnavailableError] == http.HttpError(503, "not_ready", "10")
    assert statuses[StoreError] == statuses[http.Misconfigured] == http.HttpError(503, "not_ready")
    assert statuses[InternalError].status == statuses[IngestError].status == 500


def test_nothing_tells_errors_apart_by_their_message():
    """The two library exceptions that carry their cause only in their message are read once each, in
    their adapter (qdrant-client's "already accessed", Starlette's form limits)."""
    pattern = re.compile(r"\bin str\(\w+\)|str\(\w+\)\.(startswith|endswith)|\.message\.startswith")
    hits = [f"{path.relative_to(ROOT)}:{n}" for package in ("ingest", "retrieval", "pipelines")
            for path in sorted((ROOT / package).rglob("*.py"))
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert [h.rsplit(":", 1)[0] for h in hits] == ["ingest/store/qdrant.py", "pipelines/service/http.py"], hits


# -- the CLI ---------------------------------------------------------------------------------------------
def free_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"  # closed again: nobody listens there


@pytest.fixture()
def cli(tmp_path, minilm_dir, monkeypatch):
    cli_environment(tmp_path, minilm_dir, monkeypatch)
    monkeypatch.setenv("GERMAN_RAG_STORE_RETRIES", "1")
    monkeypatch.setenv("GERMAN_RAG_STORE_RETRY_BACKOFF", "0.01")
    monkeypatch.setenv("GERMAN_RAG_QDRANT_TIMEOUT", "5")
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(3):
        (docs / f"datei_{i}.txt").write_text(f"Datei {i}. " + TEXT * (2 + i), encoding="utf-8")
    return docs


def run(capsys, *args: str) -> tuple[int, dict, str]:
    code = main([*args, "--json"])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def test_cli_usage_exits_2_with_kind_and_type(capsys, cli):
    code, res, err = run(capsys, "query", "Urlaub", "--filter", "farbe=rot")
    assert (code, res["kind"], res["type"]) == (2, "usage", "UsageError"), res
    assert "usage error: --filter farbe=rot" in err
    code, res, _ = run(capsys, "query", "Urlaub", "--expand", "9")
    assert (code, res["kind"], res["type"]) == (2, "usage", "UsageError") and "--expand 9" in res["error"], res


def test_cli_configuration_exits_2(capsys, cli):
    code, res, err = run(capsys, "query", "Urlaub", "--collection", "fehlt")
    assert (code, res["kind"], res["type"]) == (2, "configuration", "StoreError"), res
    assert "'fehlt' does not exist" in res["error"] and "configuration error" in err
    code, res, _ = run(capsys, "config", "--collection", "böse name")
    assert (code, res["kind"], res["type"]) == (2, "configuration", "ConfigError"), res
    assert "collection (flag --collection)" in res["error"]


def test_cli_input_exits_1(capsys, cli):
    (cli / "kaputt.pdf").write_bytes(b"%PDF-1.7 nicht wirklich")
    code, report, _ = run(capsys, "ingest", str(cli))
    assert code == 1 and report["failed"] == 1 and report["ingested"] == 3 and report["outage"] is None
    code, res, _ = run(capsys, "query", "Urlaub " * 600)
    assert (code, res["kind"], res["type"]) == (1, "input", "TokenLimitError"), res


def test_cli_store_unavailable_at_start_exits_3(capsys, cli):
    url = free_url()
    for args in (("query", "Urlaub"), ("ingest", str(cli))):
        code, res, err = run(capsys, *args, "--qdrant-url", url)
        assert (code, res["kind"], res["type"]) == (3, "unavailable", "StoreUnavailableError"), (args, res)
        assert f"Qdrant at {url} is unavailable" in res["error"] and "retry later" in err


def test_cli_store_unavailable_mid_query_exits_3(capsys, cli):
    """The collection checks are answered, the search is not: the same exit 3 as a store down at the start
    (it was 1: the outage came back wrapped as a RetrievalError)."""
    with StandinQdrant() as standin:
        assert main(["ingest", str(cli), "--qdrant-url", standin.url, "--json"]) == 0
        capsys.readouterr()
        standin.fault = lambda method, path: 503 if path.endswith("/points/query") else None
        for mode in ("bm25", "hybrid"):
            code, res, _ = run(capsys, "query", "Urlaub", "--mode", mode, "--qdrant-url", standin.url)
            assert (code, res["kind"], res["type"]) == (3, "unavailable", "StoreUnavailableError"), res
            assert "query_points failed 2 times" in res["error"]


def test_cli_ingest_losing_the_store_mid_run_reports_then_exits_3(capsys, cli):
    """What was written is reported and kept; the rest is "not attempted"; a second run finishes the job."""
    with StandinQdrant() as standin:
        upserts = []

        def fail_after_first_write(method: str, path: str) -> int | None:
            if method == "PUT" and path.endswith("/points"):
                upserts.append(path)
                return 503 if len(upserts) > 1 else None
            return None

        standin.fault = fail_after_first_write
        code, report, _ = run(capsys, "ingest", str(cli), "--qdrant-url", standin.url)
        assert code == 3, report
        statuses = [f["status"] for f in report["files"]]
        assert statuses == ["ingested", "failed", "failed"] and report["balanced"], report
        assert "is unavailable" in report["outage"] and "not attempted" in report["files"][2]["error"]
        points, _ = standin.engine.scroll("german_rag", limit=1000)
        assert len(points) == report["points_written"] == report["files"][0]["points_written"] > 0
        standin.fault = None
        code, again, _ = run(capsys, "ingest", str(cli), "--qdrant-url", standin.url)
        assert code == 0 and [f["status"] for f in again["files"]] == ["unchanged", "ingested", "ingested"]


def test_cli_internal_error_exits_70_with_its_traceback(capsys, cli, monkeypatch):
    def broken(args, settings):
        raise RuntimeError("kaputt")

    monkeypatch.setattr(commands, "show_config", broken)
    code, res, err = run(capsys, "config")
    assert (code, res["kind"], res["type"]) == (70, "internal", "InternalError"), res
    assert "Traceback" in err and "internal error: RuntimeError: kaputt" in err


# -- the HTTP service ------------------------------------------------------------------------------------
def assert_error(r: httpx.Response, status: int, name: str, match: str = "") -> None:
    assert r.status_code == status, r.text
    body = r.json()["error"]
    assert body["kind"] == name and match in body["message"], body


@pytest.fixture(scope="module")
def server(minilm_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("errors")
    with live_server(service_settings(minilm_dir, root / "qdrant")) as live:
        yield live


def test_http_usage_is_422_and_an_empty_query_400(server):
    with server.client() as c:
        assert_error(c.post("/v1/retrieve", json={"query": "Urlaub", "filters": {"farbe": "rot"}}), 422, "invalid",
                     "filter field 'farbe' is not filterable")
        assert_error(c.post("/v1/retrieve", json={"query": " \u200b "}), 400, "empty", "query: must not be empty")
        assert_error(c.post("/v1/retrieve", json={"query": "Urlaub", "filters": {"doc_id": "nein"}}), 422,
                     "invalid", "not a document id")


def test_http_input_over_the_token_limit_is_422(server):
    with server.client() as c:
        r = c.post("/v1/retrieve", json={"query": "Urlaub " * 600, "mode": "dense"})
        assert_error(r, 422, "invalid", "over the model's limit")
        assert c.post("/v1/retrieve", json={"query": "Urlaub " * 600, "truncate": True}).status_code == 200


def test_http_internal_is_500_without_details(server):
    app = server.server.config.app

    async def broken() -> None:
        raise InternalError("ingest report does not balance: /geheim/pfad")

    app.add_api_route("/v1/broken", broken)
    with server.client() as c:
        r = c.get("/v1/broken")
        assert_error(r, 500, "internal", "internal error; see the service log")
        assert "/geheim" not in r.text


def test_http_configuration_is_503_without_retry_after(minilm_dir, tmp_path):
    from ingest.store.edge import EdgeStore

    other = EdgeStore(StoreOptions(collection="german_rag", path=str(tmp_path / "qdrant")))
    other.ensure_collection("ein-anderes-modell", 384)
    other.close()
    with live_server(service_settings(minilm_dir, tmp_path / "qdrant")) as live, live.client() as c:
        r = c.post("/v1/retrieve", json={"query": "Urlaub"})
        assert_error(r, 503, "not_ready", "was built with model 'ein-anderes-modell'")
        assert "retry-after" not in r.headers
        assert c.get("/readyz").status_code == 503


def server_settings(model_dir: Path, tmp_path: Path, url: str, **overrides) -> config.Settings:
    return config.load_settings(embed_model=str(model_dir), qdrant_path=str(tmp_path / "q"), qdrant_url=url,
                                offline=True, **overrides)


def test_http_store_unavailable_at_start_is_503(minilm_dir, tmp_path):
    url = free_url()
    settings = server_settings(minilm_dir, tmp_path, url, store_retries=0)
    with live_server(settings) as live, live.client() as c:
        r = c.post("/v1/retrieve", json={"query": "Urlaub"})
        assert_error(r, 503, "not_ready", f"StoreUnavailableError: Qdrant at {url} is unavailable")


def test_http_store_unavailable_mid_run_is_503_with_retry_after(minilm_dir, tmp_path):
    """Ready, then Qdrant goes away: 503 with Retry-After (it was 422: the outage came back as a
    RetrievalError); when it is back, the same request answers again."""
    with StandinQdrant() as standin:
        proxy = FaultProxy(standin.port)
        proxy.start()
        settings = server_settings(minilm_dir, tmp_path, proxy.url, store_retries=1, store_retry_backoff=0.01,
                                   qdrant_timeout=5)
        try:
            with live_server(settings) as live, live.client() as c:
                body = {"query": "Urlaub", "mode": "bm25"}
                assert c.post("/v1/retrieve", json=body).status_code == 200
                proxy.stop()
                r = c.post("/v1/retrieve", json=body)
                assert_error(r, 503, "not_ready", f"Qdrant at {proxy.url} is unavailable")
                assert r.headers["retry-after"] == "10"
                ready = c.get("/readyz")
                assert ready.status_code == 503 and ready.headers["retry-after"] == "10"
                proxy.start()
                assert c.post("/v1/retrieve", json=body).status_code == 200
        finally:
            proxy.stop()


def test_readme_documents_both_tables():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for code in ("`0`", "`1`", "`2`", "`3`", "`70`"):
        assert code in readme, code
    assert "Retry-After" in readme and "EXIT_CODES" in readme and "HTTP_ERRORS" in readme
