"""The doors of context packing: `german-rag context` (CLI), POST /v1/context (a real server with two tenants'
keys) and pipelines.api.build_context (real MiniLM). Real parsing, models and embedded stores."""

from __future__ import annotations

import json

import pytest

from pipelines.api import build_context, ingest_paths
from pipelines.cli.main import main
from pipelines.config import Settings
from retrieval.prompt import PromptError
from retrieval.tokens import EstimateCounter, TokenizerCounter, TokenizerError
from tests.test_api import LAWS
from tests.test_service import assert_error
from tests.test_service_support import live_server, service_settings, wait_job

URLAUB = ("# § 3 Dauer des Urlaubs\n\nDer Urlaub beträgt jährlich mindestens 24 Werktage. Als Werktage gelten alle "
          "Kalendertage, die nicht Sonn- oder gesetzliche Feiertage sind. Der Urlaub ist im laufenden Kalenderjahr "
          "zu gewähren und zu nehmen.\n")
GEHEIM = "Vertrieb: Der Rabatt für Großkunden beträgt zwölf Prozent auf den Listenpreis. "
NOT_IN_DOCS = "Das steht nicht in den Unterlagen."


def run_cli(capsys, *argv: str) -> tuple[int, dict]:
    code = main(list(argv))
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip().startswith("{") else {"out": out}


@pytest.fixture()
def cli_store(settings_env, tmp_path, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "urlaub.md").write_text(URLAUB, encoding="utf-8")
    (docs / "vertrieb.txt").write_text(GEHEIM * 3, encoding="utf-8")
    assert main(["ingest", str(docs)]) == 0
    capsys.readouterr()
    return docs


def test_cli_context_json_prompt_and_strategies(cli_store, capsys):
    code, res = run_cli(capsys, "context", "Wie viele Werktage Urlaub?", "--budget", "300", "--json")
    assert code == 0 and res["tokens"] <= 300 and res["strategy"] == "focus" and res["tokenizer"] == "estimate"
    assert res["citations"][0]["number"] == 1 and res["text"].startswith("[1] ")
    assert {"query", "text", "citations", "tokens", "budget", "tokenizer", "strategy", "prompt"} <= set(res)
    for strategy in ("topk", "merge", "expand", "mmr"):
        code, res = run_cli(capsys, "context", "Urlaub Werktage", "--budget", "300", "--strategy", strategy, "--json")
        assert code == 0 and res["strategy"] == strategy and res["tokens"] <= 300, res
    code, res = run_cli(capsys, "context", "Urlaub Werktage", "--budget", "400", "--prompt", "--json")
    assert code == 0 and NOT_IN_DOCS in res["prompt"] and res["text"] in res["prompt"]
    assert res["tokens"] == EstimateCounter().count(res["prompt"]) <= 400
    code, res = run_cli(capsys, "context", "Urlaub", "--budget", "300", "--filter", "file_type=txt", "--json")
    assert code == 0 and res["citations"] and all(c["source"].endswith("vertrieb.txt") for c in res["citations"])
    code, res = run_cli(capsys, "context", "Urlaub Werktage", "--budget", "300", "--mode", "bm25")
    assert code == 0 and "tokens (estimate), strategy focus" in res["out"] and "[1] " in res["out"]


def test_cli_context_errors_exit_2_and_name_the_problem(cli_store, capsys, monkeypatch, tmp_path):
    code, res = run_cli(capsys, "context", "Urlaub", "--budget", "3", "--json")
    assert (code, res["type"]) == (2, "BudgetError") and "budget: 3 tokens" in res["error"]
    code, res = run_cli(capsys, "context", "Urlaub", "--budget", "0", "--json")
    assert code == 2 and "--budget 0" in res["error"]
    monkeypatch.setenv("GERMAN_RAG_CONTEXT_TOKENIZER", str(tmp_path / "fehlt"))
    code, res = run_cli(capsys, "context", "Urlaub", "--json")
    assert (code, res["type"]) == (2, "TokenizerError") and "context_tokenizer" in res["error"]
    monkeypatch.delenv("GERMAN_RAG_CONTEXT_TOKENIZER")
    (tmp_path / "p.txt").write_text("nur {context}", encoding="utf-8")
    monkeypatch.setenv("GERMAN_RAG_CONTEXT_PROMPT", str(tmp_path / "p.txt"))
    code, res = run_cli(capsys, "context", "Urlaub", "--prompt", "--json")
    assert (code, res["type"]) == (2, "PromptError") and "{question}" in res["error"]


