"""`answer_in_context@B`: the share of questions whose gold answer text lies inside the context packed for
them at a budget of B tokens (retrieval/context.py), per retrieval mode and packing strategy. Needs a set with
answer texts (SQuAD, DPR); no LLM is involved.

Matching: any of a question's answers, after collapsing whitespace runs to one space on both sides, found
case-sensitively in the blocks' text (the `[n] source` header lines left out, so a title or file name never
counts as an answer). Case-sensitive because SQuAD answers are exact spans of their paragraph; a
case-insensitive match would credit the same word elsewhere more often. Tokens are counted by the
`context_tokenizer` setting's tokenizer, else the estimate (retrieval/tokens.py).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

from ingest.errors import UsageError
from pipelines.build import build_embedder, build_retriever, build_store, model_identity
from pipelines.config import Settings
from pipelines.evaluation.datasets import EvalSet
from retrieval.context import STRATEGIES, ContextPacker, stage_options
from retrieval.focus import LexicalScorer
from retrieval.tokens import token_counter

BUDGETS = (256, 512, 1024, 2048)
_HEADER = re.compile(r"(?m)^\[\d+\] [^\n]*\n")


def squash(text: str) -> str:
    return " ".join(text.split())


def answer_found(context: str, answers: Sequence[str]) -> bool:
    """Whether any non-blank answer lies inside the context's block texts (whitespace-normalised, case-sensitive)."""
    bodies = squash(" ".join(_HEADER.split(context)))
    return any(squash(a) and squash(a) in bodies for a in answers)


def answer_in_context(settings: Settings, evalset: EvalSet, modes: list[str], strategies: list[str],
                      budgets: Sequence[int] = BUDGETS) -> dict:
    """{"<mode> <strategy>": {"answer_in_context_at_B": share, "tokens_at_B": mean tokens used, "seconds"}}
    over the questions that have answers; the collection must hold the set's corpus (run.py ingests it)."""
    unknown = sorted(set(strategies) - set(STRATEGIES))
    if unknown:
        raise UsageError(f"strategies: {unknown} not in {list(STRATEGIES)}")
    questions = {q: evalset.answers[q] for q in evalset.queries if evalset.answers.get(q)}
    counter = token_counter(settings.context_tokenizer)
    embedder, store = build_embedder(settings), build_store(settings)
    rows: dict[str, dict] = {}
    try:
        embedder.load()
        store.check_compatible(model_identity(settings.embed_model), embedder.dimension)
        retriever = build_retriever(settings, embedder, store)
        for mode in modes:
            cache: dict[tuple, dict[str, list]] = {}  # topk and merge ask for the same passages: retrieve once
            for strategy in strategies:
                started = time.perf_counter()
                stages = stage_options(strategy, settings.expand or None, settings.mmr)
                key = (stages["expand"], stages["mmr"])
                if key not in cache:
                    cache[key] = {q: retriever.retrieve(evalset.queries[q], settings.context_candidates, None, True,
                                                        mode=mode, expand=stages["expand"], mmr=stages["mmr"])
                                  for q in questions}
                packer = ContextPacker(counter, strategy, LexicalScorer(retriever.encoder))  # focus: as indexed
                row: dict = {"questions": len(questions)}
                for budget in budgets:
                    packed = [(packer.pack(evalset.queries[q], cache[key][q], budget), q) for q in questions]
                    hits = sum(answer_found(ctx.text, questions[q]) for ctx, q in packed)
                    row[f"answer_in_context_at_{budget}"] = round(hits / max(1, len(questions)), 4)
                    row[f"tokens_at_{budget}"] = round(sum(ctx.tokens for ctx, _ in packed) / max(1, len(packed)), 1)
                row["seconds"] = round(time.perf_counter() - started, 2)
                rows[f"{mode} {strategy}"] = row
    finally:
        store.close()
    return {"counter": counter.name, "candidates": settings.context_candidates, "budgets": list(budgets),
            "rows": rows}


def context_table(context: dict) -> str:
    budgets = context["budgets"]
    head = "| mode | strategy | " + " | ".join(f"answer_in_context@{b}" for b in budgets) + " | seconds |"
    lines = [head, "|" + "---|" * (len(budgets) + 3)]
    for label, row in context["rows"].items():
        mode, strategy = label.split(" ", 1)
        values = " | ".join(f"{row[f'answer_in_context_at_{b}']:.4f}" for b in budgets)
        lines.append(f"| {mode} | {strategy} | {values} | {row['seconds']} |")
    return "\n".join(lines)
