"""llama-index adapter: any german-rag retriever as a llama-index `BaseRetriever`.

Nodes carry the chunk id, the text, the character span into the source document and the provenance metadata
of retrieval/provenance.py (source, title and the other document fields, page, heading path, span, ids,
scores), so llama-index query engines and postprocessors see everything the LangChain adapter sees.
"""

from __future__ import annotations

import asyncio
from typing import Any

from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from retrieval.provenance import CITATION_KEYS, passage_metadata
from retrieval.query_check import check_top_k
from retrieval.schema import Passage, Retriever


def passage_to_node(passage: Passage) -> NodeWithScore:
    metadata = passage_metadata(passage)
    node = TextNode(
        id_=passage.chunk_id, text=passage.text, metadata=metadata,
        start_char_idx=passage.start, end_char_idx=passage.end,
        # Provenance is for people and filters: never embedded; the LLM sees only what it cites (source, title,
        # page, heading path ...) where the passage has it ("page: None" is noise), not ids, spans and scores.
        excluded_embed_metadata_keys=list(metadata),
        excluded_llm_metadata_keys=[k for k, v in metadata.items() if k not in CITATION_KEYS or v in (None, "")],
    )
    return NodeWithScore(node=node, score=passage.score)


class LlamaIndexRetriever(BaseRetriever):
    """Wraps a german-rag Retriever for llama-index: `top_k` passages, `filters` ({field: value or [values]}
    over the filterable payload fields) and `mode` (dense, bm25, hybrid; None: the retriever's own) on every
    query. Errors keep their german-rag kinds (an empty query is a QueryError)."""

    def __init__(self, retriever: Retriever, top_k: int = 5, filters: dict | None = None, mode: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._retriever = retriever
        self._top_k = check_top_k(top_k)
        self._filters = filters
        self._mode = mode

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        passages = self._retriever.retrieve(query_bundle.query_str, self._top_k, self._filters, mode=self._mode)
        return [passage_to_node(p) for p in passages]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        # The retriever is synchronous (model and store calls): in a thread, so that the event loop keeps going.
        return await asyncio.to_thread(self._retrieve, query_bundle)
