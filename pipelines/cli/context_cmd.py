"""`german-rag context "FRAGE" --budget N`: the cited context (or the filled QA prompt) a generator receives."""

from __future__ import annotations

import argparse
import json

from ingest.errors import UsageError
from pipelines.cli.filter_args import parse_filters
from pipelines.config import Settings
from pipelines.sources import shown, valid_text
from retrieval.context import STRATEGIES, PackedContext
from retrieval.relevance import resolve_min_relevance
from retrieval.schema import QueryError

MAX_BUDGET = 1_000_000  # the setting's own bound (pipelines/config.py context_budget)


def add_context_parser(sub: argparse._SubParsersAction, common) -> None:
    p = sub.add_parser("context", help="the numbered, cited context for a question, packed into a token budget")
    p.add_argument("text", metavar="FRAGE")
    p.add_argument("--budget", type=int, metavar="N", help="tokens the context (with --prompt: the prompt) may take "
                   "(default: setting context_budget)")
    p.add_argument("--strategy", choices=list(STRATEGIES), help="topk, merge, expand, mmr or focus (default: setting "
                   "context_strategy)")
    p.add_argument("--prompt", action="store_true", help="print the filled QA prompt (setting context_prompt or "
                   "the shipped German template); its tokens count towards the budget")
    p.add_argument("--filter", action="append", default=[], metavar="FIELD=VALUE",
                   help="metadata filter, repeatable, as for `query` (FIELD=VALUE, FIELD>=V, FIELD<V, ...)")
    p.add_argument("--mode", choices=["dense", "bm25", "hybrid"], help="retrieval mode (default: setting)")
    p.add_argument("--truncate", action="store_true", help="cut a query over the model's token limit")
    p.add_argument("--min-relevance", metavar="X", help=MIN_RELEVANCE_HELP)
    common(p)


def format_context(ctx: PackedContext) -> str:
    sources = "\n".join(f"  [{c.number}] {shown(c.source)} [{c.start}:{c.end}]{' (cut)' if c.cut else ''}"
                        for c in ctx.citations)
    empty = "nicht in den Unterlagen (no passage reaches min_relevance)" if ctx.abstained else "no passages found"
    body = ctx.prompt if ctx.prompt is not None else (ctx.text or empty)
    return (f"{body}\n\n-- {ctx.tokens} of {ctx.budget} tokens ({ctx.tokenizer}), strategy {ctx.strategy}, "
            f"{len(ctx.citations)} source(s)" + (f":\n{sources}" if sources else ""))


def context_cmd(args: argparse.Namespace, settings: Settings) -> None:
    from pipelines.api import build_context

    if args.budget is not None and not 1 <= args.budget <= MAX_BUDGET:
        raise UsageError(f"--budget {args.budget}: give 1 to {MAX_BUDGET} tokens")
    settings = with_min_relevance(settings, args.min_relevance)
    filters = parse_filters(args.filter, settings.meta_schema)
    ctx = build_context(settings, args.text, args.budget, filters, args.mode, args.strategy, args.prompt,
                        args.truncate)
    if args.json:
        print(json.dumps(valid_text(ctx.to_dict()), ensure_ascii=False, indent=2))
    else:
        print(valid_text(format_context(ctx)))


MIN_RELEVANCE_HELP = ("calibrated relevance 0..1 or 'auto' a passage needs; below it nothing is returned "
                      "(default: setting min_relevance)")


def with_min_relevance(settings: Settings, value: str | None) -> Settings:
    """`settings` with the flag's min_relevance; a bad value is a usage error (exit 2) naming the flag."""
    if value is None:
        return settings
    try:
        number = resolve_min_relevance(value, "--min-relevance")
    except QueryError as exc:
        raise UsageError(str(exc)) from exc
    auto = value.strip().lower() == "auto"
    return settings.model_copy(update={"min_relevance": "auto" if auto else number})
