from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.response_synthesizers.no_text import NoText

from ingest.parse import parse_file
from pipelines.api import ingest_paths
from pipelines.build import build_embedder, build_retriever, build_store
from pipelines.config import load_settings
from retrieval.llama import LlamaIndexRetriever


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
        assert n.score == meta["score_fused"]
