"""Dify's External Knowledge API (`POST /retrieval`) on a real uvicorn server over a real collection (tiny model,
embedded store), with keys of two tenants. Request and response shapes as docs.dify.ai publishes them; errors
in Dify's `{"error_code", "error_msg"}` shape, never a 5xx."""

from __future__ import annotations

import json

import httpx
import pytest

from pipelines.service.principals import add_key
from tests.test_service import assert_error
from tests.test_service_support import live_server, service_settings, wait_job

URLAUB = ("---\ntitle: Urlaubsregelung der Acme\n---\n\n# Urlaub\n\nDer Urlaub beträgt jährlich dreißig Arbeitstage. "
          "Resturlaub verfällt am 31. März des Folgejahres.\n")
KANTINE = "Hausordnung: Die Kantine ist montags bis freitags von elf bis vierzehn Uhr geöffnet. "
VERTRIEB = "Vertrieb: Der Rabatt für Großkunden beträgt zwölf Prozent auf den Listenpreis. Urlaub im Vertrieb. "
QUERY = "Urlaub Kantine Rabatt Großkunden Arbeitstage"
COLLECTION = "german_rag"  # the settings' default: the knowledge_id to enter in Dify
KEYS = {"acme-read": ("acme", "read"), "acme-write": ("acme", "write"), "globex-read": ("globex", "read"),
        "globex-write": ("globex", "write")}
UPLOADS = (("acme-write", "urlaub.md", URLAUB, {"abteilung": "personal", "jahr": 2024}),
           ("acme-write", "kantine.txt", KANTINE * 3, {"abteilung": "verwaltung", "jahr": 2023}),
           ("globex-write", "vertrieb.txt", VERTRIEB * 3, {"abteilung": "vertrieb", "jahr": 2024}))
# The example request of docs.dify.ai ("External Knowledge API", Example Request), as published
SPEC_EXAMPLE = {"knowledge_id": "your-knowledge-id", "query": "What is Dify?",
                "retrieval_setting": {"top_k": 3, "score_threshold": 0.5}}


