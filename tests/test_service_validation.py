"""What the HTTP API accepts (#10.9, #10.14): typed and ranged input, one error table, counted 500s."""

from __future__ import annotations

import hashlib

import pytest

from tests.test_service import assert_error
from tests.test_service_support import example_files, live_server, service_settings, wait_job


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("validation")
    with live_server(service_settings(tiny_model_dir, root / "q", upload_dir=str(root))) as srv:
        with srv.client() as c:
            job = wait_job(c, c.post("/v1/documents", files=example_files("burlg.md")).json()["job_id"])
            assert job["state"] == "succeeded", job
        yield srv


@pytest.mark.parametrize("filters", [{"page": 2**70}, {"chunk_index": [2**64]}, {"page": -2**63 - 1},
                                     {"page": -1}, {"chunk_index": [0, 2**63]}])
def test_filter_integers_are_range_checked(server, filters):
    """#10.9: an integer no engine can store is a 422 naming the field, not a 500 from an overflow."""
    field = next(iter(filters))
    with server.client() as c:
        r = c.post("/v1/retrieve", json={"query": "Urlaub", "mode": "bm25", "filters": filters})
        assert_error(r, 422, "invalid", f"filter field {field!r}: ")
        assert "is out of range (0 to 9223372036854775807)" in r.json()["error"]["message"]


def test_largest_filter_integer_is_accepted(server):
    with server.client() as c:
        r = c.post("/v1/retrieve", json={"query": "Urlaub", "mode": "bm25", "filters": {"page": 2**63 - 1}})
    assert r.status_code == 200 and r.json()["passages"] == []


def test_a_range_in_the_filter_object(server):
    """#13.4: {field: {"gte": x, "lt": y}} in the HTTP filter object, on an integer and a datetime field."""
    with server.client() as c:
        r = c.post("/v1/retrieve", json={"query": "Urlaub Werktage", "mode": "bm25", "top_k": 10,
                                          "filters": {"chunk_index": {"gte": 0, "lt": 2}}})
        assert r.status_code == 200, r.text
        assert sorted(p["chunk_index"] for p in r.json()["passages"]) == [0, 1]
        r = c.post("/v1/retrieve", json={"query": "Urlaub", "mode": "bm25",
                                          "filters": {"date": {"gte": "2023-01-01", "lt": "2030-01-01T00:00:00Z"}}})
        assert r.status_code == 200, r.text


@pytest.mark.parametrize(("filters", "named"), [
    ({"title": {"gte": "A"}}, "filter field 'title' is a keyword: a range"),
    ({"date": {"gte": "01.01.2023"}}, "filter field 'date' needs an ISO date"),
    ({"date": {"ab": "2023-01-01"}}, "filter field 'date': a range takes the bounds"),
    ({"page": {"gte": 1.5}}, "filter field 'page' needs an integer"),
    ({"meta.projekt": {"gte": 3}}, "filter field 'meta.projekt' is a keyword: a range"),  # undeclared: the store
    ({"meta.a.b": "x"}, "filter field 'meta.a.b': meta field 'a.b': a key has"),
])
def test_a_bad_range_is_a_422_naming_the_field(server, filters, named):
    with server.client() as c:
        r = c.post("/v1/retrieve", json={"query": "Urlaub", "mode": "bm25", "filters": filters})
    assert_error(r, 422, "invalid", named)


class _Broken:
    def retrieve(self, *args, **kwargs):
        raise RuntimeError("a bug")


def test_internal_errors_are_counted_as_500(server):
    """#10.9: the metrics middleware sees the 500 the error handler answers."""
    rt = server.runtime
    retriever, rt.retriever = rt.retriever, _Broken()
    try:
        with server.client() as c:
            assert_error(c.post("/v1/retrieve", json={"query": "Urlaub"}), 500, "internal", "see the service log")
            text = c.get("/metrics").text
    finally:
        rt.retriever = retriever
    assert 'german_rag_http_requests_total{endpoint="/v1/retrieve",method="POST",status="500"} 1.0' in text


