"""#12, the security property: whatever the tenants, groups, documents and user filters, a scoped store returns
exactly the points its principal may see that match the filter, and never another one.

Hypothesis draws tenants (the default one, unicode names), groups (empty lists too), documents with access
fields or without them (legacy points: written, then their fields nulled as an old collection has them) and
principals (the owner, tenants with groups, a tenant's ingest that sees every group). Every read path of the
store is compared with a pure-Python model of the visibility rule (`tenant = T AND (groups empty OR groups ∩ G)`,
no fields = tenant `default`) and of the filter semantics: the dict filters users send (fields naming `tenant`
or `groups` themselves, empty lists) through search (dense, sparse, hybrid), count and scroll; arbitrary
FilterSpec trees (nested should, must_not, is-empty conditions) through the engine's own scroll and count;
fetch_chunks, sources, doc_states; and a scoped delete and access update change exactly the visible points.
On both embedded engines and through the REST stand-in of a server. One store per engine, emptied per example.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from ingest.schema import DEFAULT_TENANT, FILTER_FIELDS, Access, P
from ingest.store.access import OWNER, Principal
from ingest.store.base import StoreOptions
from ingest.store.edge import EdgeStore
from ingest.store.engine import EngineStore
from ingest.store.filters import Condition, FilterSpec, FilterValue, Range, build_filter, match_filter
from ingest.store.qdrant import QdrantStore
from tests.standin.qdrant_rest import StandinQdrant
from tests.test_store_engines import DIM, make_chunks, unit_vector

SETTINGS = settings(max_examples=50, derandomize=True, deadline=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# -- strategies -------------------------------------------------------------------------------------------
# Each example draws a small world of names first (from fixed pools with the default tenant, look-alikes that
# differ in case, and unicode, plus generated unicode names), then documents, the principal and filters from
# that world: names then collide across documents and principals, which is where access rules can go wrong.
NAME_CHARS = st.characters(categories=("L", "N", "P", "S"))  # printable, no spaces, no surrogates
TENANT_POOL = [DEFAULT_TENANT, "acme", "Müller & Söhne", "東京", "ΔΣ-Gruppe", "Default"]
GROUP_POOL = ["hr", "vertrieb", "Geschäftsführung", "ß", "HR"]
SOURCES = ["a.txt", "Größe.pdf", "upload:b.md"]
HEADINGS = ["Teil", "Abschnitt 0", "Abschnitt 1", "Abschnitt 2"]


def names(pool: list[str], size: int) -> st.SearchStrategy[list[str]]:
    name = st.one_of(st.sampled_from(pool), st.text(NAME_CHARS, min_size=1, max_size=8))
    return st.lists(name, min_size=1, max_size=size, unique=True)


@dataclass(frozen=True)
class World:
    tenants: list[str]
    groups: list[str]

    def tenant(self) -> st.SearchStrategy[str]:
        return st.sampled_from(self.tenants)

    def group_list(self) -> st.SearchStrategy[list[str]]:
        return st.lists(st.sampled_from(self.groups), max_size=2, unique=True)  # [] included: every user


@dataclass(frozen=True)
class Doc:
    doc_id: str
    source: str
    access: Access | None  # None: a legacy point (no access fields)
    chunks: int
    page: int | None


@dataclass(frozen=True)
class Scenario:
    world: World
    docs: list[Doc]
    principal: Principal


@st.composite
def scenarios(draw) -> Scenario:
    world = World(draw(names(TENANT_POOL, 3)), draw(names(GROUP_POOL, 3)))
    accesses = st.one_of(st.none(), st.builds(lambda t, g: Access(t, tuple(g)), world.tenant(), world.group_list()))
    docs = [Doc(f"d{i}", draw(st.sampled_from(SOURCES)), draw(accesses), draw(st.integers(1, 3)),
                draw(st.sampled_from([None, 0, 1, 2]))) for i in range(draw(st.integers(1, 6)))]
    tenant = st.one_of(world.tenant(), st.just(DEFAULT_TENANT))
    principal = draw(st.one_of(st.just(OWNER), st.builds(
        lambda t, g, every: Principal(t, frozenset(g), every_group=every), tenant, world.group_list(),
        st.sampled_from([False, False, True]))))
    return Scenario(world, docs, principal)


# The fields the documents here carry (the document fields title ... date are absent on these points).
DRAWN_FIELDS = sorted([P.TENANT, P.GROUPS, P.SOURCE, P.DOC_ID, P.HEADING_PATH, P.PAGE, P.CHUNK_INDEX])


def values_of(world: World, key: str) -> st.SearchStrategy:
    """Values a filter on `key` may name: what the documents draw from, and some they never have."""
    return {
        P.TENANT: st.one_of(world.tenant(), st.just(DEFAULT_TENANT)), P.GROUPS: st.sampled_from(world.groups),
        P.SOURCE: st.sampled_from([*SOURCES, "fehlt.txt"]), P.DOC_ID: st.sampled_from([f"d{i}" for i in range(7)]),
        P.HEADING_PATH: st.sampled_from(HEADINGS),
    }.get(key, st.integers(0, 3))  # page, chunk_index


INTEGER_FIELDS = sorted(k for k in DRAWN_FIELDS if FILTER_FIELDS[k] == "integer")
RANGES = st.fixed_dictionaries({}, optional={op: st.integers(0, 3) for op in ("gt", "gte", "lt", "lte")}).filter(bool)


def filter_values(world: World, key: str) -> st.SearchStrategy:
    values = st.one_of(values_of(world, key), st.lists(values_of(world, key), max_size=3))  # []: matches nothing
    return st.one_of(values, RANGES) if key in INTEGER_FIELDS else values  # a range never widens either


def condition(key: str, value: FilterValue) -> Condition:
    return Condition(key, range=Range("integer", **value)) if isinstance(value, dict) else Condition(key, value)


FIELDS = st.sampled_from(DRAWN_FIELDS)


def user_filters(world: World) -> st.SearchStrategy[dict[str, FilterValue] | None]:
    """The dict filters users send: {field: value or [values]}, tenant and groups among the fields."""
    return st.one_of(st.none(), st.lists(FIELDS, min_size=1, max_size=3, unique=True).flatmap(
        lambda keys: st.fixed_dictionaries({k: filter_values(world, k) for k in keys})))


def specs(world: World) -> st.SearchStrategy[FilterSpec]:
    """FilterSpec trees: conditions (values or is-empty) under nested must / must_not / should."""
    conditions = FIELDS.flatmap(lambda key: st.one_of(
        st.builds(condition, st.just(key), filter_values(world, key)), st.just(Condition(key, empty=True))))
    return st.recursive(
        st.builds(lambda c: FilterSpec(must=(c,)), conditions),
        lambda inner: st.builds(
            FilterSpec,
            must=st.lists(st.one_of(conditions, inner), max_size=2).map(tuple),
            must_not=st.lists(conditions, max_size=2).map(tuple),
            should=st.lists(st.one_of(conditions, inner), max_size=3).map(tuple),
        ),
        max_leaves=8,
    )


# -- the model --------------------------------------------------------------------------------------------
def field_values(payload: dict, key: str) -> list:
    """A payload field as the list of values a match looks at (missing and null: none; a list: its items)."""
    value = payload.get(key)
    return [] if value is None else list(value) if isinstance(value, list) else [value]


def holds(clause: Condition | FilterSpec, payload: dict) -> bool:
    if isinstance(clause, FilterSpec):
        return (all(holds(c, payload) for c in clause.must) and not any(holds(c, payload) for c in clause.must_not)
                and (not clause.should or any(holds(c, payload) for c in clause.should)))
    values = field_values(payload, clause.key)
    if clause.empty:
        return not values
    if clause.range is not None:
        r = clause.range
        return any(isinstance(v, int) and (r.gt is None or v > r.gt) and (r.gte is None or v >= r.gte)
                   and (r.lt is None or v < r.lt) and (r.lte is None or v <= r.lte) for v in values)
    wanted = clause.value if isinstance(clause.value, list) else [clause.value]
    return any(v in wanted for v in values)


def visible(principal: Principal, payload: dict) -> bool:
    """The visibility rule, written independently of ingest/store/access.py."""
    if principal.tenant is None:
        return True
    if (payload.get(P.TENANT) or DEFAULT_TENANT) != principal.tenant:
        return False
    groups = field_values(payload, P.GROUPS)
    return principal.every_group or not groups or bool(set(groups) & principal.groups)


# -- engines ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["edge", "local", "rest"])
def store(request, tmp_path_factory) -> Iterator[EdgeStore | QdrantStore]:
    path = str(tmp_path_factory.mktemp(f"access-{request.param}"))
    if request.param == "rest":
        with StandinQdrant() as standin:
            options = StoreOptions(collection="zugriff", url=standin.url, path=None, retries=0)
            s: EdgeStore | QdrantStore = QdrantStore(options)
            s.ensure_collection("modell", DIM)
            yield s
            s.close()
        return
    options = StoreOptions(collection="zugriff", path=path)
    s = EdgeStore(options) if request.param == "edge" else QdrantStore(options)
    s.ensure_collection("modell", DIM)
    yield s
    s.close()


def load(store: EngineStore, docs: list[Doc]) -> dict[str, dict]:
    """Empty the store, write the documents (every chunk shares sparse term 0, so a sparse query reaches all)
    and return every point's payload by id, as the owner reads it back."""
    store._delete(FilterSpec())  # the owner's delete of everything: a fresh store per example
    for doc in docs:
        texts = [f"{doc.doc_id} Teil {i}: Kündigungsfrist" for i in range(doc.chunks)]
        chunks = make_chunks(doc.source, doc.doc_id, texts, doc.page)
        sparse = [([0, 1 + i], [1.0, 0.5]) for i in range(len(texts))]
        store.upsert_chunks(chunks, [unit_vector(t) for t in texts], sparse, access=doc.access or Access())
        if doc.access is None:  # a point from before access fields existed
            for key in (P.TENANT, P.GROUPS):
                store._set_payload(match_filter(P.DOC_ID, doc.doc_id), {key: None})
    stored = {str(r.id): dict(r.payload or {}) for r in store._scroll(None, True)}
    assert len(stored) == sum(d.chunks for d in docs)
    written = {d.doc_id: d.access.payload() if d.access else {P.TENANT: None, P.GROUPS: None} for d in docs}
    for payload in stored.values():  # the model judges stored payloads: they must be what was written
        assert {k: payload.get(k) for k in (P.TENANT, P.GROUPS)} == written[payload[P.DOC_ID]]
    return stored


