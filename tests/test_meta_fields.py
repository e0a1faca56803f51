"""#13.4: user metadata keys and values with declared kinds (ingest/meta_fields.py), the `meta_fields` setting,
and the CLI's `--filter` syntax with ranges (`date>=2023-01-01`): what is parsed, what is refused (exit 2
naming the item), and a range through a real ingest and query."""

from __future__ import annotations

import json

import pytest

from ingest.meta_fields import MetaFieldError, MetaSchema
from ingest.schema import StoreError
from ingest.store.base import StoreOptions
from ingest.store.filters import FilterError, build_filter, check_filter_value
from pipelines.cli.filter_args import parse_filters
from pipelines.cli.main import main
from pipelines.config import ConfigError, load_settings

SCHEMA = MetaSchema.of({"projekt": "keyword", "budget": "float", "seiten": "integer", "frist": "datetime",
                        "geprueft": "bool"})


@pytest.mark.parametrize(("key", "raw", "stored"), [
    ("projekt", "Alpha", "Alpha"),
    ("projekt", 42, "42"),  # a declared keyword: a sidecar's number is its text (the filter projekt=42 finds it)
    ("budget", "1500,5", 1500.5),  # German decimal comma
    ("budget", "2.5e3", 2500.0),
    ("budget", 7, 7.0),
    ("seiten", " 12 ", 12),
    ("seiten", 3.0, 3),
    ("frist", "2024-03-01", "2024-03-01"),  # a date stays a date: both engines' ranges read it as midnight UTC
    ("frist", "2024-03-01T10:00", "2024-03-01T10:00:00Z"),
    ("frist", "2024-03-01T10:00:00+01:00", "2024-03-01T09:00:00Z"),
    ("frist", "2024-03-01 10:00:00z", "2024-03-01T10:00:00Z"),
    ("geprueft", "Ja", True),
    ("geprueft", "nein", False),
    ("geprueft", "1", True),
    ("geprueft", 0, False),
    ("undeklariert", "Text", "Text"),
    ("undeklariert", 7, 7),  # undeclared: a JSON number or bool stays as it is
    ("undeklariert", 2.5, 2.5),
    ("undeklariert", True, True),
    ("größe", "XL", "XL"),  # letters of any script
    ("ab-c_1", "x", "x"),
])
def test_values_are_stored_as_their_declared_kind(key, raw, stored):
    value = SCHEMA.value(key, raw)
    assert value == stored and type(value) is type(stored)


@pytest.mark.parametrize(("key", "raw", "match"), [
    ("seiten", "drei", r"meta field 'seiten' \(integer\): 'drei' is not an integer"),
    ("seiten", "3.5", r"'seiten' \(integer\): '3.5' is not an integer"),
    ("seiten", "²", r"'seiten' \(integer\): '²' is not an integer"),
    ("seiten", True, r"'seiten' \(integer\): True is not an integer"),
    ("seiten", 2**63, r"'seiten' \(integer\): 9223372036854775808 is out of range"),
    ("budget", "nan", r"'budget' \(float\): 'nan' is not a finite number"),
    ("budget", "1.000,5", r"'budget' \(float\): '1.000,5' is not a finite number"),
    ("frist", "01.03.2024", r"'frist' \(datetime\): '01.03.2024' is not an ISO date"),
    ("frist", "2024-02-30", r"'frist' \(datetime\): '2024-02-30' is not a valid date"),
    ("geprueft", "vielleicht", r"'geprueft' \(bool\): 'vielleicht' is not one of true/false, ja/nein, 1/0"),
    ("projekt", ["a", "b"], r"meta field 'projekt': a list is not a value"),
    ("undeklariert", {"a": 1}, r"meta field 'undeklariert': a dict is not a value"),
    ("undeklariert", None, r"no value \(null\)"),
    ("undeklariert", "x" * 1001, r"1001 characters, at most 1000"),
    ("undeklariert", "\udcff", r"is not valid text"),
    ("a.b", "x", r"meta field 'a.b': a key has 1-64 letters, digits, '_' or '-'"),
    ("a b", "x", r"meta field 'a b': a key has"),
    ("", "x", r"meta field '': a key has"),
    ("x" * 65, "x", r"a key has 1-64"),
])
def test_bad_keys_and_values_name_the_key_and_what_is_wrong(key, raw, match):
    with pytest.raises(MetaFieldError, match=match):
        SCHEMA.value(key, raw)


def test_values_of_a_mapping_leave_nulls_out():
    assert SCHEMA.values({"seiten": "4", "projekt": None, "x": "y"}) == {"seiten": 4, "x": "y"}
    assert SCHEMA.kind("seiten") == "integer" and SCHEMA.kind("sonstiges") == "keyword"


def test_meta_fields_setting_from_toml_and_env(tmp_path, monkeypatch):
    monkeypatch.delenv("GERMAN_RAG_META_FIELDS", raising=False)
    toml = tmp_path / "german-rag.toml"
    toml.write_text('[meta_fields]\nprojekt = "keyword"\nfrist = "datetime"\n', encoding="utf-8")
    settings = load_settings(toml)
    assert settings.meta_schema.declared == (("frist", "datetime"), ("projekt", "keyword"))
    monkeypatch.setenv("GERMAN_RAG_META_FIELDS", '{"seiten": "integer", "frist": "keyword"}')
    # the environment's entries are merged over the file's table (pydantic-settings merges dict settings)
    assert load_settings(toml).meta_fields == {"frist": "keyword", "projekt": "keyword", "seiten": "integer"}
    for bad, named in [('{"seiten": "zahl"}', "kind 'zahl' is not one of"), ('{"a.b": "keyword"}', "'a.b': a key"),
                       ("kein json", "meta_fields")]:
        monkeypatch.setenv("GERMAN_RAG_META_FIELDS", bad)
        with pytest.raises(ConfigError, match="meta_fields") as exc:
            load_settings(toml)
        assert named in str(exc.value)