def test_job_errors_name_uploads_not_server_paths(server):
    """#10.10: a parser's error that names the file it read shows the upload's name, never the temp folder."""
    files = [("files", ("kaputt.txt", b"garbage \x00\xff data", "text/plain")),
             ("files", ("kaputt.msg", b"garbage \x00\xff data", "application/octet-stream"))]
    with server.client() as c:
        job = wait_job(c, c.post("/v1/documents", files=files).json()["job_id"])
    errors = {f["name"]: f["error"] for f in job["files"]}
    folder = str(server.runtime.jobs.get(job["job_id"]).folder)
    assert job["state"] == "failed" and all(errors.values()), job["files"]
    for name, error in errors.items():
        assert name in error and folder not in error and "german-rag-upload" not in error, error
        assert "0000." not in error and "0001." not in error, error


@pytest.mark.parametrize(("body", "field"), [
    ({"query": "Urlaub", "top_k": True}, "top_k"), ({"query": "Urlaub", "top_k": "5"}, "top_k"),
    ({"query": "Urlaub", "top_k": 5.0}, "top_k"), ({"query": "Urlaub", "expand": "1"}, "expand"),
    ({"query": "Urlaub", "truncate": "yes"}, "truncate"), ({"query": "Urlaub", "filters": {"page": 1.0}}, "page"),
])
def test_numbers_and_flags_are_strict(server, body, field):
    """#10.14: `true`, "5" and 5.0 are not a top_k (422 naming the field)."""
    with server.client() as c:
        assert_error(c.post("/v1/retrieve", json=body), 422, "invalid", field)


@pytest.mark.parametrize("query", ["\u200b", "\ufeff\u200b", "\u2028\u3000\u00a0", "\u00ad\u2060", "\u200b \t\n"])
def test_invisible_queries_are_empty(server, query):
    """#10.14: a query of only zero-width, format or any whitespace characters is `empty` (400)."""
    with server.client() as c:
        assert_error(c.post("/v1/retrieve", json={"query": query, "mode": "bm25"}), 400, "empty", "query")


def test_undecodable_body_is_invalid_422(server):
    """#10.14: a body that is not UTF-8 is `invalid`, 422, as the error table says (was 400)."""
    with server.client() as c:
        r = c.post("/v1/retrieve", content=b'{"query": "\xff\xfe Urlaub"}',
                   headers={"content-type": "application/json"})
    assert_error(r, 422, "invalid")


def test_upper_case_doc_id_finds_the_document(server):
    """#10.14: doc ids are UUIDs; an upper-case spelling is canonicalised (lower-cased) and deletes the document."""
    with server.client() as c:
        job = wait_job(c, c.post("/v1/documents", files=[("files", ("weg.txt", "Dieser Text wird gelöscht.".encode(),
                                                                    "text/plain"))]).json()["job_id"])
        doc_id = next(d for d in c.get("/v1/documents").json()["documents"] if d["source"] == "upload:weg.txt")
        r = c.delete(f"/v1/documents/{doc_id['doc_ids'][0].upper()}")
        assert r.status_code == 200, r.text
        assert r.json() == {"doc_id": doc_id["doc_ids"][0], "points_deleted": job["files"][0]["chunks"]}


def test_long_upload_names_keep_their_extension(server):
    """#10.14: a name over 200 characters is cut in its stem, so its extension still picks the parser
    (#10 A2: the cut ends in `~` and 8 hex digits of the whole name's sha256)."""
    name = "Ärger" * 60 + ".txt"
    with server.client() as c:
        job = wait_job(c, c.post("/v1/documents", files=[("files", (name, "Ein Text über Ärger.".encode(),
                                                                    "text/plain"))]).json()["job_id"])
    source = job["files"][0]["source"]
    assert job["state"] == "succeeded", job
    assert source.startswith("upload:ÄrgerÄrger") and source.endswith(".txt") and len(source) == len("upload:") + 200
    assert source[-13:-4] == "~" + hashlib.sha256(name.encode()).hexdigest()[:8], source


