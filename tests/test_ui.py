"""The search page's server side over real HTTP: open shells with a strict CSP, escaped templates, and the
endpoints its scripts use (whoami, highlight, document text, sources) with the keys' rights."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import pytest

from ingest.sparse import SparseEncoder
from pipelines.service.highlight import highlight
from tests.test_ui_support import HOSTILE_NAME, LONG_MARKER, LONG_NAME, READ_KEY, WRITE_KEY, ui_server


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    with ui_server(tiny_model_dir, tmp_path_factory.mktemp("ui")) as live:
        yield live


def marked(text: str, spans) -> list[str]:
    return [text[s:e] for s, e in spans]


@pytest.mark.parametrize(("query", "text", "expected"), [
    # a stem: the query's singular marks the plural; a compound part marks only that part
    ("Kündigungsfrist beim Gericht", "Die Kündigungsfristen prüft das Bundesverfassungsgericht.",
     ["Kündigungsfristen", "gericht"]),
    ("Urlaub", "Jeder hat Anspruch auf Erholungsurlaub; der Urlaub beträgt 24 Werktage.", ["urlaub", "Urlaub"]),
    ("Email an die Straße", "Bitte per E-Mail an die Hauptstrasse.", ["E-Mail", "strasse"]),
    ("der die das", "Der Hund und die Katze.", []),  # stop words only: nothing to mark
])
def test_highlight_uses_the_bm25_analyzer(query, text, expected):
    terms, spans = highlight(SparseEncoder(), query, [text])
    assert marked(text, spans[0]) == expected, (terms, spans)


def test_pages_are_open_and_carry_a_strict_csp(server):
    with server.client() as c:
        for path in ("/ui/", "/ui/dokument", "/ui/quellen", "/ui/hochladen", "/ui/kontext", "/ui/static/common.js"):
            r = c.get(path)
            assert r.status_code == 200, (path, r.text)
            csp = r.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
            assert r.headers["x-content-type-options"] == "nosniff"
        page = c.get("/ui/").text
        assert '<html lang="de">' in page and "API-Schlüssel" in page
        assert "<script>" not in page and " style=" not in page and "onclick" not in page  # no inline code
        assert c.get("/ui", follow_redirects=False).headers["location"] == "/ui/"
        # the shells are open; the data behind them is not
        assert c.get("/v1/whoami").status_code == 401
        assert c.post("/ui/", json={}).status_code in (401, 405)


def test_whoami_tells_what_a_key_may_do(server):
    with server.client(READ_KEY) as c:
        me = c.get("/v1/whoami").json()
    assert me["may_write"] is False and me["role"] == "read" and me["keys_required"] is True
    assert set(me["modes"]) == {"hybrid", "dense", "bm25"} and ".txt" in me["extensions"]
    with server.client(WRITE_KEY) as c:
        assert c.get("/v1/whoami").json()["may_write"] is True


def test_a_read_key_is_refused_upload_and_delete(server):
    with server.client(READ_KEY) as c:
        r = c.post("/v1/documents", files=[("files", ("x.txt", b"Text", "text/plain"))])
        assert r.status_code == 403, r.text
        assert c.delete("/v1/documents", params={"source": "upload:burlg.md"}).status_code == 403
        assert c.get("/v1/sources", params={"contains": "burlg"}).json()["total"] == 1


def test_highlight_endpoint_and_document_text_span(server):
    with server.client(READ_KEY) as c:
        hits = c.post("/v1/retrieve", json={"query": "Wann öffnet die Kantine?", "mode": "bm25", "top_k": 3}).json()
        top = hits["passages"][0]
        assert top["source"] == f"upload:{LONG_NAME}" and LONG_MARKER in top["text"]
        marks = c.post("/v1/highlight", json={"query": "Wann öffnet die Kantine?", "texts": [top["text"]]}).json()
        assert "Kantine" in marked(top["text"], marks["spans"][0])
        doc = c.get(f"/v1/documents/{top['doc_id']}/text", params={"chunk_id": top["chunk_id"], "window": 200}).json()
        # the rebuilt text maps 1:1 onto document offsets: the passage sits exactly at its span
        assert doc["text"][top["start"] - doc["start"]: top["end"] - doc["start"]] == top["text"]
        assert doc["first_index"] == 0 and doc["last_index"] == doc["chunk_count"] - 1
        by_index = c.get(f"/v1/documents/{top['doc_id']}/text",
                         params={"chunk_index": top["chunk_index"], "window": 0}).json()
        assert by_index["text"] == top["text"] and by_index["start"] == top["start"]
        assert c.get(f"/v1/documents/{top['doc_id']}/text", params={"chunk_id": "no-uuid"}).status_code == 422


def test_sources_list_pages_and_searches(server):
    with server.client(READ_KEY) as c:
        page = c.get("/v1/sources", params={"limit": 2}).json()
        assert page["total"] == 5 and len(page["sources"]) == 2
        names = [s["source"] for s in page["sources"]]
        assert names == sorted(names)
        rest = c.get("/v1/sources", params={"limit": 2, "offset": 4}).json()["sources"]
        assert len(rest) == 1
        found = c.get("/v1/sources", params={"contains": "MARKUP"}).json()["sources"]
        assert [s["source"] for s in found] == [f"upload:{HOSTILE_NAME}"]
        assert found[0]["chunks"] >= 1 and found[0]["ingested_at"].startswith("20")
        assert found[0]["fields"]["file_type"]


def test_every_template_and_static_file_ships_in_the_wheel():
    """pyproject's package-data globs cover every file of the page, so an installed wheel serves it."""
    root = Path(__file__).resolve().parents[1]
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["pipelines"]
    files = [p.relative_to(root / "pipelines").as_posix() for folder in ("templates", "static")
             for p in (root / "pipelines" / "service" / folder).iterdir()]
    assert files and all(any(fnmatch.fnmatch(f, g) for g in globs) for f in files), (files, globs)


def test_another_tenants_document_is_not_there_for_the_page(tiny_model_dir, tmp_path):
    """The page's reads go through the caller's view: another tenant's sources, text and highlights stay hidden."""
    from pipelines.service.principals import add_key
    from tests.test_service_support import example_files, live_server, service_settings, wait_job

    keys = {t: add_key(tmp_path / "keys.toml", t, (), "write", t)[0] for t in ("acme", "globex")}
    settings = service_settings(tiny_model_dir, tmp_path / "q", keys_file=str(tmp_path / "keys.toml"))
    with live_server(settings) as live:
        with live.client(keys["globex"]) as globex:
            assert wait_job(globex, globex.post("/v1/documents", files=example_files("burlg.md")).json()["job_id"])
            found = globex.post("/v1/retrieve", json={"query": "Urlaub", "mode": "bm25", "top_k": 1}).json()
            hit = found["passages"][0]
            assert globex.get("/v1/sources").json()["total"] == 1
        with live.client(keys["acme"]) as acme:
            assert acme.get("/v1/whoami").json()["tenant"] == "acme"
            assert acme.get("/v1/sources").json() == {"total": 0, "offset": 0, "limit": 20, "sources": []}
            for params in ({"chunk_id": hit["chunk_id"]}, {"chunk_index": hit["chunk_index"]}):
                r = acme.get(f"/v1/documents/{hit['doc_id']}/text", params=params)
                assert r.status_code == 404 and hit["text"][:40] not in r.text, r.text
