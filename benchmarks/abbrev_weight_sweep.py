"""MRR@5 of the queries the abbreviation rewrite changes, original and variant, for several expansion weights
(`AbbreviationExpander.weight`; 0 = no expansion), bm25 and hybrid, on one real ingest:

    GERMAN_RAG_EMBED_MODEL=$M python -m benchmarks.abbrev_weight_sweep ../shared/data/xquad-de squad out.json
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
from pathlib import Path

from benchmarks.variants_eval import _mrr, _rank, curated_pairs, variant_sets
from ingest.abbreviations import AbbreviationExpander
from pipelines.build import build_embedder, build_retriever, build_store
from pipelines.config import Settings
from pipelines.evaluation.datasets import load_dataset
from pipelines.evaluation.run import ingest_corpus

WEIGHTS = (0.0, 0.3, 0.5, 0.8)


def sweep(dataset: str, fmt: str) -> dict:
    evalset = load_dataset(dataset, fmt)
    variants = variant_sets(evalset.queries)["abbreviations"]
    originals = {q: evalset.queries[q] for q in variants}
    report: dict = {"dataset": evalset.name, "queries": len(variants), "weights": {}}
    with tempfile.TemporaryDirectory(prefix="abbrev-sweep-") as tmp:
        settings = Settings(qdrant_path=str(Path(tmp) / "qdrant"), collection="sweep")
        ingest_corpus(settings, evalset, Path(tmp) / "corpus")
        embedder, store = build_embedder(settings), build_store(settings)
        try:
            embedder.load()
            retriever = build_retriever(settings, embedder, store)
            base = retriever.encoder
            for weight in WEIGHTS:
                expander = AbbreviationExpander(base.analyzer, tuple(curated_pairs()), weight) if weight else None
                retriever.encoder = dataclasses.replace(base, expander=expander)
                report["weights"][str(weight)] = {
                    mode: {"original": _mrr(_rank(retriever, originals, mode), evalset, list(variants)),
                           "variant": _mrr(_rank(retriever, variants, mode), evalset, list(variants))}
                    for mode in ("bm25", "hybrid")}
        finally:
            store.close()
    return report


if __name__ == "__main__":
    result = sweep(sys.argv[1], sys.argv[2])
    Path(sys.argv[3]).write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