def expected(stored: dict[str, dict], principal: Principal, spec: FilterSpec | None) -> set[str]:
    return {i for i, p in stored.items() if visible(principal, p) and (spec is None or holds(spec, p))}


def native_count(view: EngineStore, spec: FilterSpec | None) -> int:
    """The engine's own count of a FilterSpec tree (count() takes only a user's dict)."""
    if isinstance(view, EdgeStore):
        import qdrant_edge as qe

        return int(view.shard.count(qe.CountRequest(exact=True, filter=view._native(spec))))
    assert isinstance(view, QdrantStore)
    return int(view._call("count", view.options.collection, count_filter=view._native(spec), exact=True).count)


def check(got: set[str], want: set[str], stored: dict[str, dict], principal: Principal, what: str) -> None:
    leaked = {i for i in got if not visible(principal, stored.get(i, {}))}
    assert not leaked, f"{what}: points the principal may not see: {[stored.get(i) for i in leaked]}"
    assert got == want, f"{what}: missing {want - got}, extra {got - want}"


# -- properties -------------------------------------------------------------------------------------------
@SETTINGS
@given(scenario=scenarios(), data=st.data())
def test_user_filters_never_widen_what_a_principal_sees(store, scenario, data):
    """Searches (dense, sparse, hybrid), count and scroll with a user's dict filter: exactly the visible points
    that match; a filter naming another tenant or group narrows to nothing, never reaches its points."""
    docs, principal = scenario.docs, scenario.principal
    stored = load(store, docs)
    note(f"stored: {stored}")
    view = store.scoped(principal)
    spec = data.draw(user_filters(scenario.world), label="filters")
    want = expected(stored, principal, build_filter(spec))
    n = len(stored) + 1
    q = unit_vector("Kündigungsfrist")
    check({str(r.id) for r in view._scroll(build_filter(spec), [P.SOURCE])}, want, stored, principal, "scroll")
    assert view.count(spec) == len(want)
    check({h.chunk_id for h in view.search_dense(q, n, spec)}, want, stored, principal, "dense")
    check({h.chunk_id for h in view.search_sparse([0], [1.0], n, spec)}, want, stored, principal, "sparse")
    hybrid = view.search_hybrid(q, ([0], [1.0]), n, spec, candidates=n)
    check({h.chunk_id for h in hybrid}, want, stored, principal, "hybrid")


