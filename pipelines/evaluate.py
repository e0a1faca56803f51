"""`german-rag eval`: ingest a dataset's corpus through the real ingest path, run its queries in each
mode, and score the rankings (MRR@5/10, nDCG@10, recall@1/5/10/100), optionally writing a report."""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pipelines.build import build_embedder, build_retriever, build_store, model_identity
from pipelines.config import Settings
from pipelines.datasets import EvalSet, doc_id_from_path, load_dataset, write_corpus_files
from pipelines.metrics import dedupe_ranked, evaluate_run

RANK_DEPTH = 100  # retrieved chunks per query; recall@100 is counted on the documents they map to


@dataclass
class ModeResult:
    mode: str
    metrics: dict
    seconds: float


def ingest_corpus(settings: Settings, evalset: EvalSet, folder: Path) -> dict:
    """Each corpus unit becomes one file, ingested like any user file (parse, chunk, embed, write)."""
    from pipelines.commands import ingest_paths

    files = write_corpus_files(evalset, folder)
    return ingest_paths(settings, files, progress=True).summary()


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


def evaluate(settings: Settings, dataset: str, fmt: str | None, modes: list[str]) -> dict:
    evalset = load_dataset(dataset, fmt)
    with tempfile.TemporaryDirectory(prefix="german-rag-eval-") as tmp:
        if settings.qdrant_url is None:
            settings = settings.model_copy(update={"qdrant_path": str(Path(tmp) / "qdrant")})
        settings = settings.model_copy(update={"collection": f"eval_{abs(hash(evalset.name)) % 10**8}"})
        started = time.perf_counter()
        ingest = ingest_corpus(settings, evalset, Path(tmp) / "corpus")
        ingest_seconds = time.perf_counter() - started
        results = run_modes(settings, evalset, modes)
    return {
        "dataset": evalset.name, "model": settings.embed_model, "documents": len(evalset.corpus),
        "queries": len(evalset.queries), "ingest": ingest, "ingest_seconds": round(ingest_seconds, 2),
        "modes": {r.mode: {"seconds": round(r.seconds, 2), **r.metrics} for r in results},
    }


COLUMNS = ["mrr_at_5", "mrr_at_10", "ndcg_at_10", "recall_at_1", "recall_at_5", "recall_at_10", "recall_at_100"]


def markdown_table(report: dict) -> str:
    head = "| mode | " + " | ".join(COLUMNS) + " | seconds |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 2)]
    for mode, res in report["modes"].items():
        values = " | ".join(f"{res['mean'][c]:.4f}" for c in COLUMNS)
        lines.append(f"| {mode} | {values} | {res['seconds']} |")
    return "\n".join(lines)


def write_report(report: dict, folder: Path, command: str) -> None:
    """Markdown table, the full JSON and a recall@k plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
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
