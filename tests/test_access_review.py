"""#12 review: cross-tenant findings of the hostile review, each pinned by a test on both embedded engines."""

from __future__ import annotations

import pytest

from ingest.schema import Access
from ingest.store.access import Principal
from tests.test_access import engine  # noqa: F401  (the edge and local-mode store fixture)
from tests.test_store_engines import make_chunks, unit_vector


def _put(store, source: str, doc_id: str, access: Access, indices: list[int]) -> None:
    store.upsert_chunks(make_chunks(source, doc_id, ["t"]), [unit_vector(source)],
                        [(indices, [1.0] * len(indices))], access=access)


@pytest.mark.xfail(strict=True, reason="BM25 IDF is collection-wide (Qdrant's IDF modifier ignores filters): "
                   "a tenant's bm25 scores depend on other tenants' documents; per-tenant IDF is not built yet")
def test_bm25_scores_of_a_tenant_do_not_depend_on_other_tenants_documents(engine):  # noqa: F811
    """#12 review: the sparse leg's IDF is counted over every point of the collection, not over the points the
    principal may see. So a tenant that searches its own documents for a term learns from the score how many of
    other tenants' points contain it (a document-frequency side channel across tenants)."""
    _put(engine, "a.txt", "da", Access("acme"), [1, 2])
    _put(engine, "b.txt", "db", Access("acme"), [2])
    view = engine.scoped(Principal("acme"))
    before = [h.score for h in view.search_sparse([1], [1.0], 5)]
    for i in range(20):  # another tenant's documents with the term
        _put(engine, f"g{i}.txt", f"dg{i}", Access("globex"), [1])
    assert [h.score for h in view.search_sparse([1], [1.0], 5)] == pytest.approx(before)
