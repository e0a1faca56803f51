"""What the HTTP API accepts (#10.9, #10.14): typed and ranged input, one error table, counted 500s."""

from __future__ import annotations

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
        assert_error(c.post("/v1/retrieve", json={"query": "Urlaub", "mode": "bm25", "filters": filters}), 422,
                     "invalid", f"filter {field!r}: integers must be from 0 to")


def test_largest_filter_integer_is_accepted(server):
    with server.client() as c:
        r = c.post("/v1/retrieve", json={"query": "Urlaub", "mode": "bm25", "filters": {"page": 2**63 - 1}})
    assert r.status_code == 200 and r.json()["passages"] == []


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