def test_nfd_and_nfc_upload_names_are_one_source(server):
    """#10.5: "Größe.txt" in NFD (macOS) is the NFC name; both forms in one request are one name twice."""
    import unicodedata

    nfc, nfd = unicodedata.normalize("NFC", "Größe.txt"), unicodedata.normalize("NFD", "Größe.txt")
    assert nfc != nfd
    text = "Die Größe der Wohnung beträgt 80 Quadratmeter.".encode()
    with server.client() as c:
        assert_error(c.post("/v1/documents", files=[("files", (nfc, text, "text/plain")),
                                                    ("files", (nfd, text, "text/plain"))]), 422, "invalid", "twice")
        for name in (nfc, nfd):
            job = wait_job(c, c.post("/v1/documents", files=[("files", (name, text, "text/plain"))]).json()["job_id"])
            assert job["files"][0]["source"] == f"upload:{nfc}", job
        sources = [d["source"] for d in c.get("/v1/documents", params={"limit": 1000}).json()["documents"]]
    assert sources.count(f"upload:{nfc}") == 1 and f"upload:{nfd}" not in sources
    assert job["files"][0]["status"] == "unchanged"  # the NFD upload found the NFC one's points


def test_non_ascii_keys_match(tiny_model_dir, tmp_path):
    """#10.14: a key with non-ASCII characters, sent as UTF-8, matches the configured key."""
    from fastapi.testclient import TestClient

    from pipelines.service.app import create_app

    key = "schlüssel-äöß-€"
    app = create_app(service_settings(tiny_model_dir, tmp_path / "q", read_keys=key, upload_dir=str(tmp_path)))
    client = TestClient(app)  # no lifespan: the key is checked before anything needs the model
    assert client.get("/metrics", headers={"Authorization": f"Bearer {key}".encode()}).status_code == 200
    other = f"Bearer {key[:-1]}$".encode()
    assert_error(client.get("/metrics", headers={"Authorization": other}), 401, "unauthorized", "invalid API key")
    latin1 = f"Bearer {key}".encode().decode("latin-1").encode("utf-8")  # mojibake is not the key
    assert_error(client.get("/metrics", headers={"Authorization": latin1}), 401, "unauthorized")


def test_uploads_parse_under_the_service_timeout(server):
    """#10.7/#10.8: uploads get the service's own parse timeout (120 s by default, not the CLI's 600 s)
    and the configured file limits."""
    settings, limits = server.runtime.settings, server.runtime.jobs._runner.limits
    assert settings.service_parse_timeout == 120.0 < settings.parse_timeout
    assert limits.parse_timeout_s == settings.service_parse_timeout
    assert (limits.max_file_bytes, limits.max_text_chars) == (settings.max_file_bytes, settings.max_text_chars)