def test_store_options_check_declared_fields():
    assert StoreOptions(meta_fields=(("b", "bool"), ("a", "float"))).meta_fields == (("a", "float"), ("b", "bool"))
    assert StoreOptions(meta_fields=(("a", "float"),)).index_fields()["meta.a"] == "float"
    with pytest.raises(StoreError, match="meta_fields: meta field 'a': kind 'text'"):
        StoreOptions(meta_fields=(("a", "text"),))


def test_range_values_are_normalised_and_checked_once():
    assert check_filter_value("date", {"gte": "2023-01-01", "lt": "2024-01-01T01:00:00+01:00"}) == \
        {"gte": "2023-01-01", "lt": "2024-01-01T00:00:00Z"}
    assert check_filter_value("meta.seiten", {"gt": "3"}, schema=SCHEMA) == {"gt": 3}
    spec = build_filter({"meta.frist": "2024-03-01"}, SCHEMA)  # equality on a datetime: a closed range
    assert spec is not None and spec.must[0].range is not None and spec.must[0].range.gte == "2024-03-01"
    with pytest.raises(FilterError, match=r"'meta.seiten' is a keyword: a range .* \(declare it in meta_fields\)"):
        build_filter({"meta.seiten": {"gt": 3}})  # not declared here: a keyword


# -- the CLI -------------------------------------------------------------------------------------------------
def test_cli_filter_items_parse_to_values_and_ranges():
    got = parse_filters(["date>=2023-01-01", "date<2024-01-01", "page=3", "page=4", "file_size>1000",
                         "meta.budget<=1500,5", "meta.projekt=Alpha", "modified<2024-01-01T10:00+01:00"], SCHEMA)
    assert got == {"date": {"gte": "2023-01-01", "lt": "2024-01-01"}, "page": [3, 4], "file_size": {"gt": 1000},
                   "meta.budget": {"lte": 1500.5}, "meta.projekt": "Alpha",
                   "modified": {"lt": "2024-01-01T09:00:00Z"}}


@pytest.mark.parametrize(("items", "named"), [
    (["date>=01.01.2023"], "--filter date>=01.01.2023: filter field 'date' needs an ISO date"),
    (["title>=A"], "--filter title>=A: filter field 'title' is a keyword: a range"),
    (["date>2023-01-01", "date>2023-02-01"], "--filter date>2023-02-01: filter field 'date': the bound gt is given"),
    (["page=3", "page>=2"], "--filter page>=2: filter field 'page': give either values (=) or a range"),
    (["page>=2", "page=3"], "--filter page=3: filter field 'page': give either values (=) or a range"),
    (["meta.projekt<5"], "--filter meta.projekt<5: filter field 'meta.projekt' is a keyword: a range"),
    (["meta.seiten>=drei"], "--filter meta.seiten>=drei: filter field 'meta.seiten': meta field 'seiten' (integer)"),
    (["meta.a.b=1"], "--filter meta.a.b=1: filter field 'meta.a.b': meta field 'a.b': a key has"),
    (["file_size>groß"], "--filter file_size='groß': needs an integer"),
    ([">=3"], "--filter '>=3': expected FIELD=VALUE, FIELD>=VALUE"),
    (["date>="], "--filter 'date>=': expected FIELD=VALUE"),
    (["date_phrase=Stand"], "filter field 'date_phrase' is not filterable"),
])
def test_bad_cli_filters_exit_2_naming_the_item(capsys, settings_env, monkeypatch, items, named):
    monkeypatch.setenv("GERMAN_RAG_META_FIELDS", json.dumps(SCHEMA.as_dict()))
    args = ["query", "Urlaub"] + [arg for item in items for arg in ("--filter", item)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err


def test_a_range_through_ingest_and_query(capsys, settings_env, fixtures, monkeypatch):
    """A real ingest and query: `chunk_index<2` keeps the first two chunks of each file, a date range runs."""
    monkeypatch.setenv("GERMAN_RAG_META_FIELDS", '{"frist": "datetime"}')
    folder = settings_env / "docs"
    folder.mkdir()
    (folder / "burlg.md").write_text((fixtures / "gesetze/b/burlg/index.md").read_text(encoding="utf-8"))
    assert main(["ingest", str(folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["chunks"] > 2
    assert main(["query", "Urlaub Werktage", "--mode", "bm25", "--top-k", "10", "--filter", "chunk_index<2",
                 "--json"]) == 0
    passages = json.loads(capsys.readouterr().out)["passages"]
    assert sorted(p["chunk_index"] for p in passages) == [0, 1]
    assert main(["query", "Urlaub", "--mode", "bm25", "--filter", "date>=2023-01-01", "--filter",
                 "meta.frist<2030-01-01", "--json"]) == 0
    assert isinstance(json.loads(capsys.readouterr().out)["passages"], list)
