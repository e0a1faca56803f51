"""BM25 after deletes on the edge engine: `compact()` vacuums the segments holding deleted points, so its IDF
counts live points only, as local mode's does (before, edge scored 10.41 where local mode scored 3.26); also
after a reopen, and after a close() without compact(). The stores and queries are test_store_engines.py's
(the first query also finds the last document, c2, which the delete test keeps)."""

from __future__ import annotations

import pytest

from ingest.schema import Access
from ingest.store.edge import EdgeSearch, EdgeStore
from tests.test_store_engines import (  # noqa: F401  (texts, fresh_engines: the same stores as there)
    ENCODER,
    QUERIES,
    assert_same_ranking,
    fresh_engines,
    texts,
    write,
)


def assert_same_bm25(local, edge) -> None:
    """Every query's BM25 top 10 (scores, ids per tie group, payloads) is the same on both stores."""
    for q in QUERIES:
        idx, val = ENCODER.encode_query(q)
        assert_same_ranking(local.search_sparse(idx, val, 10), edge.search_sparse(idx, val, 10))


def test_idf_follows_the_deletes_on_both_engines(fresh_engines):  # noqa: F811
    # This check used to end the test above with a news query that found nothing after the deletes, so it
    # compared two empty lists; QUERIES[0] finds the document that is kept. Until compact(), the edge engine
    # counted the deleted points in its IDF (edge 10.41 against 3.26).
    local, edge = fresh_engines
    for s in fresh_engines:
        s.delete_source("a.txt")
        s.delete_doc("b1")
        s.delete_stale("c.txt", "c2")
    assert local.compact() is False and edge.compact() is True
    idx, val = ENCODER.encode_query(QUERIES[0])
    hits = local.search_sparse(idx, val, 5)
    assert len(hits) == 5
    assert_same_ranking(hits, edge.search_sparse(idx, val, 5))
    assert edge.compact() is False  # nothing left to vacuum


DELETES = {"delete_source": ("a.txt",), "delete_stale": ("c.txt", "c2"), "delete_doc": ("b1",)}


@pytest.mark.parametrize("delete", list(DELETES))
def test_bm25_after_a_delete_equals_local_modes_also_after_a_reopen(fresh_engines, delete):  # noqa: F811
    local, edge = fresh_engines
    assert getattr(local, delete)(*DELETES[delete]) == getattr(edge, delete)(*DELETES[delete]) > 0
    edge.compact()
    assert_same_bm25(local, edge)
    edge.close()
    reopened = EdgeStore(edge.options, EdgeSearch(exact=True))
    try:
        assert_same_bm25(local, reopened)
    finally:
        reopened.close()


def test_close_compacts_and_moved_points_count_once(fresh_engines, texts):  # noqa: F811
    """A store closed without compact() leaves exact IDF on disk; after a vacuum, an access change and an
    idempotent re-write move points out of the rebuilt segment (a deleted copy each): compact() again."""
    local, edge = fresh_engines
    for s in fresh_engines:
        s.delete_doc("b1")
    edge.compact()
    for s in fresh_engines:
        s.set_access("c2", Access("acme"))
        write(s, "a.txt", "a1", texts[:40])
        s.delete_stale("c.txt", "c2")
    edge.close()  # no compact(): close() does it
    reopened = EdgeStore(edge.options, EdgeSearch(exact=True))
    try:
        assert reopened.compact() is False
        assert_same_bm25(local, reopened)
    finally:
        reopened.close()
