"""The CLI under hostile arguments: every bad flag, filter or setting ends with exit 2 and a message that
names where the value came from (flag, environment variable or TOML key), never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ingest.schema import StoreError
from ingest.store.filters import build_filter
from pipelines.cli.main import EXIT_CODES, exit_code
from pipelines.cli.main import main as cli_main
from pipelines.config import ConfigError, UsageError, load_settings
from tests.conftest import ROOT

INT64_MAX = 2**63 - 1


@pytest.fixture()
def cli_env(tmp_path, monkeypatch):
    """A clean settings environment: no model is loaded by the commands these tests run."""
    for name in ("GERMAN_RAG_CONFIG", "GERMAN_RAG_QDRANT_URL", "GERMAN_RAG_CHUNK_TOKENS", "GERMAN_RAG_PORT",
                 "GERMAN_RAG_TOP_K"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GERMAN_RAG_QDRANT_PATH", str(tmp_path / "qdrant"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_cli(capsys, *args: str) -> tuple[int, str]:
    code = cli_main(list(args))
    return code, capsys.readouterr().err


@pytest.mark.parametrize("item", [
    "page=99999999999999999999",
    f"page={INT64_MAX + 1}",
    f"chunk_index={2**64}",
    f"page={-2**63 - 1}",
    "page=-1",
    "chunk_index=-3",
    "page=" + "9" * 5000,  # more digits than int() converts by default: must not escape as ValueError
    "page=" + "0" * 30 + "1" + "0" * 20,  # leading zeros do not hide the size
    "page=²",  # a Unicode digit that str.isdigit() accepts and int() refuses
])
def test_out_of_range_or_odd_filter_integers_exit_2_naming_the_field(capsys, cli_env, item):
    """#10.9: integers in --filter are range-checked at validation (0 .. 2**63-1) -> exit 2, no traceback."""
    code, err = run_cli(capsys, "query", "Kündigungsfrist", "--filter", item)
    field = item.partition("=")[0]
    assert code == 2
    assert f"--filter {field}=" in err and "Traceback" not in err


def test_filter_integer_at_the_limit_is_accepted_by_validation():
    """#10.9: the largest signed 64-bit integer and 0 pass; the range is the engines' own."""
    from pipelines.cli.commands import parse_filters

    assert parse_filters([f"page={INT64_MAX}", "chunk_index=0"]) == {"page": INT64_MAX, "chunk_index": 0}
    assert parse_filters(["page=007", "page=-0"]) == {"page": [7, 0]}


@pytest.mark.parametrize("filters", [{"page": 2**70}, {"chunk_index": [1, 2**64]}, {"page": -2**63 - 1},
                                     {"page": -1}, {"chunk_index": [0, -5]}])
def test_store_filter_refuses_integers_out_of_range(filters):
    """#10.9: build_filter, the one validation every engine's filter passes, refuses out-of-range integers."""
    field = next(iter(filters))
    with pytest.raises(StoreError, match=rf"filter field {field!r}: .* out of range"):
        build_filter(filters)


def test_store_filter_keeps_valid_integers():
    """#10.9: in-range integers still make a filter."""
    assert build_filter({"page": [0, INT64_MAX]}) is not None


def test_filter_integer_past_int64_does_not_reach_the_engine_traceback_free(tmp_path):
    """#10.9: the user's command line as in the issue: no Python traceback, exit 2, the field named."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "GERMAN_RAG_QDRANT_PATH": str(tmp_path / "q"),
           "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "query", "Urlaub", "--filter",
                           "page=99999999999999999999"], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "--filter page=" in proc.stderr


@pytest.mark.parametrize("item", ["page", "=3", "page=", "farbe=rot"])
def test_filter_syntax_errors_are_usage_errors(capsys, cli_env, item):
    """#10.14: a malformed or unknown --filter is bad usage: exit 2 (it was 1, like a failed query)."""
    code, err = run_cli(capsys, "query", "Urlaub", "--filter", item)
    assert code == 2 and "usage error" in err and "--filter" in err


@pytest.mark.parametrize(("args", "flag"), [
    (["ingest", ".", "--chunk-tokens", "-5"], "--chunk-tokens"),
    (["serve", "--port", "99999"], "--port"),
    (["query", "x", "--top-k", "0"], "--top-k"),
    (["ingest", ".", "--max-pages", "-3"], "--max-pages"),
    (["config", "--collection", "böse name"], "--collection"),
])
def test_flag_errors_name_the_flag_not_the_environment(capsys, cli_env, args, flag):
    """#10.14: a bad value given as a flag is reported as that flag; the env var is not blamed."""
    code, err = run_cli(capsys, *args)
    assert code == 2
    assert f"flag {flag}" in err and "GERMAN_RAG_" not in err


def test_env_and_toml_errors_name_their_own_source(capsys, cli_env, monkeypatch):
    """#10.14: from the environment the variable is named; from the file the TOML key and file."""
    monkeypatch.setenv("GERMAN_RAG_PORT", "99999")
    code, err = run_cli(capsys, "config")
    assert code == 2 and "env GERMAN_RAG_PORT" in err and "flag" not in err
    monkeypatch.delenv("GERMAN_RAG_PORT")
    (cli_env / "german-rag.toml").write_text("chunk_tokens = -5\n", encoding="utf-8")
    code, err = run_cli(capsys, "config")
    assert code == 2 and "key chunk_tokens in german-rag.toml" in err and "GERMAN_RAG_" not in err


def test_a_valid_flag_overrides_a_bad_env_value(cli_env, monkeypatch):
    """#10.14: the flag wins over a broken GERMAN_RAG_CHUNK_TOKENS, so nothing is reported."""
    monkeypatch.setenv("GERMAN_RAG_CHUNK_TOKENS", "viele")
    settings = load_settings(None, flags={"chunk_tokens": "--chunk-tokens"}, chunk_tokens=128)
    assert settings.chunk_tokens == 128


def test_error_kinds_map_to_exit_codes_in_one_table():
    """#10.14, #11.3: one table maps error kinds to exit codes; a class finds its row by its kind."""
    from ingest.schema import IngestError, ModelUnavailableError
    from ingest.store.base import StoreUnavailableError
    from retrieval.schema import RetrievalError

    assert exit_code(UsageError("x"))[0] == 2
    assert exit_code(ConfigError("x"))[0] == 2
    assert exit_code(ModelUnavailableError("x"))[0] == 2
    assert exit_code(StoreError("x"))[0] == 2
    assert exit_code(RetrievalError("x"))[0] == 2  # a bad retrieval argument is bad usage
    assert exit_code(StoreUnavailableError("x"))[0] == 3
    assert exit_code(IngestError("x"))[0] == 70  # a bare IngestError is a broken invariant (internal)
    assert exit_code(RuntimeError("x"))[0] == 70
    assert {code for code, _ in EXIT_CODES.values()} == {1, 2, 3, 70}
