"""`german-rag context "FRAGE" --budget N`: the cited context (or the filled QA prompt) a generator receives."""

from __future__ import annotations

import argparse
import json

from ingest.errors import UsageError
from pipelines.cli.filter_args import parse_filters
from pipelines.config import Settings
from pipelines.sources import shown, valid_text
from retrieval.context import STRATEGIES, PackedContext

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
    common(p)


def format_context(ctx: PackedContext) -> str:
    sources = "\n".join(f"  [{c.number}] {shown(c.source)} [{c.start}:{c.end}]{' (cut)' if c.cut else ''}"
                        for c in ctx.citations)
    body = ctx.prompt if ctx.prompt is not None else (ctx.text or "no passages found")
    return (f"{body}\n\n-- {ctx.tokens} of {ctx.budget} tokens ({ctx.tokenizer}), strategy {ctx.strategy}, "
            f"{len(ctx.citations)} source(s)" + (f":\n{sources}" if sources else ""))


def context_cmd(args: argparse.Namespace, settings: Settings) -> None:
    from pipelines.api import build_context

    if args.budget is not None and not 1 <= args.budget <= MAX_BUDGET:
        raise UsageError(f"--budget {args.budget}: give 1 to {MAX_BUDGET} tokens")
    filters = parse_filters(args.filter, settings.meta_schema)
    ctx = build_context(settings, args.text, args.budget, filters, args.mode, args.strategy, args.prompt,
                        args.truncate)
    if args.json:
        print(json.dumps(valid_text(ctx.to_dict()), ensure_ascii=False, indent=2))
    else:
        print(valid_text(format_context(ctx)))