@SETTINGS
@given(scenario=scenarios(), data=st.data())
def test_filter_trees_are_and_ed_with_the_access_filter(store, scenario, data):
    """Any FilterSpec tree (nested should, must_not, is-empty on tenant or groups) reaching the engine's own
    scroll and count selects exactly the visible points that match it."""
    docs, principal = scenario.docs, scenario.principal
    stored = load(store, docs)
    note(f"stored: {stored}")
    view = store.scoped(principal)
    spec = data.draw(specs(scenario.world), label="spec")
    want = expected(stored, principal, spec)
    check({str(r.id) for r in view._scroll(spec, [P.SOURCE])}, want, stored, principal, "scroll")
    assert native_count(view, spec) == len(want)


@SETTINGS
@given(scenario=scenarios(), data=st.data())
def test_listings_fetches_and_deletes_of_a_view_see_only_its_points(store, scenario, data):
    """fetch_chunks, sources and doc_states show only visible points; a view's delete_doc / delete_source and
    access update change exactly the visible points, and every other point stays as it was."""
    docs, principal = scenario.docs, scenario.principal
    stored = load(store, docs)
    note(f"stored: {stored}")
    view = store.scoped(principal)
    mine = expected(stored, principal, None)
    for doc in docs:
        fetched = {p[P.CHUNK_ID] for p in view.fetch_chunks(doc.doc_id, list(range(doc.chunks)))}
        check(fetched, {i for i in mine if stored[i][P.DOC_ID] == doc.doc_id}, stored, principal, "fetch_chunks")
    assert set(view.sources()) == {stored[i][P.SOURCE] for i in mine}
    states = view.doc_states(SOURCES)
    for source in SOURCES:
        want: dict[str, int] = {}
        for i in mine:
            if stored[i][P.SOURCE] == source:
                want[stored[i][P.DOC_ID]] = want.get(stored[i][P.DOC_ID], 0) + 1
        assert states[source].present == want, f"doc_states({source!r})"

    if principal.tenant is not None:  # an access update by the tenant: only its visible points change
        target = data.draw(st.sampled_from(docs)).doc_id
        new = Access(principal.tenant, tuple(data.draw(scenario.world.group_list())))
        changed = {i for i in mine if stored[i][P.DOC_ID] == target}
        assert view.set_access(target, new) == len(changed)
        after = {str(r.id): dict(r.payload or {}) for r in store._scroll(None, True)}
        for i, payload in after.items():
            was = stored[i]
            assert payload == ({**was, **new.payload()} if i in changed else was), f"point {i} after set_access"
        stored = after
        mine = expected(stored, principal, None)

    doc_id = data.draw(st.sampled_from(docs)).doc_id
    source = data.draw(st.sampled_from(SOURCES))
    gone_doc = {i for i in mine if stored[i][P.DOC_ID] == doc_id}
    assert view.delete_doc(doc_id) == len(gone_doc)
    gone_source = {i for i in mine - gone_doc if stored[i][P.SOURCE] == source}
    assert view.delete_source(source) == len(gone_source)
    left = {str(r.id) for r in store._scroll(None, [P.SOURCE])}
    assert left == set(stored) - gone_doc - gone_source


def test_the_model_agrees_with_the_rule_on_hand_picked_points():
    """The model above, checked by hand: a legacy point is the default tenant's; groups narrow; case counts."""
    legacy = {P.TENANT: None, P.GROUPS: None, P.SOURCE: "a.txt"}
    hr = {P.TENANT: "acme", P.GROUPS: ["hr"], P.SOURCE: "b.txt"}
    assert visible(Principal(DEFAULT_TENANT), legacy) and not visible(Principal("Default"), legacy)
    assert not visible(Principal("acme"), hr) and visible(Principal("acme", frozenset({"hr"})), hr)
    assert not visible(Principal("acme", frozenset({"HR"})), hr)
    assert visible(Principal("acme", every_group=True), hr) and visible(OWNER, hr)
    assert holds(FilterSpec(must=(Condition(P.TENANT, empty=True),)), legacy)
    assert not holds(FilterSpec(must=(Condition(P.GROUPS, []),)), hr)  # an empty list matches nothing
    assert holds(FilterSpec(should=(FilterSpec(must_not=(Condition(P.GROUPS, "hr"),)),)), legacy)