@pytest.fixture(scope="module")
def dify(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("dify")
    keys_file = root / "keys.toml"
    keys = {name: add_key(keys_file, tenant, (), role, name)[0] for name, (tenant, role) in KEYS.items()}
    with live_server(service_settings(tiny_model_dir, root / "q", keys_file=str(keys_file),
                                      upload_dir=str(root))) as srv:
        for key, name, text, meta in UPLOADS:
            with srv.client(keys[key]) as c:
                r = c.post("/v1/documents", files=[("files", (name, text.encode(), "text/plain"))],
                           data={"meta": json.dumps(meta)})
                assert r.status_code == 202, r.text
                assert wait_job(c, r.json()["job_id"])["state"] == "succeeded"
        srv.keys = keys  # type: ignore[attr-defined]
        yield srv


def _post(srv, body: object, key: str = "acme-read", **kw) -> httpx.Response:
    headers = {"Authorization": f"Bearer {srv.keys[key]}"} if key else {}
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        if isinstance(body, bytes):
            return c.post("/retrieval", content=body, headers={**headers, "Content-Type": "application/json"}, **kw)
        return c.post("/retrieval", json=body, headers=headers, **kw)


def _ask(query: str = QUERY, top_k: int = 20, threshold: float = 0.0, knowledge: str = f"{COLLECTION}:bm25",
         **extra) -> dict:
    return {"knowledge_id": knowledge, "query": query,
            "retrieval_setting": {"top_k": top_k, "score_threshold": threshold}, **extra}


def _records(srv, body: dict, key: str = "acme-read") -> list[dict]:
    r = _post(srv, body, key)
    assert r.status_code == 200, r.text
    return r.json()["records"]


def _sources(srv, key: str = "acme-read", **body) -> set[str]:
    return {rec["metadata"]["source"] for rec in _records(srv, _ask(**body), key)}


def assert_dify_error(r: httpx.Response, status: int, code: int, match: str = "") -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error_code", "error_msg"} and body["error_code"] == code, body
    assert isinstance(body["error_msg"], str) and match in body["error_msg"], body
    assert "Traceback" not in r.text


def test_the_published_example_request_gets_the_published_shapes(dify):
    """Dify's example request as published: its knowledge_id is none of ours (2001, 404); with the served
    collection's name it answers records of exactly content, score, title and metadata (an object)."""
    assert_dify_error(_post(dify, SPEC_EXAMPLE), 404, 2001, "your-knowledge-id")
    body = {**SPEC_EXAMPLE, "knowledge_id": COLLECTION, "query": "Wie viele Arbeitstage Urlaub gibt es?",
            "retrieval_setting": {"top_k": 3, "score_threshold": 0.0}}
    r = _post(dify, body)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json", r.text
    records = r.json()["records"]
    assert set(r.json()) == {"records"} and 0 < len(records) <= 3
    for rec in records:
        assert set(rec) == {"content", "score", "title", "metadata"}, rec
        assert isinstance(rec["content"], str) and rec["content"] and isinstance(rec["score"], float)
        assert isinstance(rec["title"], str) and isinstance(rec["metadata"], dict)
    scores = [rec["score"] for rec in records]
    assert scores == sorted(scores, reverse=True)


def test_records_carry_title_and_provenance(dify):
    """title: the document's title (Markdown front matter), else the file name; metadata: source, page, heading
    path, span, chunk and document ids, stage scores and the document's fields (meta included)."""
    found = _records(dify, _ask())
    records = {rec["metadata"]["source"]: rec for rec in reversed(found)}  # each source's best record
    assert records["upload:urlaub.md"]["title"] == "Urlaubsregelung der Acme"
    assert records["upload:kantine.txt"]["title"] == "kantine.txt"
    meta = records["upload:urlaub.md"]["metadata"]
    assert {"source", "page", "heading_path", "start", "end", "chunk_id", "doc_id", "chunk_index", "scores",
            "document"} <= set(meta)
    assert meta["end"] > meta["start"] >= 0 and meta["page"] is None
    assert ["Urlaub"] in [rec["metadata"]["heading_path"] for rec in found]
    assert meta["document"]["meta"]["abteilung"] == "personal" and meta["document"]["file_type"] == "md"
    assert records["upload:urlaub.md"]["score"] == meta["scores"]["bm25"]


@pytest.mark.parametrize("knowledge", [COLLECTION, f"{COLLECTION}:bm25", f"{COLLECTION}:dense",
                                       f"{COLLECTION}:hybrid"])
def test_another_tenants_key_sees_nothing_of_the_first_tenants_documents(dify, knowledge):
    assert _sources(dify, "acme-read", knowledge=knowledge) == {"upload:urlaub.md", "upload:kantine.txt"}
    assert _sources(dify, "globex-read", knowledge=knowledge) == {"upload:vertrieb.txt"}
    cond = {"conditions": [{"name": "source", "comparison_operator": "is", "value": "upload:urlaub.md"}]}
    assert _sources(dify, "globex-read", knowledge=knowledge, metadata_condition=cond) == set()


def test_top_k_and_score_threshold_apply_to_the_final_score(dify):
    everything = _records(dify, _ask(knowledge=f"{COLLECTION}:dense"))
    assert len(_records(dify, _ask(top_k=1, knowledge=f"{COLLECTION}:dense"))) == 1
    cut = sorted(rec["score"] for rec in everything)[len(everything) // 2]
    kept = _records(dify, _ask(threshold=cut, knowledge=f"{COLLECTION}:dense"))
    assert kept and all(rec["score"] >= cut for rec in kept)
    assert len(kept) == sum(rec["score"] >= cut for rec in everything) < len(everything)


@pytest.mark.parametrize(("cond", "expected"), [
    ({"conditions": [{"name": "abteilung", "comparison_operator": "is", "value": "personal"}]}, {"upload:urlaub.md"}),
    ({"logical_operator": "or", "conditions": [
        {"name": "abteilung", "comparison_operator": "is", "value": "personal"},
        {"name": "meta.abteilung", "comparison_operator": "is", "value": "verwaltung"}]},
     {"upload:urlaub.md", "upload:kantine.txt"}),
    ({"conditions": [{"name": "abteilung", "comparison_operator": "in", "value": ["verwaltung", "vertrieb"]}]},
     {"upload:kantine.txt"}),
    ({"conditions": [{"name": ["jahr"], "comparison_operator": "=", "value": "2023"}]}, {"upload:kantine.txt"}),
    ({"logical_operator": "and", "conditions": [
        {"name": "file_size", "comparison_operator": "≥", "value": 100},
        {"name": "file_size", "comparison_operator": "<", "value": 10_000},
        {"name": "file_type", "comparison_operator": "is", "value": "txt"}]}, {"upload:kantine.txt"}),
    ({"conditions": [{"name": "abteilung", "comparison_operator": "is", "value": "personal"},
                     {"name": "abteilung", "comparison_operator": "is", "value": "verwaltung"}]}, set()),
    ({"logical_operator": None, "conditions": None}, {"upload:urlaub.md", "upload:kantine.txt"}),
    (None, {"upload:urlaub.md", "upload:kantine.txt"}),
])
def test_metadata_conditions_become_filters(dify, cond, expected):
    assert _sources(dify, metadata_condition=cond) == expected


@pytest.mark.parametrize(("cond", "match"), [
    ({"conditions": [{"name": "title", "comparison_operator": "contains", "value": "Urlaub"}]}, "'contains'"),
    ({"conditions": [{"name": "abteilung", "comparison_operator": "not empty"}]}, "'not empty'"),
    ({"conditions": [{"name": "abteilung", "comparison_operator": "is not", "value": "x"}]}, "'is not'"),
    ({"logical_operator": "or", "conditions": [
        {"name": "abteilung", "comparison_operator": "is", "value": "personal"},
        {"name": "file_type", "comparison_operator": "is", "value": "txt"}]}, "'or' across fields"),
    ({"conditions": [{"name": "abteilung", "comparison_operator": "after", "value": "2024-01-01"}]}, "abteilung"),
    ({"conditions": [{"name": "date", "comparison_operator": "before", "value": "gestern"}]}, "ISO date"),
    ({"conditions": [{"name": "abteilung", "comparison_operator": "is"}]}, "needs a value"),
    ({"conditions": [{"name": "page", "comparison_operator": "=", "value": 10**30}]}, "out of range"),
    ({"logical_operator": "xor", "conditions": []}, "logical_operator"),
])
def test_conditions_the_filters_cannot_express_are_a_clear_422(dify, cond, match):
    assert_dify_error(_post(dify, _ask(metadata_condition=cond)), 422, 422, match)


def test_keys_answer_with_difys_codes_on_this_path_only(dify):
    assert_dify_error(_post(dify, _ask(), key=""), 403, 1001, "Bearer")
    for header in ("Basic YWxhZGRpbjpvcGVuc2VzYW1l", "Bearer", "Token abc"):
        with httpx.Client(base_url=dify.url, timeout=60) as c:
            assert_dify_error(c.post("/retrieval", json=_ask(), headers={"Authorization": header}), 403, 1001)
    with httpx.Client(base_url=dify.url, timeout=60, headers={"Authorization": "Bearer falsch"}) as c:
        assert_dify_error(c.post("/retrieval", json=_ask()), 403, 1002, "invalid API key")
        assert_error(c.post("/v1/retrieve", json={"query": QUERY}), 401, "unauthorized")  # other paths: unchanged
    with httpx.Client(base_url=dify.url, timeout=60) as c:
        assert_error(c.post("/v1/retrieve", json={"query": QUERY}), 401, "unauthorized", "missing API key")


@pytest.mark.parametrize(("body", "status", "code", "match"), [
    (b"kein json", 422, 422, "JSON"),
    (b"[]", 422, 422, "body"),
    (b'{"knowledge_id": "german_rag", "query": "x"', 422, 422, "JSON"),
    ({**_ask(), "retrieval_setting": {"top_k": "5", "score_threshold": 0.5}}, 422, 422, "top_k"),
    ({**_ask(), "retrieval_setting": {"top_k": 10**12, "score_threshold": 0.0}}, 422, 422, "top_k"),
    ({**_ask(), "retrieval_setting": {"top_k": 3, "score_threshold": 7}}, 422, 422, "score_threshold"),
    ({**_ask(), "retrieval_setting": {"top_k": 3}}, 422, 422, "score_threshold"),
    ({k: v for k, v in _ask().items() if k != "retrieval_setting"}, 422, 422, "retrieval_setting"),
    ({**_ask(), "query": 42}, 422, 422, "query"),
    ({**_ask(), "query": "   "}, 400, 400, "empty"),
    ({**_ask(), "query": "x" * 20_000}, 422, 422, "query"),
    ({**_ask(), "knowledge_id": f"{COLLECTION}:rerank"}, 404, 2001, "does not exist"),
    ({**_ask(), "knowledge_id": f"{COLLECTION}:"}, 404, 2001, "does not exist"),
    ({**_ask(), "knowledge_id": ["german_rag"]}, 422, 422, "knowledge_id"),
    ({**_ask(), "metadata_condition": {"conditions": [{"name": "a", "comparison_operator": "is",
                                                       "value": {"$ne": 1}}]}}, 422, 422, "value"),
    ({**_ask(), "metadata_condition": {"conditions": [{"name": "a", "comparison_operator": "in",
                                                       "value": ["x"] * 500}]}}, 422, 422, "at most"),
])
def test_hostile_bodies_are_4xx_in_difys_shape(dify, body, status, code, match):
    assert_dify_error(_post(dify, body), status, code, match)


def test_a_body_over_the_limit_is_refused_in_difys_shape(dify):
    assert_dify_error(_post(dify, _ask(query="x" * (2 << 20))), 413, 413, "limit")
