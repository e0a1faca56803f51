"""llama-index adapter: any german-rag retriever as a llama-index `BaseRetriever`.

Nodes carry the chunk id, the text, the character span into the source document and the same
provenance metadata a Passage has, so llama-index query engines and postprocessors see everything.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from retrieval.schema import Passage, Retriever


def passage_to_node(passage: Passage) -> NodeWithScore:
    metadata = {
        "source": passage.source, "page": passage.page, "heading_path": " > ".join(passage.heading_path),
        "doc_id": passage.doc_id, "chunk_index": passage.chunk_index,
        **{f"score_{stage}": value for stage, value in passage.scores.items()},
    }
    node = TextNode(
        id_=passage.chunk_id, text=passage.text, metadata=metadata,
        start_char_idx=passage.start, end_char_idx=passage.end,
        # Provenance is for people and filters; it should not be embedded or sent to an LLM twice.
        excluded_embed_metadata_keys=list(metadata), excluded_llm_metadata_keys=["doc_id", "chunk_index"],
    )
    return NodeWithScore(node=node, score=passage.score)


class LlamaIndexRetriever(BaseRetriever):
    """Wraps a german-rag Retriever (dense, bm25 or hybrid, with filters) for llama-index."""

    def __init__(self, retriever: Retriever, top_k: int = 5, filters: dict | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._retriever = retriever
        self._top_k = top_k
        self._filters = filters

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        passages = self._retriever.retrieve(query_bundle.query_str, self._top_k, self._filters)
        return [passage_to_node(p) for p in passages]
