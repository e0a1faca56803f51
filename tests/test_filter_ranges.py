"""#13.4: filters on the document fields and on user metadata (`meta.KEY`), with ranges on dates and numbers,
give the same points on the edge engine, qdrant-client's local mode and a server (the REST stand-in); the
engines keep payload indexes for the document fields and for every declared user field, also on a collection
made before a field was declared.

Five documents of two chunks each carry document fields as the runner writes them (`upsert_chunks(fields=)`)
and user fields parsed by the declared schema (MetaSchema.values); every filter's expected documents are
written out by hand.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ingest.meta_fields import MetaSchema
from ingest.schema import FILTER_FIELDS, P
from ingest.store.base import StoreOptions
from ingest.store.edge import EdgeStore
from ingest.store.filters import FilterError
from ingest.store.qdrant import QdrantStore
from tests.standin.qdrant_rest import StandinQdrant
from tests.test_store_engines import DIM, make_chunks, unit_vector

DECLARED = {"projekt": "keyword", "budget": "float", "seiten": "integer", "frist": "datetime", "geprueft": "bool"}
SCHEMA = MetaSchema.of(DECLARED)

# doc id -> (document fields, user fields as a sidecar or --meta would give them: text or JSON scalars)
DOCS: dict[str, tuple[dict, dict]] = {
    "mietvertrag": ({P.TITLE: "Mietvertrag Hauptstraße", P.AUTHOR: "Müller", P.FILE_TYPE: "pdf",
                     P.FILE_SIZE: 1200, P.MODIFIED: "2023-03-01T10:00:00Z", P.PAGES: 3, P.LANGUAGE: "de",
                     P.DATE: "2023-01-01", P.DATE_PHRASE: "Stand: 1. Januar 2023"},
                    {"projekt": "Alpha", "budget": "1500,5", "seiten": "3", "frist": "2023-06-30", "geprueft": "ja",
                     "abteilung": "Recht", "nummer": 7}),
    "kuendigung": ({P.TITLE: "Kündigung", P.AUTHOR: "Schmidt", P.FILE_TYPE: "docx", P.FILE_SIZE: 800,
                    P.MODIFIED: "2023-12-31T23:30:00+00:00", P.PAGES: 1, P.LANGUAGE: "de", P.DATE: "2023-12-31"},
                   {"projekt": "Beta", "budget": 99.0, "seiten": 1, "frist": "2024-01-15T12:00:00+01:00",
                    "geprueft": False, "abteilung": "Personal"}),
    "bericht": ({P.TITLE: "Jahresbericht", P.FILE_TYPE: "pdf", P.FILE_SIZE: 5_000_000,
                 P.MODIFIED: "2024-02-01T08:00:00Z", P.PAGES: 120, P.LANGUAGE: "de", P.DATE: "2024-02-01"},
                {"projekt": "Alpha", "budget": 25000, "seiten": 120, "geprueft": "nein"}),
    "notiz": ({P.TITLE: "Notiz", P.FILE_TYPE: "txt", P.FILE_SIZE: 42, P.MODIFIED: "2022-06-15T09:00:00Z",
               P.LANGUAGE: "en"},  # no date in the text, no page count
              {"abteilung": "Recht"}),
    "alt": ({}, {}),  # a point from before document fields existed: no field matches, no range includes it
}
ALL = set(DOCS)


def doc_fields(name: str) -> dict:
    fields, meta = DOCS[name]
    return {**fields, P.META: SCHEMA.values(meta)} if meta else dict(fields)


def write_docs(store) -> None:
    for name in DOCS:
        texts = [f"{name} Teil {i}: Mietrecht und Kündigungsfristen" for i in range(2)]
        store.upsert_chunks(make_chunks(f"{name}.txt", name, texts), [unit_vector(t) for t in texts],
                            [([0, 1 + i], [1.0, 0.5]) for i in range(2)], doc_hash=name, fields=doc_fields(name))


@pytest.fixture(scope="module", params=["edge", "local", "rest"])
def store(request, tmp_path_factory) -> Iterator[EdgeStore | QdrantStore]:
    declared = tuple(DECLARED.items())
    if request.param == "rest":
        with StandinQdrant() as standin:
            s: EdgeStore | QdrantStore = QdrantStore(StoreOptions(collection="felder", url=standin.url, path=None,
                                                                  retries=0, meta_fields=declared))
            s.ensure_collection("modell", DIM)
            write_docs(s)
            s.standin = standin  # type: ignore[union-attr]
            yield s
            s.close()
        return
    options = StoreOptions(collection="felder", path=str(tmp_path_factory.mktemp(request.param)),
                           meta_fields=declared)
    s = EdgeStore(options) if request.param == "edge" else QdrantStore(options)
    s.ensure_collection("modell", DIM)
    write_docs(s)
    yield s
    s.close()


def found(store, filters: dict) -> set[str]:
    """The documents a filtered dense search, sparse search and count agree on."""
    n = 2 * len(DOCS)
    dense = {h.payload[P.DOC_ID] for h in store.search_dense(unit_vector("Frage"), n, filters)}
    sparse = {h.payload[P.DOC_ID] for h in store.search_sparse([0], [1.0], n, filters)}
    assert dense == sparse, (dense, sparse)
    assert store.count(filters) == 2 * len(dense)
    return dense


CASES: list[tuple[dict, set[str]]] = [
    # document fields: keyword, integer and datetime, values and ranges
    ({P.FILE_TYPE: "pdf"}, {"mietvertrag", "bericht"}),
    ({P.FILE_TYPE: ["docx", "txt"]}, {"kuendigung", "notiz"}),
    ({P.TITLE: "Kündigung"}, {"kuendigung"}),
    ({P.AUTHOR: "Müller"}, {"mietvertrag"}),
    ({P.LANGUAGE: "en"}, {"notiz"}),
    ({P.FILE_SIZE: {"gt": 800}}, {"mietvertrag", "bericht"}),
    ({P.FILE_SIZE: {"gte": 800}}, {"mietvertrag", "kuendigung", "bericht"}),
    ({P.FILE_SIZE: {"lt": 800}}, {"notiz"}),
    ({P.FILE_SIZE: {"lte": 800, "gt": 42}}, {"kuendigung"}),
    ({P.PAGES: {"gte": 2, "lte": 120}}, {"mietvertrag", "bericht"}),
    ({P.PAGES: 1}, {"kuendigung"}),
    ({P.DATE: {"gte": "2023-01-01"}}, {"mietvertrag", "kuendigung", "bericht"}),
    ({P.DATE: {"gt": "2023-01-01"}}, {"kuendigung", "bericht"}),
    ({P.DATE: {"gte": "2023-01-01", "lt": "2024-01-01"}}, {"mietvertrag", "kuendigung"}),
    ({P.DATE: {"lte": "2023-12-31T00:00:00Z"}}, {"mietvertrag", "kuendigung"}),
    ({P.DATE: "2023-12-31"}, {"kuendigung"}),  # equality on a date: the same day
    ({P.DATE: ["2023-01-01", "2024-02-01"]}, {"mietvertrag", "bericht"}),
    # 23:30 UTC on New Year's Eve is 00:30 on 1 January in Berlin: the offset counts
    ({P.MODIFIED: {"gte": "2024-01-01T00:00:00+01:00"}}, {"kuendigung", "bericht"}),
    ({P.MODIFIED: {"gte": "2024-01-01"}}, {"bericht"}),
    ({P.MODIFIED: {"lt": "2023-01-01"}}, {"notiz"}),
    # declared user fields: each kind, parsed from text the way they were stored
    ({"meta.projekt": "Alpha"}, {"mietvertrag", "bericht"}),
    ({"meta.budget": {"gt": 1000}}, {"mietvertrag", "bericht"}),
    ({"meta.budget": {"lte": "1500,5"}}, {"mietvertrag", "kuendigung"}),
    ({"meta.budget": 1500.5}, {"mietvertrag"}),
    ({"meta.seiten": {"gte": "3"}}, {"mietvertrag", "bericht"}),
    ({"meta.seiten": "1"}, {"kuendigung"}),
    ({"meta.frist": {"gte": "2023-07-01"}}, {"kuendigung"}),
    ({"meta.frist": {"lt": "2024-01-15T12:00:00+01:00"}}, {"mietvertrag"}),
    ({"meta.frist": {"lte": "2024-01-15T11:00:00Z"}}, {"mietvertrag", "kuendigung"}),
    ({"meta.geprueft": True}, {"mietvertrag"}),
    ({"meta.geprueft": "nein"}, {"kuendigung", "bericht"}),
    ({"meta.geprueft": [True, False]}, {"mietvertrag", "kuendigung", "bericht"}),
    # undeclared user fields: keywords (a string, or a JSON number as stored)
    ({"meta.abteilung": "Recht"}, {"mietvertrag", "notiz"}),
    ({"meta.nummer": 7}, {"mietvertrag"}),
    ({"meta.fehlt": "x"}, set()),
    # ranges AND with other fields
    ({P.FILE_TYPE: "pdf", P.DATE: {"lt": "2024-01-01"}, "meta.projekt": "Alpha"}, {"mietvertrag"}),
]


@pytest.mark.parametrize(("filters", "want"), CASES, ids=[str(c[0]) for c in CASES])
def test_filters_select_the_same_documents_on_every_engine(store, filters, want):
    assert found(store, filters) == want


def test_user_fields_are_stored_as_their_declared_kind(store):
    payloads = {p[P.DOC_ID]: p for _, p, _ in store.scan([P.DOC_ID, P.META])}
    assert payloads["mietvertrag"][P.META] == {"projekt": "Alpha", "budget": 1500.5, "seiten": 3,
                                               "frist": "2023-06-30", "geprueft": True, "abteilung": "Recht",
                                               "nummer": 7}
    assert payloads["kuendigung"][P.META]["frist"] == "2024-01-15T11:00:00Z"  # normalised to UTC


@pytest.mark.parametrize(("filters", "match"), [
    ({P.TITLE: {"gte": "A"}}, r"filter field 'title' is a keyword: a range"),
    ({"meta.abteilung": {"gte": "A"}}, r"'meta.abteilung' is a keyword: a range .* \(declare it in meta_fields\)"),
    ({"meta.geprueft": {"gte": True}}, r"'meta.geprueft' is a bool: a range"),
    ({P.DATE: {"gte": "01.01.2023"}}, r"filter field 'date' needs an ISO date"),
    ({P.DATE: {"ab": "2023-01-01"}}, r"filter field 'date': a range takes the bounds"),
    ({P.DATE: {}}, r"filter field 'date': a range takes the bounds"),
    ({P.FILE_SIZE: {"gte": 1.5}}, r"filter field 'file_size' needs an integer"),
    ({"meta.seiten": {"gte": "drei"}}, r"meta field 'seiten' \(integer\): 'drei' is not an integer"),
    ({"meta.frist": "morgen"}, r"meta field 'frist' \(datetime\): 'morgen' is not an ISO date"),
    ({"meta.abteilung": 1.5}, r"declare it in meta_fields to filter by a float"),
    ({"meta.a.b": "x"}, r"filter field 'meta.a.b': meta field 'a.b': a key has"),
    ({P.DATE_PHRASE: "Stand"}, r"filter field 'date_phrase' is not filterable"),
])
def test_bad_filters_name_the_field(store, filters, match):
    with pytest.raises(FilterError, match=match):
        store.count(filters)


def payload_indexes(store) -> dict[str, str]:
    """Field -> index type, as the engine reports them (edge) or as the server was asked (the stand-in)."""
    if isinstance(store, EdgeStore):
        return {k: str(v.data_type).rsplit(".", 1)[-1].lower() for k, v in store.shard.info().payload_schema.items()}
    return dict(store.standin.indexes["felder"])  # type: ignore[attr-defined]


def test_indexes_cover_document_fields_and_declared_user_fields(store):
    if isinstance(store, QdrantStore) and not store.options.url:
        pytest.skip("local mode keeps no payload indexes")
    want = {**FILTER_FIELDS, **{f"meta.{k}": v for k, v in DECLARED.items()}}
    assert payload_indexes(store) == want


@pytest.mark.parametrize("engine", ["edge", "rest"])
def test_a_field_declared_later_gets_its_index_when_the_collection_is_opened(tmp_path, engine):
    """An older collection (made before `frist` was declared, or before document fields existed) gains the
    missing indexes on open; the points written before are then found by a range on the new field."""
    def opened(options: StoreOptions) -> EdgeStore | QdrantStore:
        s = EdgeStore(options) if engine == "edge" else QdrantStore(options)
        s.ensure_collection("modell", DIM)
        return s

    with StandinQdrant() as standin:
        base = dict(collection="felder", retries=0, **({"url": standin.url, "path": None} if engine == "rest"
                                                       else {"path": str(tmp_path)}))
        old = opened(StoreOptions(**base))
        old.upsert_chunks(make_chunks("a.txt", "mietvertrag", ["Text"]), [unit_vector("Text")],
                          fields={P.META: {"frist": "2023-06-30"}})
        old.close()
        new = opened(StoreOptions(**base, meta_fields=(("frist", "datetime"),)))
        new.standin = standin  # type: ignore[union-attr]
        indexes = payload_indexes(new)
        assert indexes["meta.frist"] == "datetime" and indexes[P.DATE] == "datetime"
        assert new.count({"meta.frist": {"gte": "2023-01-01"}}) == 1
        new.close()
