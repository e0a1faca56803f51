"""`german-rag eval`: ingest a dataset's corpus through the real ingest path, run its queries in each
mode, and score the rankings (MRR@5/10, nDCG@10, recall@1/5/10/100), optionally writing a report."""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pipelines.build import build_embedder, build_ingest_runner, build_retriever, build_store, model_identity
from pipelines.config import Settings
from pipelines.evaluation.context_eval import answer_in_context, context_table
from pipelines.evaluation.datasets import DatasetError, EvalSet, doc_id_from_path, load_dataset, write_corpus_files
from pipelines.evaluation.metrics import dedupe_ranked, evaluate_run

RANK_DEPTH = 100  # retrieved chunks per query; recall@100 is counted on the documents they map to


@dataclass
class ModeResult:
    mode: str
    metrics: dict
    seconds: float


def ingest_corpus(settings: Settings, evalset: EvalSet, folder: Path) -> dict:
    """Each corpus unit becomes one file, ingested like any user file (parse, chunk, embed, write)."""
    files = write_corpus_files(evalset, folder)
    embedder, store = build_embedder(settings), build_store(settings)
    try:
        return build_ingest_runner(settings, embedder, store).run(files).summary()
    finally:
        store.close()


def run_modes(settings: Settings, evalset: EvalSet, modes: list[str]) -> list[ModeResult]:
    embedder, store = build_embedder(settings), build_store(settings)
    try:
        embedder.load()
        store.check_compatible(model_identity(settings.embed_model), embedder.dimension)
        retriever = build_retriever(settings, embedder, store)
        out = []
        for mode in modes:
            started = time.perf_counter()
            results = {}
            for qid, text in evalset.queries.items():
                passages = retriever.retrieve(text, RANK_DEPTH, None, True, mode=mode)
                results[qid] = dedupe_ranked(doc_id_from_path(p.source) for p in passages)
            out.append(ModeResult(mode, evaluate_run(results, evalset.qrels), time.perf_counter() - started))
        return out
    finally:
        store.close()


# Lexical-analyzer variants for the ablation rows: each is ingested into its own collection and
# searched in bm25 mode. "plain" is lower-cased word tokens: the usual BM25 baseline.
ABLATIONS: dict[str, dict] = {
    "bm25 plain words": {"bm25_stem": False, "bm25_compounds": False, "bm25_stopwords": False, "bm25_fold": False},
    "bm25 + stopwords": {"bm25_stem": False, "bm25_compounds": False},
    "bm25 + stemming": {"bm25_compounds": False},
    "bm25 + compounds (no stemming)": {"bm25_stem": False},
    "bm25 full analyzer": {},
}


def _one_variant(settings: Settings, evalset: EvalSet, modes: list[str], tmp: Path, tag: str,
                 strategies: list[str] | None = None) -> tuple[dict, list, dict | None]:
    if settings.qdrant_url is None:
        settings = settings.model_copy(update={"qdrant_path": str(tmp / f"qdrant-{tag}")})
    settings = settings.model_copy(update={"collection": f"eval_{tag}"})
    ingest = ingest_corpus(settings, evalset, tmp / "corpus")
    context = answer_in_context(settings, evalset, modes, strategies) if strategies else None
    return ingest, run_modes(settings, evalset, modes), context


def evaluate(settings: Settings, dataset: str, fmt: str | None, modes: list[str], ablation: bool = False,
             strategies: list[str] | None = None) -> dict:
    """Scores per mode; with `ablation`, also bm25 rows for each analyzer variant; with `strategies`, the
    share of questions whose answer lies in the packed context (`answer_in_context@B`, context_eval.py)."""
    evalset = load_dataset(dataset, fmt)
    if strategies and not evalset.answers:
        raise DatasetError(f"{evalset.name}: answer_in_context needs answer texts (a SQuAD or DPR set)")
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="german-rag-eval-") as tmp:
        started = time.perf_counter()
        ingest, results, context = _one_variant(settings, evalset, modes, Path(tmp), "main", strategies)
        ingest_seconds = time.perf_counter() - started
        rows.update({r.mode: {"seconds": round(r.seconds, 2), **r.metrics} for r in results})
        for i, (label, overrides) in enumerate(ABLATIONS.items() if ablation else ()):
            _, (res,), _ = _one_variant(settings.model_copy(update=overrides), evalset, ["bm25"], Path(tmp), f"ab{i}")
            rows[label] = {"seconds": round(res.seconds, 2), "settings": overrides, **res.metrics}
    return {
        "dataset": evalset.name, "model": settings.embed_model, "documents": len(evalset.corpus),
        "queries": len(evalset.queries), "ingest": ingest, "ingest_seconds": round(ingest_seconds, 2),
        "settings": {k: v for k, v in settings.public_dict().items() if k.startswith(("bm25", "fusion", "rrf",
                     "dense_weight", "chunk", "retrieval_mode", "rerank", "expand"))},
        "modes": rows, **({"context": context} if context else {}),
    }


COLUMNS = ["mrr_at_5", "mrr_at_10", "ndcg_at_10", "recall_at_1", "recall_at_5", "recall_at_10", "recall_at_100"]


def markdown_table(report: dict) -> str:
    head = "| mode | " + " | ".join(COLUMNS) + " | seconds |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 2)]
    for mode, res in report["modes"].items():
        values = " | ".join(f"{res['mean'][c]:.4f}" for c in COLUMNS)
        lines.append(f"| {mode} | {values} | {res['seconds']} |")
    if report.get("context"):
        lines += ["", f"answer_in_context@B (tokens: {portable(report['context']['counter'])}, "
                  f"{report['context']['candidates']} candidates):", "", context_table(report["context"])]
    return "\n".join(lines)


def portable(text: str) -> str:
    """`text` with every absolute path cut to its last component: a committed report names the model and the
    data set, never the folders of the machine that made it."""
    return " ".join(f"…/{Path(word).name}" if word.startswith(("/", "~")) and len(word) > 1 else word
                    for word in text.split(" "))


def write_report(report: dict, folder: Path, command: str) -> None:
    """Markdown table, the full JSON and a recall@k plot; model and command carry no machine paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    report = {**report, "model": portable(report["model"])}
    command = portable(command)
    name = Path(report["dataset"]).stem or "eval"
    (folder / f"{name}.json").write_text(json.dumps(report, ensure_ascii=False, indent=1))
    text = (f"# {report['dataset']}\n\nModel: `{report['model']}`; {report['documents']} documents, "
            f"{report['queries']} queries.\n\nCommand: `{command}`\n\n{markdown_table(report)}\n")
    (folder / f"{name}.md").write_text(text)
    ks = [1, 5, 10, 100]
    fig, ax = plt.subplots(figsize=(6, 4))
    for mode, res in report["modes"].items():
        ax.plot(ks, [res["mean"][f"recall_at_{k}"] for k in ks], marker="o", label=mode)
    ax.set_xscale("log")
    ax.set(xlabel="k", ylabel="recall@k", title=f"{name}: recall@k", ylim=(0, 1.02))
    ax.legend()
    fig.tight_layout()
    fig.savefig(folder / f"{name}-recall.png", dpi=100)
    plt.close(fig)
