"""The llama-index retriever (retrieval/llama.py) over a real collection, in llama-index's own query engines with
its MockLLM; it carries the same provenance as the LangChain adapter."""

from __future__ import annotations

import asyncio

import pytest
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.response_synthesizers.no_text import NoText
from llama_index.core.schema import MetadataMode

from ingest.parse import parse_file
from pipelines.api import ingest_paths
from pipelines.build import build_embedder, build_retriever, build_store
from pipelines.config import load_settings
from retrieval.langchain import LangChainRetriever
from retrieval.llama import LlamaIndexRetriever
from retrieval.schema import EmptyQueryError, QueryError
from tests.support.law_collection import BURLG_TITLE, URLAUB_QUESTION, readme_snippet


def test_llama_index_query_path_without_llm(settings_env, fixtures):
    law = fixtures / "gesetze/b/burlg/index.md"
    settings = load_settings()
    assert ingest_paths(settings, [law], progress=False).count("ingested") == 1
    embedder, store = build_embedder(settings), build_store(settings)
    try:
        retriever = LlamaIndexRetriever(build_retriever(settings, embedder, store), top_k=3)
        synthesizer = NoText(llm=MockLLM())  # the query path without any LLM call
        engine = RetrieverQueryEngine(retriever=retriever, response_synthesizer=synthesizer)
        response = engine.query("Wie viele Werktage beträgt der Urlaub?")
    finally:
        store.close()
    nodes = response.source_nodes
    assert len(nodes) == 3
    doc = parse_file(law).text
    for n in nodes:
        meta = n.node.metadata
        assert meta["source"].endswith("index.md") and "score_fused" in meta
        assert doc[n.node.start_char_idx : n.node.end_char_idx] == n.node.get_content()
        assert n.score == meta["score_fused"] == meta["score"]


def test_query_engine_with_mock_llm_gets_the_sources(retriever, fixtures):
    engine = RetrieverQueryEngine.from_args(LlamaIndexRetriever(retriever, top_k=2, mode="bm25"), llm=MockLLM())
    response = engine.query(URLAUB_QUESTION)
    burlg = str(fixtures / "gesetze/b/burlg/index.md")
    first = response.source_nodes[0].node
    assert len(response.source_nodes) == 2 and "24 Werktage" in first.get_content()
    meta = first.metadata
    assert meta["source"] == burlg and meta["title"] == BURLG_TITLE and meta["meta.jurabk"] == "BUrlG"
    assert meta["chunk_id"] == first.node_id and (meta["start"], meta["end"]) == (first.start_char_idx,
                                                                                  first.end_char_idx)
    # MockLLM answers with the prompt it got: the passages with what a citation needs, not ids or scores
    prompt = str(response)
    assert first.get_content() in prompt and f"source: {burlg}" in prompt and f"title: {BURLG_TITLE}" in prompt
    assert "chunk_id" not in prompt and "score" not in prompt and "start:" not in prompt


def test_async_query_matches_the_sync_one(retriever):
    engine = RetrieverQueryEngine.from_args(LlamaIndexRetriever(retriever, top_k=3), llm=MockLLM())
    sync_ids = [n.node.node_id for n in engine.query(URLAUB_QUESTION).source_nodes]
    response = asyncio.run(engine.aquery(URLAUB_QUESTION))
    assert [n.node.node_id for n in response.source_nodes] == sync_ids
    assert all("score_fused" in n.node.metadata for n in response.source_nodes)


def test_filters_reach_the_store(retriever, fixtures):
    prodhaftg = str(fixtures / "gesetze/p/prodhaftg/index.md")
    engine = RetrieverQueryEngine.from_args(
        LlamaIndexRetriever(retriever, top_k=4, filters={"source": prodhaftg}), llm=MockLLM())
    nodes = engine.query(URLAUB_QUESTION).source_nodes
    assert len(nodes) == 4 and {n.node.metadata["source"] for n in nodes} == {prodhaftg}
    titled = LlamaIndexRetriever(retriever, top_k=5, mode="bm25", filters={"title": BURLG_TITLE})
    assert {n.node.metadata["title"] for n in titled.retrieve("Arbeitszeit Haftung")} == {BURLG_TITLE}


def test_both_adapters_carry_the_same_provenance(retriever):
    nodes = LlamaIndexRetriever(retriever, top_k=3, mode="bm25").retrieve(URLAUB_QUESTION)
    docs = LangChainRetriever(retriever=retriever, top_k=3, mode="bm25").invoke(URLAUB_QUESTION)
    assert [n.node.metadata for n in nodes] == [d.metadata for d in docs]
    assert [n.node.node_id for n in nodes] == [d.id for d in docs]


@pytest.mark.parametrize("query", ["", "  \t"])
def test_empty_query_is_the_projects_query_error(retriever, query):
    engine = RetrieverQueryEngine.from_args(LlamaIndexRetriever(retriever), llm=MockLLM())
    with pytest.raises(EmptyQueryError, match="query: must not be empty"):
        engine.query(query)
    with pytest.raises(QueryError):
        asyncio.run(engine.aquery(query))
    with pytest.raises(QueryError, match="top_k: must be an integer from 1 to 100, got 0"):
        LlamaIndexRetriever(retriever, top_k=0)


def test_readme_llama_snippet_runs(laws, monkeypatch, capsys, fixtures):
    monkeypatch.setenv("GERMAN_RAG_EMBED_MODEL", laws.embed_model)
    monkeypatch.setenv("GERMAN_RAG_QDRANT_PATH", laws.qdrant_path)
    exec(compile(readme_snippet("llama"), "README.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and str(fixtures / "gesetze/b/burlg/index.md") in lines[0]
    assert "§ 3 Dauer des Urlaubs" in lines[0]


def test_the_llm_sees_citation_fields_only_where_set(retriever):
    [node] = LlamaIndexRetriever(retriever, top_k=1, mode="bm25").retrieve(URLAUB_QUESTION)
    shown = node.node.get_content(metadata_mode=MetadataMode.LLM)
    assert shown.startswith(f"source: {node.node.metadata['source']}\ntitle: {BURLG_TITLE}\n")
    assert "page:" not in shown and "heading_path: Mindesturlaubsgesetz" in shown  # a Markdown law has no pages
    assert node.node.get_content(metadata_mode=MetadataMode.EMBED) == node.node.get_content()