@pytest.fixture(scope="module")
def two_tenants(tiny_model_dir, tmp_path_factory):
    from pipelines.service.principals import add_key

    root = tmp_path_factory.mktemp("context-http")
    keys_file = root / "keys.toml"
    keys = {n: add_key(keys_file, t, (), r, n)[0] for n, t, r in (
        ("acme-write", "acme", "write"), ("acme-read", "acme", "read"), ("globex-read", "globex", "read"))}
    settings = service_settings(tiny_model_dir, root / "q", keys_file=str(keys_file), upload_dir=str(root))
    with live_server(settings) as srv, srv.client(keys["acme-write"]) as c:
        files = [("files", ("urlaub.md", URLAUB.encode(), "text/markdown")),
                 ("files", ("vertrieb.txt", (GEHEIM * 3).encode(), "text/plain"))]
        r = c.post("/v1/documents", files=files)
        assert r.status_code == 202, r.text
        assert wait_job(c, r.json()["job_id"])["state"] == "succeeded"
        srv.keys = keys  # type: ignore[attr-defined]
        yield srv


@pytest.mark.parametrize("strategy", ["topk", "merge", "expand", "mmr", "focus"])
def test_http_context_reads_only_the_keys_tenant(two_tenants, strategy):
    body = {"query": "Urlaub Werktage Rabatt Großkunden", "budget": 400, "strategy": strategy}
    with two_tenants.client(two_tenants.keys["acme-read"]) as c:
        r = c.post("/v1/context", json=body)
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["strategy"] == strategy and res["tokens"] <= 400 and res["took_ms"] >= 0
    assert "Werktage" in res["text"] and "Großkunden" in res["text"]
    assert res["citations"] and all(c["source"].startswith("upload:") for c in res["citations"])
    with two_tenants.client(two_tenants.keys["globex-read"]) as c:
        other = c.post("/v1/context", json={**body, "prompt": True}).json()
    assert other["citations"] == [] and other["text"] == ""
    sources = other["prompt"].split("Frage:")[0]  # the question itself names the words
    assert "Werktage" not in sources and "Großkunden" not in sources and "zwölf" not in other["prompt"]


def test_http_context_prompt_and_bad_requests(two_tenants):
    with two_tenants.client(two_tenants.keys["acme-read"]) as c:
        r = c.post("/v1/context", json={"query": "Wie viele Werktage?", "budget": 300, "prompt": True,
                                        "filters": {"file_type": "md"}})
        assert r.status_code == 200, r.text
        res = r.json()
        assert NOT_IN_DOCS in res["prompt"] and res["tokens"] <= 300 and res["context_tokens"] < res["tokens"]
        assert all(c["source"].endswith("urlaub.md") for c in res["citations"])
        assert_error(c.post("/v1/context", json={"query": "Urlaub", "budget": 3}), 422, "invalid", "budget: 3 tokens")
        assert c.post("/v1/context", json={"query": "Urlaub", "budget": 0}).status_code == 422
        assert c.post("/v1/context", json={"query": "Urlaub", "budget": 10**7}).status_code == 422
        assert c.post("/v1/context", json={"query": "Urlaub", "budget": "512"}).status_code == 422
        assert c.post("/v1/context", json={"query": "Urlaub", "strategy": "best"}).status_code == 422
        assert c.post("/v1/context", json={"query": "x" * 100_000}).status_code == 422
        assert c.post("/v1/context", json={"query": "Urlaub", "filters": {"farbe": "rot"}}).status_code == 422
        assert_error(c.post("/v1/context", json={"query": "   "}), 400, "empty")
    with two_tenants.client() as c:
        assert c.post("/v1/context", json={"query": "Urlaub"}).status_code == 401


@pytest.fixture()
def laws_settings(tmp_path, minilm_dir, monkeypatch) -> Settings:
    monkeypatch.chdir(tmp_path)
    for name in ("GERMAN_RAG_QDRANT_URL", "GERMAN_RAG_CONFIG", "GERMAN_RAG_EMBED_MODEL", "GERMAN_RAG_QDRANT_PATH"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(embed_model=str(minilm_dir), qdrant_path=str(tmp_path / "qdrant"), collection="handbuch")
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in LAWS.items():
        (docs / name).write_text(text, encoding="utf-8")
    assert ingest_paths(settings, [str(docs)], progress=False).summary()["failed"] == 0
    return settings


def test_api_build_context_with_minilm_and_its_tokenizer(laws_settings, minilm_dir):
    ctx = build_context(laws_settings, "Wie viele Werktage Urlaub stehen mir zu?", budget=200)
    assert ctx.citations[0].source.endswith("urlaub.md") and "24 Werktage" in ctx.text
    assert ctx.citations[0].heading_path == ("§ 3 Dauer des Urlaubs",) and ctx.tokens <= 200
    exact = laws_settings.model_copy(update={"context_tokenizer": str(minilm_dir)})
    counted = build_context(exact, "Wie viele Werktage Urlaub?", budget=400, prompt=True, strategy="topk")
    assert counted.tokenizer.endswith("tokenizer.json") and counted.prompt is not None
    assert counted.tokens == TokenizerCounter(minilm_dir).count(counted.prompt) <= 400
    with pytest.raises(TokenizerError, match="context_tokenizer"):
        build_context(laws_settings.model_copy(update={"context_tokenizer": "/nirgends"}), "Urlaub")
    with pytest.raises(PromptError, match="context_prompt"):
        build_context(laws_settings.model_copy(update={"context_prompt": "/nirgends.txt"}), "Urlaub", prompt=True)
