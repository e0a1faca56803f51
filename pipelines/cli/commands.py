"""What each CLI command does, given parsed arguments and settings. Returns the exit code.

A command imports what it uses when it runs: `config` and `--help` need no store, `query --mode bm25`
and an unchanged re-ingest no torch or transformers (tests/test_startup.py holds that line).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ingest.schema import FILTER_FIELDS, StoreError
from ingest.store.filters import check_filter_integer, is_text, is_uuid
from pipelines.api import ingest_paths, retrieve_many
from pipelines.build import (
    build_embedder,
    build_ingest_runner,
    build_store,
)
from pipelines.config import ConfigError, Settings, UsageError
from pipelines.indexing.discover import parse_shard
from pipelines.sources import file_path, shown, source_query, typed_source, under, valid_text
from retrieval.query_check import MAX_EXPAND

if TYPE_CHECKING:
    from pipelines.indexing.report import IngestReport
    from retrieval.schema import Passage

DEMO_QUESTIONS = [
    "Wie viele Werktage Urlaub stehen einem Arbeitnehmer jährlich mindestens zu?",
    "Wie lange darf ein Arbeitnehmer werktäglich höchstens arbeiten?",
]


def run(command: str, args: argparse.Namespace, settings: Settings) -> int:
    handler = {"ingest": ingest, "query": query, "delete": delete, "config": show_config, "demo": demo,
               "eval": evaluate_cmd, "verify": verify_cmd, "serve": serve}
    return handler[command](args, settings)


def _out(args: argparse.Namespace, data: dict, text: str) -> None:
    print(json.dumps(valid_text(data), ensure_ascii=False, indent=2) if args.json else valid_text(text))


# -- ingest ------------------------------------------------------------------------------------------
def format_report(report: IngestReport) -> str:
    s = report.summary()
    lines = [
        f"collection {s['collection']}: {s['files_seen']} files seen, {s['ingested']} ingested, "
        f"{s['unchanged']} unchanged, {s['failed']} failed, {s['skipped']} skipped",
        f"{s['chunks']} chunks, {s['points_written']} points written, {s['points_deleted']} deleted"
        + ("" if s["points_written"] else " (nothing to write)"),
        "time: " + ", ".join(f"{k} {v:.2f}s" for k, v in s["stage_seconds"].items())
        + f", total {s['total_seconds']:.2f}s",
    ]
    for f in report.files:
        if f.status in ("failed", "skipped", "removed"):
            lines.append(f"  {f.status.upper()}: {shown(f.error or f.source)}")
    return "\n".join(lines)


def _paths(paths: list[str]) -> list[str]:
    """Paths as given; an empty one is bad usage (it would mean the working folder, not "nothing")."""
    if any(not p for p in paths):
        raise UsageError("PATH: an empty path was given (an unset shell variable?); name files or folders")
    return paths


def ingest(args: argparse.Namespace, settings: Settings) -> int:
    try:
        shard = parse_shard(args.shard) if args.shard else None
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    report = ingest_paths(settings, _paths(args.paths), progress=not args.json, shard=shard, bulk=args.bulk)
    _out(args, report.to_dict(), format_report(report))
    return 1 if report.count("failed") else 0


# -- query -------------------------------------------------------------------------------------------
def parse_filters(items: list[str]) -> dict:
    """`--filter FIELD=VALUE` items as store filters; a malformed item or an integer outside the store's
    range is a UsageError naming the item (exit 2)."""
    filters: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise UsageError(f"--filter {item!r}: expected FIELD=VALUE")
        if key not in FILTER_FIELDS:
            raise UsageError(f"--filter {key!r}: unknown field (allowed: {sorted(FILTER_FIELDS)})")
        parsed: str | int = value
        if FILTER_FIELDS[key] == "integer":
            parsed = _filter_integer(key, value)
        elif key == "source":  # the name ingest stored, whether or not the file still exists
            parsed = _source_filter(value)
        elif key == "doc_id" and not is_uuid(value):
            raise UsageError(f"--filter doc_id={value[:60]}: not a document id (a UUID)")
        elif not is_text(value):  # undecodable bytes: no stored value can match them
            raise UsageError(f"--filter {valid_text(item)}: not valid text (undecodable bytes)")
        if key in filters:
            prev = filters[key]
            filters[key] = [*prev, parsed] if isinstance(prev, list) else [prev, parsed]
        else:
            filters[key] = parsed
    return filters


def _source_filter(value: str) -> str:
    """A file's stored name, or the name as a report spells it where no such file exists; a folder is an
    error: the filter matches sources exactly (`delete FOLDER` is what takes every source under a folder)."""
    if not value.startswith("upload:") and os.path.isdir(value):
        raise UsageError(f"--filter source={value}: is a folder; a source filter names one file")
    target, typed = source_query(value), typed_source(value)
    return typed if typed and not os.path.lexists(file_path(target)) else target


def _filter_integer(key: str, value: str) -> int:
    """An ASCII decimal within the store's integer range (ingest.store.filters.check_filter_integer)."""

    # ASCII digits only: str.isdigit() also accepts '²', which int() refuses.
    match = re.fullmatch(r"(-?)0*([0-9]+)", value)
    if not match:
        raise UsageError(f"--filter {key}={value[:40]!r}: needs an integer")
    sign, digits = match.groups()
    # Past 20 digits a value is out of range anyway; cut it so that int() never meets its 4300-digit limit.
    number = int(sign + digits[:21])
    try:
        return check_filter_integer(key, number)
    except StoreError as exc:
        raise UsageError(f"--filter {key}={value[:40]}{'…' if len(value) > 40 else ''}: {exc}") from exc


