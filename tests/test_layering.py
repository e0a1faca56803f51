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
    # ingest.sentences: context packing cuts at the same German sentence ends the chunker uses
    # ingest.citations, ingest.law_names: a query's legal references normalise exactly as the chunks' did
    allowed = {"ingest.errors", "ingest.schema", "ingest.sparse", "ingest.sentences", "ingest.store.base",
               "ingest.store.filters", "ingest.citations", "ingest.law_names"}
    for path, names in imported_modules("retrieval"):
        for name in names:
            if name.startswith("ingest"):
                assert name in allowed, f"{path} imports {name}"


def module_graph() -> dict[str, set[str]]:
    """Every module of the three packages -> the project modules it imports (anywhere in the file, also
    inside functions and TYPE_CHECKING blocks: a lazy import still ties two modules together)."""
    modules = {}
    for package in ("ingest", "retrieval", "pipelines"):
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path [a, b, ..., a], or None (depth-first search with colours)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycles():
    """#11.2: no two modules import each other, directly or through others (a package's __init__ counts as
    the package: `pipelines.cli` re-exports `pipelines.cli.main`, so main may not import the package)."""
    cycle = find_cycle(module_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_cycle_finder_finds_a_cycle():
    """The check above can fail: a three-module ring is found, a chain is not."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
