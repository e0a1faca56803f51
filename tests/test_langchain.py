"""#15.6: the LangChain retriever (retrieval/langchain.py) over a real collection (German laws through the real
ingest path, the tiny German BERT, the edge store), in a real LCEL chain with LangChain's own fake chat model."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.language_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough

from ingest.errors import ErrorKind, GermanRagError
from ingest.parse import parse_file
from retrieval.langchain import LangChainRetriever
from retrieval.schema import EmptyQueryError, QueryError, RetrievalError
from tests.support.law_collection import BURLG_TITLE, URLAUB_QUESTION, readme_snippet


class PromptRecorder(BaseCallbackHandler):
    """Keeps the messages a chat model was called with: what the LLM really received."""

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def on_chat_model_start(self, serialized: dict[str, Any], messages: list[list[Any]], **kwargs: Any) -> None:
        self.prompts.extend(str(m.content) for batch in messages for m in batch)


def format_docs(docs: list[Document]) -> str:
    return "\n\n".join(f"[{i}] {d.metadata['title']} ({d.metadata['source']})\n{d.page_content}"
                       for i, d in enumerate(docs, 1))


def rag_chain(lc: LangChainRetriever, answer: str):
    prompt = ChatPromptTemplate.from_template("Antworte nur aus den Quellen.\n\n{context}\n\nFrage: {question}")
    llm = FakeListChatModel(responses=[answer])
    return {"context": lc | format_docs, "question": RunnablePassthrough()} | prompt | llm | StrOutputParser()


def test_chain_prompt_carries_the_retrieved_passages_and_their_sources(retriever, fixtures):
    lc = LangChainRetriever(retriever=retriever, top_k=2, mode="bm25")
    recorder = PromptRecorder()
    answer = rag_chain(lc, "Mindestens 24 Werktage [1].").invoke(URLAUB_QUESTION, {"callbacks": [recorder]})
    assert answer == "Mindestens 24 Werktage [1]."
    [prompt] = recorder.prompts
    docs = lc.invoke(URLAUB_QUESTION)
    assert "24 Werktage" in docs[0].page_content
    burlg = str(fixtures / "gesetze/b/burlg/index.md")
    assert f"[1] {BURLG_TITLE} ({burlg})\n{docs[0].page_content}" in prompt
    assert docs[1].page_content in prompt and "Frage: " + URLAUB_QUESTION in prompt


def test_documents_carry_the_provenance(retriever, fixtures):
    docs = LangChainRetriever(retriever=retriever, top_k=3, mode="bm25").invoke(URLAUB_QUESTION)
    assert len(docs) == 3
    law = fixtures / "gesetze/b/burlg/index.md"
    text = parse_file(law).text
    for doc in docs:
        m = doc.metadata
        assert doc.id == m["chunk_id"] and text[m["start"]:m["end"]] == doc.page_content
        assert m["source"] == str(law) and m["title"] == BURLG_TITLE and m["meta.jurabk"] == "BUrlG"
        assert m["file_type"] == "md" and m["language"] == "de" and m["page"] is None
        assert m["heading_path"].startswith("Mindesturlaubsgesetz für Arbeitnehmer (BUrlG) > § ")
        assert isinstance(m["chunk_index"], int) and m["doc_id"] == docs[0].metadata["doc_id"]
        assert m["score"] == m["score_bm25"]
        # flat: what LangChain vector stores and filters take
        assert all(v is None or isinstance(v, str | int | float | bool) for v in m.values())
    assert docs[0].metadata["heading_path"].endswith("§ 3 Dauer des Urlaubs")
    assert [d.metadata["score"] for d in docs] == sorted((d.metadata["score"] for d in docs), reverse=True)


def test_async_chain_and_retriever_match_the_sync_path(retriever):
    lc = LangChainRetriever(retriever=retriever, top_k=3)  # the settings' mode: hybrid
    recorder = PromptRecorder()

    async def both() -> tuple[list[Document], str]:
        docs = await lc.ainvoke(URLAUB_QUESTION)
        answer = await rag_chain(lc, "ok").ainvoke(URLAUB_QUESTION, {"callbacks": [recorder]})
        return docs, answer

    docs, answer = asyncio.run(both())
    assert answer == "ok" and [d.id for d in docs] == [d.id for d in lc.invoke(URLAUB_QUESTION)]
    assert all("score_fused" in d.metadata for d in docs)
    assert docs[0].page_content in recorder.prompts[0]


def test_filters_fixed_and_per_call(retriever, fixtures):
    lc = LangChainRetriever(retriever=retriever, top_k=5, mode="bm25", filters={"title": BURLG_TITLE})
    assert {d.metadata["title"] for d in lc.invoke("Arbeitszeit Urlaub")} == {BURLG_TITLE}
    prodhaftg = str(fixtures / "gesetze/p/prodhaftg/index.md")
    docs = lc.invoke("Arbeitszeit Urlaub", filters={"source": prodhaftg}, top_k=2)
    assert len(docs) == 2 and {d.metadata["source"] for d in docs} == {prodhaftg}
    hybrid = lc.invoke("Haftung", filters={"source": prodhaftg}, mode="hybrid")
    assert hybrid and all("score_fused" in d.metadata and d.metadata["source"] == prodhaftg for d in hybrid)


@pytest.mark.parametrize("query", ["", "   ", "\u200b"])
def test_empty_query_is_the_projects_query_error(retriever, query):
    lc = LangChainRetriever(retriever=retriever)
    with pytest.raises(EmptyQueryError, match="query: must not be empty"):
        lc.invoke(query)
    with pytest.raises(QueryError):
        rag_chain(lc, "nie").invoke(query)
    with pytest.raises(QueryError):
        asyncio.run(lc.ainvoke(query))


def test_bad_options_are_usage_errors(retriever):
    with pytest.raises(QueryError, match="top_k: must be an integer from 1 to 100, got 0"):
        LangChainRetriever(retriever=retriever, top_k=0)
    with pytest.raises(RetrievalError, match="retriever: object has no retrieve"):
        LangChainRetriever(retriever=object())
    lc = LangChainRetriever(retriever=retriever)
    for call in ({"filters": {"colour": "rot"}}, {"mode": "semantic"}, {"top_k": 101}):
        with pytest.raises(GermanRagError) as info:
            lc.invoke("Urlaub", **call)
        assert info.value.kind == ErrorKind.USAGE, call


def test_readme_langchain_snippet_runs(laws, monkeypatch, capsys):
    monkeypatch.setenv("GERMAN_RAG_EMBED_MODEL", laws.embed_model)
    monkeypatch.setenv("GERMAN_RAG_QDRANT_PATH", laws.qdrant_path)
    exec(compile(readme_snippet("langchain"), "README.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Mindestens 24 Werktage [1]."
    assert len(lines) > 1 and all("burlg/index.md" in line for line in lines[1:])