def format_passages(passages: list[Passage]) -> str:
    if not passages:
        return "no passages found"
    lines = []
    for rank, p in enumerate(passages, 1):
        where = shown(p.source) + (f", page {p.page}" if p.page else "")
        heading = " > ".join(p.heading_path)
        stages = " ".join(f"{k}={v:.3f}" for k, v in p.scores.items())
        lines.append(f"{rank}. {stages}  {where}  [{p.start}:{p.end}]")
        if heading:
            lines.append(f"   {heading}")
        snippet = " ".join(p.text.split())
        lines.append(f"   {snippet[:300]}{'…' if len(snippet) > 300 else ''}")
    return "\n".join(lines)


def query(args: argparse.Namespace, settings: Settings) -> int:
    if args.expand is not None and not 0 <= args.expand <= MAX_EXPAND:
        raise UsageError(f"--expand {args.expand}: must be from 0 to {MAX_EXPAND} neighbour chunks")
    if args.mmr is not None and not 0 <= args.mmr <= 1:
        raise UsageError(f"--mmr {args.mmr}: lambda must be from 0 to 1")
    top_k = args.top_k or settings.top_k
    if args.mode:
        settings = settings.model_copy(update={"retrieval_mode": args.mode})
    passages = retrieve_many(settings, [args.text], top_k, parse_filters(args.filter), args.truncate,
                             args.rerank, args.expand, args.mmr)[0]
    _out(args, {"query": args.text, "passages": [p.to_dict() for p in passages]}, format_passages(passages))
    return 0


# -- delete, config, demo ------------------------------------------------------------------------------
def _matching(stored: dict, target: str, given: str) -> tuple[str, list[str]]:
    """(name, stored sources) a delete means: the source itself or those under it as a folder; failing
    that, the name as a report spells it (`name_\\xff.txt`), or as given (a source of an older rule)."""
    for name in (target, typed_source(given), given):
        names = sorted(s for s in stored if s == name or under(s, name)) if name else []
        if names:
            return name or target, names
    return target, []


def delete(args: argparse.Namespace, settings: Settings) -> int:
    """Delete one source, or every source under a folder (as ingest named them, the files may be gone)."""
    store = build_store(settings)
    try:
        target = source_query(_paths([args.source])[0])
        store.require_collection()
        exact = store.count({"source": target}) if not os.path.isdir(file_path(target)) else 0
        if exact:  # a file's own source: one filtered count, no scan of the whole collection
            names, points = [target], exact
        else:  # a folder, or a name as a report spells it: look through the stored sources
            stored = store.sources()
            target, names = _matching(stored, target, args.source)
            points = sum(stored[s]["chunks"] for s in names)
        if not args.dry_run:
            points = sum(store.delete_source(s) for s in names)
    finally:
        store.close()
    verb = "would delete" if args.dry_run else "deleted"
    text = (f"{verb} {points} points of {len(names)} source(s) under {shown(target)}"
            + "".join(f"\n  {shown(s)}" for s in names) if names else f"no points stored for {shown(target)}")
    _out(args, {"source": target, "sources": names, "sources_deleted": 0 if args.dry_run else len(names),
                "points_deleted": 0 if args.dry_run else points, "points": points, "dry_run": args.dry_run}, text)
    return 0 if names else 1


def evaluate_cmd(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.evaluation.run import evaluate, markdown_table, write_report

    report = evaluate(settings, args.dataset, args.fmt, args.modes or ["dense", "bm25", "hybrid"], args.ablation)
    if args.report:
        write_report(report, Path(args.report), "german-rag " + " ".join(sys.argv[1:]))
    _out(args, report, f"{report['dataset']}: {report['documents']} documents, {report['queries']} queries\n"
         + markdown_table(report))
    return 0


def verify_cmd(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.indexing.verify import format_verify, verify_collection

    embedder = build_embedder(settings)
    store = build_store(settings)
    try:
        embedder.prepare()  # verify compares ids and sizes: the model's config files, never its weights
        runner = build_ingest_runner(settings, embedder, store, progress=False)
        report = verify_collection(store, runner.model_id, embedder.dimension, runner.fingerprint,
                                   _paths(args.paths))
    finally:
        store.close()
    _out(args, report.to_dict(), format_verify(report))
    return 0 if report.ok else 1


def serve(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.service.app import serve as run_service

    return run_service(settings)


def show_config(args: argparse.Namespace, settings: Settings) -> int:
    data = settings.public_dict()
    text = "\n".join(f"{k} = {v!r}" for k, v in data.items())
    _out(args, data, text)
    return 0


def demo(args: argparse.Namespace, settings: Settings) -> int:
    examples = Path(__file__).resolve().parents[1] / "examples"
    settings = settings.model_copy(update={"collection": "demo"}) if not args.collection else settings
    report = ingest_paths(settings, [examples], progress=not args.json)
    answers = list(zip(DEMO_QUESTIONS, retrieve_many(settings, DEMO_QUESTIONS, 3, {}, False), strict=True))
    if args.json:
        print(json.dumps({"ingest": report.summary(), "answers": [
            {"query": q, "passages": [p.to_dict() for p in ps]} for q, ps in answers]}, ensure_ascii=False,
            indent=2))
    else:
        print(format_report(report))
        for question, passages in answers:
            print(f"\nFrage: {question}\n{format_passages(passages)}")
    if report.count("failed"):
        print("some example files failed", file=sys.stderr)
        return 1
    return 0