def test_undecodable_upload_name_gives_valid_utf8_answers(server):
    """#10.11: a multipart file name with bytes that are not UTF-8 never yields invalid JSON or a 500; the
    job report and the stored source name are valid UTF-8."""
    boundary = "grenze4711"
    body = (f"--{boundary}\r\n".encode()
            + b'Content-Disposition: form-data; name="files"; filename="Gr\xf6\xdfe.txt"\r\n'
            b"Content-Type: text/plain\r\n\r\n" + "Die Größe der Wohnung beträgt 80 m².".encode() + b"\r\n"
            + f"--{boundary}--\r\n".encode())
    with server.client() as c:
        r = c.post("/v1/documents", content=body,
                   headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        r.content.decode("utf-8")
        assert r.status_code in (202, 422), r.text
        if r.status_code == 202:
            job = wait_job(c, r.json()["job_id"])
            raw = c.get(f"/v1/jobs/{job['job_id']}").content
            raw.decode("utf-8")
            assert job["state"] == "succeeded", job
            docs = c.get("/v1/documents", params={"limit": 1000})
            docs.content.decode("utf-8")
            assert docs.status_code == 200


def _sources(c) -> list[str]:
    return [d["source"] for d in c.get("/v1/documents", params={"limit": 1000}).json()["documents"]]


def test_long_upload_names_that_differ_late_stay_distinct(server):
    """#10 A2: two names that differ only after character 200 were cut to one source, and the second
    upload replaced the first; the cut now ends in a hash of the whole name, so they stay two sources,
    and the same long name again is still its own source (`unchanged`)."""
    stem = "Mietvertrag-Nachtrag-" * 10
    names = [f"{stem}Fassung-A.txt", f"{stem}Fassung-B.txt"]
    texts = ["Die Miete beträgt 800 Euro.".encode(), "Die Kaution beträgt drei Monatsmieten.".encode()]
    with server.client() as c:
        job = wait_job(c, c.post("/v1/documents", files=[("files", (n, t, "text/plain"))
                                                         for n, t in zip(names, texts, strict=True)]).json()["job_id"])
        assert job["state"] == "succeeded", job
        first, second = (f["source"] for f in job["files"])
        assert first != second and all(len(s) <= len("upload:") + 200 and s.endswith(".txt") for s in (first, second))
        again = wait_job(c, c.post("/v1/documents", files=[("files", (names[0], texts[0], "text/plain"))]
                                   ).json()["job_id"])
        sources = _sources(c)
    assert again["files"][0]["source"] == first and again["files"][0]["status"] == "unchanged", again
    assert first in sources and second in sources


def test_empty_upload_removes_its_source_and_spares_the_others(server):
    """#10 A4: a 0-byte file no longer refuses the whole request with 400: it removes the stored version
    of its source (`removed`), a new empty name is `skipped`, and the other files are ingested."""
    with server.client() as c:
        job = wait_job(c, c.post("/v1/documents", files=[("files", ("Pi.txt", "Pi ist ungefähr 3,14.".encode(),
                                                                    "text/plain"))]).json()["job_id"])
        assert job["state"] == "succeeded" and "upload:Pi.txt" in _sources(c), job
        r = c.post("/v1/documents", files=[("files", ("Pi.txt", b"", "text/plain")),
                                           ("files", ("Neu-leer.txt", b"", "text/plain")),
                                           ("files", ("Euler.txt", "e ist ungefähr 2,718.".encode(), "text/plain"))])
        assert r.status_code == 202, r.text
        job = wait_job(c, r.json()["job_id"])
        sources = _sources(c)
    status = {f["name"]: f["status"] for f in job["files"]}
    assert job["state"] == "succeeded" and status == {"Pi.txt": "removed", "Neu-leer.txt": "skipped",
                                                      "Euler.txt": "ingested"}, job
    assert job["counts"]["balanced"], job["counts"]
    assert "upload:Pi.txt" not in sources and "upload:Euler.txt" in sources and "upload:Neu-leer.txt" not in sources


def test_upload_without_files_is_refused(server):
    """#10 A4: a request with no files at all is still refused as a whole (422 `files: Field required`, as a
    retrieve without `query` is; a present but empty query or file is the `empty` case)."""
    boundary = "grenze0815"
    body = f'--{boundary}\r\nContent-Disposition: form-data; name="notiz"\r\n\r\nhallo\r\n--{boundary}--\r\n'
    with server.client() as c:
        r = c.post("/v1/documents", content=body.encode(),
                   headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert_error(r, 422, "invalid", "files: Field required")


@pytest.mark.parametrize("filters", [{"heading_path": "\udcff"}, {"source": "upload:\ud800"},
                                     {"source": ["a", "\udcff"]}, {"doc_id": "\udcff"}, {"doc_id": "abc"}])
def test_filter_strings_that_are_not_text_or_ids_are_422(server, filters):
    """#10.9 (second review): a JSON "\\udcff" in a filter reached the engine (500); a doc id that is no
    UUID could only match nothing."""
    import json

    body = json.dumps({"query": "Urlaub", "mode": "bm25", "filters": filters})  # ensure_ascii: \\udcff stays
    with server.client() as c:
        r = c.post("/v1/retrieve", content=body, headers={"Content-Type": "application/json"})
        assert_error(r, 422, "invalid", "filter")


def test_control_characters_in_upload_names_do_not_merge_sources():
    """#10.5 (second review): `tab<TAB>x.txt` and `tabx.txt` became one source (controls were removed)."""
    from pipelines.service.jobs import display_name

    names = ["tab\tx.txt", "tabx.txt", "a\u202egnp.txt", "agnp.txt", "zeile\nzwei.txt", "zeilezwei.txt"]
    shown = [display_name(n) for n in names]
    assert len(set(shown)) == len(names), shown
    assert shown[0] == "tab\\tx.txt" and all(s.isprintable() for s in shown)


def test_a_name_that_is_only_an_extension_keeps_it():
    """#10.14 (third review): `   .txt` was stripped to `.txt`, read as a dotfile without extension, and the
    whole request was refused (415) although the CLI ingests such a file."""
    from pipelines.service.jobs import display_name

    assert display_name("   .txt") == display_name(".txt") == "unnamed.txt"
    assert display_name(".hidden.md") == ".hidden.md"
