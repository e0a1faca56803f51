"""Collect what the hybrid-ranking study needs (issue #16 item 6), one data set and one model at a time.

The corpus goes through the real ingest path into an embedded Qdrant collection (parse, chunk, embed,
BM25 vectors); then every stored chunk is read back with its dense vector and text, every chunk's
sentences are embedded (for sentence-level dense scoring), and every query is embedded twice: as asked
and with its question phrase cut off (`retrieval.question.strip_question`). The BM25 side is recomputed
offline from the chunk texts by `benchmarks.hybrid_levers` (so k1, b and pseudo-relevance feedback can
vary without re-ingesting); `check` there compares it with the store's own sparse search.

    GERMAN_RAG_EMBED_MODEL=$M python -m benchmarks.hybrid_collect ../shared/data/xquad-de squad OUT_DIR

OUT_DIR gets `study.npz` (vectors) and `study.json` (chunks, queries, qrels, model) and the store.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from ingest.sentences import sentence_spans
from pipelines.build import build_embedder, build_store
from pipelines.config import Settings
from pipelines.evaluation.datasets import doc_id_from_path, load_dataset
from pipelines.evaluation.run import ingest_corpus
from retrieval.question import strip_question


def _chunks(settings: Settings) -> tuple[list[dict], np.ndarray]:
    store = build_store(settings)
    try:
        rows = sorted(store.scan(["text", "source", "chunk_id"], vectors=True), key=lambda r: r[0])
    finally:
        store.close()
    chunks = [{"id": pid, "doc": doc_id_from_path(p["source"]), "text": p["text"]} for pid, p, _ in rows]
    return chunks, np.asarray([v for _, _, v in rows], dtype=np.float32)


def _sentences(chunks: list[dict]) -> tuple[list[str], list[int]]:
    texts, owner = [], []
    for i, chunk in enumerate(chunks):
        for start, end in sentence_spans(chunk["text"]):
            piece = chunk["text"][start:end].strip()
            if piece:
                texts.append(piece)
                owner.append(i)
    return texts, owner


def _embed(embedder, texts: list[str], query: bool) -> np.ndarray:  # type: ignore[no-untyped-def]
    if query:
        return np.asarray([embedder.embed_query(t, truncate=True) for t in texts], dtype=np.float32)
    out = []
    for i in range(0, len(texts), 64):
        batch = [t[:2000] for t in texts[i:i + 64]]  # a sentence over the limit: its start is enough here
        if not hasattr(embedder, "document_ids"):  # USE takes any length
            out.extend(embedder.embed_documents(batch))
            continue
        ids = [row[: embedder.max_tokens - 1] + row[-1:] if len(row) > embedder.max_tokens else row
               for row in embedder.document_ids(batch)]
        out.extend(embedder.embed_documents(batch, ids))
    return np.asarray(out, dtype=np.float32)


def collect(dataset: str, fmt: str, out: Path) -> None:
    evalset = load_dataset(dataset, fmt)
    settings = Settings().model_copy(update={"qdrant_path": str(out / "store"), "collection": "levers"})
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if not (out / "store").exists():
        ingest_corpus(settings, evalset, out / "corpus")
    chunks, chunk_vecs = _chunks(settings)
    embedder = build_embedder(settings)
    embedder.load()
    sentences, owner = _sentences(chunks)
    qids = sorted(evalset.queries)
    asked = [evalset.queries[q] for q in qids]
    stripped = [strip_question(q) for q in asked]
    np.savez_compressed(out / "study.npz", chunks=chunk_vecs, sentences=_embed(embedder, sentences, False),
                        owner=np.asarray(owner, dtype=np.int32), queries=_embed(embedder, asked, True),
                        stripped=_embed(embedder, stripped, True))
    meta = {"dataset": evalset.name, "model": settings.embed_model, "chunks": chunks, "qids": qids,
            "queries": asked, "stripped": stripped, "qrels": {q: sorted(evalset.qrels[q]) for q in qids},
            "seconds": round(time.perf_counter() - started, 1)}
    (out / "study.json").write_text(json.dumps(meta, ensure_ascii=False))
    print(f"{evalset.name}: {len(chunks)} chunks, {len(sentences)} sentences, {len(qids)} queries, "
          f"{meta['seconds']} s")


if __name__ == "__main__":
    collect(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
