"""Dense retrieval: embed the query with the document model, search the `dense` vector."""

from __future__ import annotations

from ingest.schema import IngestError
from retrieval.query_check import check_query, check_top_k
from retrieval.schema import DenseIndex, Passage, QueryEmbedder, RetrievalError


class DenseRetriever:
    """Query -> top-k passages by cosine similarity of the model's embeddings."""

    def __init__(self, embedder: QueryEmbedder, index: DenseIndex) -> None:
        self.embedder = embedder
        self.index = index

    def retrieve(self, query: str, top_k: int = 5, filters: dict | None = None,
                 truncate: bool = False) -> list[Passage]:
        query, top_k = check_query(query), check_top_k(top_k)
        try:
            vector = self.embedder.embed_query(query, truncate=truncate)
            hits = self.index.search_dense(vector, top_k, filters)
        except IngestError as exc:  # token limit, bad filter, store refusal: the caller's problem
            raise RetrievalError(str(exc)) from exc
        return [Passage.from_hit(h, "dense") for h in hits]
