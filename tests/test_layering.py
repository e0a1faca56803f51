"""Imports flow one way: pipelines -> retrieval -> ingest (retrieval uses only ingest.schema)."""

import ast

import pytest

from tests.conftest import ROOT


def imported_modules(package: str):
    for path in (ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                yield path, [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                yield path, [node.module]


@pytest.mark.parametrize(("package", "forbidden"), [("ingest", ("retrieval", "pipelines")),
                                                    ("retrieval", ("pipelines",))])
def test_no_upward_imports(package, forbidden):
    for path, names in imported_modules(package):
        for name in names:
            assert name.split(".")[0] not in forbidden, f"{path} imports {name}"


def test_retrieval_reads_only_the_ingest_contract():
    allowed = {"ingest.schema", "ingest.sparse", "ingest.store.base", "ingest.store.filters"}
    for path, names in imported_modules("retrieval"):
        for name in names:
            if name.startswith("ingest"):
                assert name in allowed, f"{path} imports {name}"
