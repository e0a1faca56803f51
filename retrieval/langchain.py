"""LangChain adapter: any german-rag retriever as a `langchain_core` `BaseRetriever`.

Documents carry the passage text as `page_content`, the chunk id as `id` and the provenance metadata of
retrieval/provenance.py (the same mapping the llama-index adapter uses), so a chain can cite source, title,
page, heading path and span, and a program can find the chunk again.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, field_validator

from retrieval.provenance import passage_metadata
from retrieval.query_check import check_top_k
from retrieval.schema import Passage, RetrievalError


def passage_to_document(passage: Passage) -> Document:
    return Document(page_content=passage.text, metadata=passage_metadata(passage), id=passage.chunk_id)


class LangChainRetriever(BaseRetriever):
    """Wraps a german-rag Retriever (retrieval/schema.py) for LangChain.

        retriever = LangChainRetriever(retriever=r, top_k=5, filters={"source": "handbuch.pdf"}, mode="hybrid")
        docs = retriever.invoke("Wie lange ist die Kündigungsfrist?")
        docs = retriever.invoke("Probezeit?", top_k=3)  # per call: top_k, filters, mode

    `filters` is {field: value or [values]} over the filterable payload fields; `mode` None takes the
    retriever's own. Errors keep their german-rag kinds: an empty query is a QueryError, a bad filter a
    usage error, a store that does not answer an unavailable one.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    # Any: a Protocol cannot be validated by pydantic; anything with the Retriever protocol's `retrieve` works.
    retriever: Any
    top_k: int = 5
    filters: dict[str, Any] | None = None
    mode: str | None = None

    @field_validator("top_k")
    @classmethod
    def _check_top_k(cls, value: int) -> int:
        return check_top_k(value)  # a QueryError, as the retriever would raise it at the first query

    @field_validator("retriever")
    @classmethod
    def _check_retriever(cls, value: Any) -> Any:
        if not callable(getattr(value, "retrieve", None)):
            raise RetrievalError(f"retriever: {type(value).__name__} has no retrieve(query, top_k, filters) method; "
                                 "pass a german-rag Retriever, e.g. from pipelines.api.open_retriever")
        return value

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                top_k: int | None = None, filters: dict[str, Any] | None = None,
                                mode: str | None = None) -> list[Document]:
        top_k = self.top_k if top_k is None else top_k
        filters = self.filters if filters is None else filters
        passages = self.retriever.retrieve(query, top_k, filters, mode=mode or self.mode)
        return [passage_to_document(p) for p in passages]

    async def _aget_relevant_documents(self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun,
                                       top_k: int | None = None, filters: dict[str, Any] | None = None,
                                       mode: str | None = None) -> list[Document]:
        # The retriever is synchronous (model and store calls): in a thread, so that the event loop keeps going.
        return await asyncio.to_thread(self._get_relevant_documents, query, run_manager=run_manager.get_sync(),
                                       top_k=top_k, filters=filters, mode=mode)
