"""MRR@5 of the queries the abbreviation rewrite changes, original and variant, for several expansion rules
(`AbbreviationExpander.weight`, 0 = no expansion; `share_words`; with or without the pairs the ingest
learned), bm25 and hybrid, on one real ingest:

    GERMAN_RAG_EMBED_MODEL=$M python -m benchmarks.abbrev_weight_sweep ../shared/data/xquad-de squad out.json

Per rule also the full-set originals against the reference rule (`REFERENCE`): only a query whose BM25 vector
differs between the two can rank differently, so those are ranked under both and the difference of their
reciprocal ranks, summed and divided by all queries, is the exact change of the full set's MRR@5.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
from pathlib import Path

from benchmarks.variants_eval import _mrr, _rank, curated_pairs, variant_sets
from ingest.abbreviations import AbbreviationExpander
from pipelines.build import build_embedder, build_retriever, build_store, stored_abbreviations
from pipelines.config import Settings
from pipelines.evaluation.datasets import load_dataset
from pipelines.evaluation.metrics import evaluate_run
from pipelines.evaluation.run import ingest_corpus

# (weight, share_words, with the collection's learned pairs); weight 0 = no expansion
RULES = ((0.0, None, False), (0.5, None, False), (0.8, None, False), (0.5, 2, False), (0.8, 2, False),
         (0.5, 1, False), (0.5, 2, True))
REFERENCE = (0.5, None, False)  # the rule of the main tables (commit 85544a0)


def _expander(base, weight: float, share: int | None, learned: list) -> AbbreviationExpander | None:
    pairs = tuple(dict.fromkeys([*curated_pairs(), *learned]))
    return AbbreviationExpander(base.analyzer, pairs, weight, share) if weight else None


def _rr(retriever, evalset, queries: dict[str, str], mode: str) -> dict[str, float]:
    """Reciprocal rank @5 per query."""
    ranked = _rank(retriever, queries, mode)
    run = evaluate_run(ranked, {q: evalset.qrels[q] for q in queries}, ks=(5,))
    return {q: row["mrr_at_5"] for q, row in run["per_query"].items()}


def sweep(dataset: str, fmt: str) -> dict:
    evalset = load_dataset(dataset, fmt)
    variants = variant_sets(evalset.queries)["abbreviations"]
    originals = {q: evalset.queries[q] for q in variants}
    report: dict = {"dataset": evalset.name, "queries": len(variants), "all_queries": len(evalset.queries),
                    "reference": list(REFERENCE), "rules": {}}
    with tempfile.TemporaryDirectory(prefix="abbrev-sweep-") as tmp:
        settings = Settings(qdrant_path=str(Path(tmp) / "qdrant"), collection="sweep")
        ingest_corpus(settings, evalset, Path(tmp) / "corpus")
        embedder, store = build_embedder(settings), build_store(settings)
        try:
            embedder.load()
            retriever = build_retriever(settings, embedder, store)
            base = retriever.encoder
            stored = stored_abbreviations(store)
            report["learned_pairs"] = len(stored)
            reference = dataclasses.replace(base, expander=_expander(base, *REFERENCE[:2], []))
            for weight, share, learned in RULES:
                encoder = dataclasses.replace(base, expander=_expander(base, weight, share, stored if learned else []))
                moved = {q: t for q, t in evalset.queries.items()
                         if encoder.encode_query(t) != reference.encode_query(t)}
                row: dict = {"full_set_changed_queries": len(moved)}
                for mode in ("bm25", "hybrid"):
                    retriever.encoder = reference
                    before = _rr(retriever, evalset, moved, mode) if moved else {}
                    retriever.encoder = encoder
                    after = _rr(retriever, evalset, moved, mode) if moved else {}
                    row[mode] = {"original": _mrr(_rank(retriever, originals, mode), evalset, list(variants)),
                                 "variant": _mrr(_rank(retriever, variants, mode), evalset, list(variants)),
                                 "full_set_original_delta": round(
                                     sum(after[q] - before[q] for q in moved) / len(evalset.queries), 4)}
                name = f"{weight} share_words={share}" + (" +learned" if learned else "")
                report["rules"][name] = row
                print(name, json.dumps(row), flush=True)
        finally:
            store.close()
    return report


if __name__ == "__main__":
    result = sweep(sys.argv[1], sys.argv[2])
    Path(sys.argv[3]).write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
