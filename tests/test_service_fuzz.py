"""Fuzz the published OpenAPI schema against a real server: no input may cause a 5xx.

Bounded and derandomized (fixed examples per operation), so the run is short and repeatable.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance

from tests.test_service_support import example_files, live_server, service_settings, wait_job

EXAMPLES_PER_OPERATION = 25


@pytest.fixture(scope="module")
def fuzz_server(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    with live_server(service_settings(tiny_model_dir, root / "q", max_upload_bytes=20_000)) as srv:
        with srv.client() as c:
            assert wait_job(c, c.post("/v1/documents", files=example_files("hinweise.txt")).json()["job_id"])
        yield srv


def test_no_input_causes_a_server_error(fuzz_server):
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 8  # 7 paths, /v1/documents with GET and POST
    checks = [not_a_server_error, status_code_conformance, response_schema_conformance]
    for operation in operations:  # schemathesis' pytest plugin does not load under this pytest; drive it directly

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, derandomize=True, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case):
            case.call_and_validate(base_url=fuzz_server.url, checks=checks)

        fuzz()
