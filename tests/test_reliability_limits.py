"""Input limits at every boundary: queries, filters, top_k, collection names, ingest limit settings."""

from __future__ import annotations

import pytest

from ingest.limits import Limits
from ingest.schema import StoreError
from ingest.store.base import StoreOptions
from ingest.store.filters import build_filter
from pipelines.cli.commands import parse_filters
from pipelines.cli.main import main
from pipelines.config import ConfigError, UsageError, load_settings
from retrieval.query_check import MAX_QUERY_CHARS, check_query, check_top_k
from retrieval.schema import RetrievalError


@pytest.mark.parametrize("query", ["", "   ", "\x00\x01\x02", "\x1b\x07\x7f", "\n\t"])
def test_empty_or_control_only_queries_are_rejected(query):
    with pytest.raises(RetrievalError, match=r"query: must not be empty"):
        check_query(query)


def test_query_control_characters_are_dropped_and_length_is_bounded():
    assert check_query("  Kündigung\x00frist\x07 ") == "Kündigungfrist"
    assert check_query("Zeile\neins\tzwei") == "Zeile\neins\tzwei"
    with pytest.raises(RetrievalError, match=rf"more than the {MAX_QUERY_CHARS} allowed"):
        check_query("a" * (MAX_QUERY_CHARS + 1))
    with pytest.raises(RetrievalError, match=r"query: must be a string"):
        check_query(b"bytes")  # type: ignore[arg-type]  # the wrong type is the input under test


@pytest.mark.parametrize("top_k", [0, -1, 101, True, 2.5, "5", None])
def test_top_k_out_of_bounds_is_rejected(top_k):
    with pytest.raises(RetrievalError, match=r"top_k: must be an integer from 1 to 100"):
        check_top_k(top_k)  # type: ignore[arg-type]  # wrong types are among the inputs under test


def test_filters_with_unknown_keys_or_wrong_types_are_rejected():
    with pytest.raises(StoreError, match=r"filter field 'autor' is not filterable"):
        build_filter({"autor": "x"})
    with pytest.raises(StoreError, match=r"filter field 'page' needs an integer, got '3'"):
        build_filter({"page": "3"})
    with pytest.raises(StoreError, match=r"filter field 'page' needs an integer, got True"):
        build_filter({"page": True})
    with pytest.raises(StoreError, match=r"filter field 'source' needs a string, got 5"):
        build_filter({"source": [5]})
    with pytest.raises(UsageError, match=r"--filter autor=x: filter field 'autor' is not filterable"):
        parse_filters(["autor=x"])
    with pytest.raises(UsageError, match=r"--filter page='drei': needs an integer"):
        parse_filters(["page=drei"])
    with pytest.raises(UsageError, match=r"expected FIELD=VALUE"):
        parse_filters(["page"])


@pytest.mark.parametrize("name", ["", "-x", "a/b", "a b", "ä", "x" * 64, "../etc", "name\x00"])
def test_bad_collection_names_are_rejected_in_settings_and_store(name):
    with pytest.raises(ConfigError, match=r"collection .*must be 1-63 letters"):
        load_settings(None, collection=name)
    with pytest.raises(StoreError, match=r"collection name .* is invalid"):
        StoreOptions(collection=name)


def test_limit_settings_are_validated(settings_env, capsys):
    with pytest.raises(ValueError, match=r"limit max_pages must be >= 0"):
        Limits(max_pages=-1)
    with pytest.raises(ConfigError, match=r"parse_timeout .*greater than or equal to 0"):
        load_settings(None, parse_timeout=-1)
    assert main(["ingest", str(settings_env), "--max-pages", "-3"]) == 2
    assert "max_pages" in capsys.readouterr().err
