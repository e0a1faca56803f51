"""The pipeline a llama-index user writes, run by benchmarks/ingest_bench.py in its own process.

    python benchmarks/llama_index_ingest.py CORPUS MODEL STORE_PATH BATCH ORDER DTYPE

SimpleDirectoryReader -> SentenceSplitter(256, 32) -> HuggingFaceEmbedding -> QdrantVectorStore (qdrant-client
local mode). BATCH: `default` or embed_batch_size; ORDER: `node` or `sorted` (texts by length, vectors put
back in node order); DTYPE: `fp32` or `bf16` weights. Prints one JSON line: stage seconds and counts.
"""
from __future__ import annotations

import json
import sys
import time


def main(corpus: str, model: str, path: str, batch: str, order: str, dtype: str) -> dict:
    from llama_index.core import SimpleDirectoryReader
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    stages = {}
    t0 = time.perf_counter()  # after the imports, as german-rag's own total starts after its imports
    t = time.perf_counter()
    docs = SimpleDirectoryReader(corpus, recursive=True).load_data()
    stages["parse"] = time.perf_counter() - t
    t = time.perf_counter()
    nodes = SentenceSplitter(chunk_size=256, chunk_overlap=32).get_nodes_from_documents(docs)
    stages["chunk"] = time.perf_counter() - t
    t = time.perf_counter()
    kwargs: dict = {} if batch == "default" else {"embed_batch_size": int(batch)}
    if dtype == "bf16":
        import torch

        kwargs["model_kwargs"] = {"dtype": torch.bfloat16}
    embed = HuggingFaceEmbedding(model_name=model, device="cpu", **kwargs)
    texts = [n.get_content(metadata_mode="embed") for n in nodes]
    idx = list(range(len(texts)))
    if order == "sorted":  # group similar lengths so that batches pad less; the vectors go back in node order
        idx.sort(key=lambda i: len(texts[i]), reverse=True)
    vectors = embed.get_text_embedding_batch([texts[i] for i in idx])
    for i, vector in zip(idx, vectors, strict=True):
        nodes[i].embedding = vector
    stages["embed"] = time.perf_counter() - t
    t = time.perf_counter()
    store = QdrantVectorStore(client=QdrantClient(path=path), collection_name="li")
    store.add(nodes)
    stages["store"] = time.perf_counter() - t
    return {"files_seen": len(docs), "chunks": len(nodes), "points_written": len(nodes),
            "embed_batch_size": embed.embed_batch_size, "stage_seconds": stages,
            "total_seconds": time.perf_counter() - t0}


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:7])))
