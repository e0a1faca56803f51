"""What each CLI command does, given parsed arguments and settings. A command returns its outcome: None when
all went well, otherwise the kind of what went wrong (INPUT: some inputs failed; UNAVAILABLE: the store went
away mid-run, after the report was printed); main.py's EXIT_CODES turns it into the exit code.

A command imports what it uses when it runs: `config` and `--help` need no store, `query --mode bm25`
and an unchanged re-ingest no torch or transformers (tests/test_startup.py holds that line).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ingest.errors import ConfigError, ErrorKind, UsageError
from ingest.meta_fields import MetaSchema
from pipelines.api import ingest_paths, retrieve_many
from pipelines.build import (
    build_embedder,
    build_ingest_runner,
    build_store,
    embed_backend_status,
)
from pipelines.cli.context_cmd import with_min_relevance
from pipelines.cli.filter_args import parse_filters
from pipelines.cli.optimize_cmd import optimize_cmd
from pipelines.cli.output import out as _out
from pipelines.config import Settings
from pipelines.indexing.discover import parse_shard
from pipelines.logs import audit
from pipelines.sources import file_path, shown, source_query, typed_source, under
from retrieval.query_check import check_expand, check_mmr
from retrieval.schema import QueryError

if TYPE_CHECKING:
    from pipelines.indexing.report import IngestReport
    from retrieval.schema import Passage


def cli_key() -> str:
    """Who an audit line names for a command-line run (no key involved): the OS user, where there is one."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # a container user without a passwd entry
        return "cli"


DEMO_QUESTIONS = [
    "Wie viele Werktage Urlaub stehen einem Arbeitnehmer jährlich mindestens zu?",
    "Wie lange darf ein Arbeitnehmer werktäglich höchstens arbeiten?",
]


Outcome = ErrorKind | None


def run(command: str, args: argparse.Namespace, settings: Settings) -> Outcome:
    handler = {"ingest": ingest, "sync": sync, "query": query, "delete": delete, "optimize": optimize_cmd,
               "config": show_config, "demo": demo, "eval": evaluate_cmd, "verify": verify_cmd, "serve": serve,
               "keys": keys_cmd, "watch": watch, "mcp": mcp_cmd, "context": context}
    return handler[command](args, settings)


# -- ingest ------------------------------------------------------------------------------------------
def format_report(report: IngestReport) -> str:
    s = report.summary()
    lines = [
        f"collection {s['collection']}: {s['files_seen']} files seen, {s['ingested']} ingested, "
        f"{s['unchanged']} unchanged, {s['failed']} failed, {s['skipped']} skipped"
        + (f", {s['deleted']} deleted (files gone)" if s["deleted"] else ""),
        f"{s['chunks']} chunks, {s['points_written']} points written, {s['points_deleted']} deleted"
        + ("" if s["points_written"] else " (nothing to write)"),
        "time: " + ", ".join(f"{k} {v:.2f}s" for k, v in s["stage_seconds"].items())
        + f", total {s['total_seconds']:.2f}s",
    ]
    for f in report.files:
        if f.status in ("failed", "skipped", "removed", "deleted"):
            lines.append(f"  {f.status.upper()}: {shown(f.error or f.source)}")
        if f.renamed_from:
            lines.append(f"  RENAMED: {shown(f.renamed_from)} -> {shown(f.source)} ({f.chunks_reused} vectors reused)")
    if s["embed_backend"]:
        lines.append(f"embedding: {s['embed_backend'].get('summary') or s['embed_backend']['backend']}")
    if s.get("index"):
        after, seconds = s["index"]["after"], s["index"]["seconds"]
        lines.append(f"index built: {after['indexed']:,} of {after['points']:,} points in HNSW ({seconds:.1f} s)")
    if s["ocr_pages"]:
        lines.append(f"OCR: {s['ocr_pages']} pages read by OCR, {len(s['ocr_low_confidence'])} of low confidence")
    lines += [f"  OCR LOW CONFIDENCE: {shown(x)}" for x in s["ocr_low_confidence"]]
    lines += [f"  OCR PROBLEM: {shown(x)}" for x in s["ocr_problems"]]
    if report.outage:
        lines.append(f"store unavailable, run again later: {shown(report.outage)}")
    return "\n".join(lines)


def _paths(paths: list[str]) -> list[str]:
    """Paths as given; an empty one is bad usage (it would mean the working folder, not "nothing")."""
    if any(not p for p in paths):
        raise UsageError("PATH: an empty path was given (an unset shell variable?); name files or folders")
    return paths


def ingest(args: argparse.Namespace, settings: Settings) -> Outcome:
    try:
        shard = parse_shard(args.shard) if args.shard else None
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    report = ingest_paths(settings, _paths(args.paths), progress=not args.json, shard=shard, bulk=args.bulk,
                          meta=parse_meta(args.meta, settings.meta_schema), optimize=not args.no_optimize)
    summary = report.summary()
    audit("ingest", settings.tenant, cli_key(), files=summary["files_seen"], ingested=summary["ingested"],
          removed=summary["removed"], points_written=summary["points_written"],
          points_deleted=summary["points_deleted"], points_updated=summary["points_updated"])
    _out(args, report.to_dict(), format_report(report))
    if report.outage:  # the store went away mid-run: what was done is reported above, the rest waits
        return ErrorKind.UNAVAILABLE
    return ErrorKind.INPUT if report.count("failed") else None


def parse_meta(items: list[str], schema: MetaSchema) -> dict:
    """`--meta KEY=VALUE` items as user metadata (strings; a declared type is applied when stored); a bad item is
    a UsageError naming it (exit 2)."""
    from pipelines.indexing.fields import MetaValueError, user_meta

    raw: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--meta {item[:60]!r}: expected KEY=VALUE")
        raw[key] = value
    try:
        return user_meta(raw, "--meta", schema)
    except MetaValueError as exc:
        raise UsageError(str(exc)) from exc


def sync(args: argparse.Namespace, settings: Settings) -> Outcome:
    """`sync ROOT...`: ingest, then delete the sources under the roots whose files are gone (report as ingest's,
    with `deleted_sources`); `--dry-run` prints the plan. Exit 1 when a root, a file or a deletion failed."""
    from pipelines.api import sync_paths
    from pipelines.indexing.report import IngestReport

    result = sync_paths(settings, _paths(args.paths), progress=not args.json, dry_run=args.dry_run,
                        allow_mass_delete=args.allow_mass_delete, meta=parse_meta(args.meta, settings.meta_schema),
                        optimize=not args.no_optimize)
    if not isinstance(result, IngestReport):  # a dry run's plan
        plan = result.to_dict()
        _out(args, plan, format_plan(plan))
        return ErrorKind.INPUT if plan["failed"] or plan["refused"] else None
    summary = result.summary()
    audit("sync", settings.tenant, cli_key(), files=summary["files_seen"], ingested=summary["ingested"],
          deleted=summary["deleted"], points_written=summary["points_written"],
          points_deleted=summary["points_deleted"])
    _out(args, result.to_dict(), format_report(result))
    if result.outage:
        return ErrorKind.UNAVAILABLE
    return ErrorKind.INPUT if result.count("failed") else None


def format_plan(plan: dict) -> str:
    lines = [f"dry run: {len(plan['add'])} to add, {len(plan['replace'])} to replace, {len(plan['rename'])} "
             f"renamed, {len(plan['unchanged'])} unchanged, {len(plan['skipped'])} skipped, "
             f"{len(plan['delete'])} to delete, {len(plan['refused'])} deletions refused, {len(plan['failed'])} failed"]
    for key in ("add", "replace", "delete", "refused"):
        lines += [f"  {key.upper()}: {shown(s)}" for s in plan[key]]
    lines += [f"  RENAME: {shown(r['from'])} -> {shown(r['to'])}" for r in plan["rename"]]
    lines += [f"  FAILED: {shown(f['error'])}" for f in plan["failed"]]
    return "\n".join(lines)


# -- query -------------------------------------------------------------------------------------------
def format_passages(passages: list[Passage]) -> str:
    if not passages:
        return "no passages found"
    lines = []
    for rank, p in enumerate(passages, 1):
        where = shown(p.source) + (f", page {p.page}" if p.page else "")
        if p.document.get("title"):
            where = f"{shown(str(p.document['title']))[:80]} ({where})"
        heading = " > ".join(p.heading_path)
        stages = " ".join(f"{k}={v:.3f}" for k, v in p.scores.items())
        lines.append(f"{rank}. {stages}  {where}  [{p.start}:{p.end}]")
        if heading:
            lines.append(f"   {heading}")
        snippet = " ".join(p.text.split())
        lines.append(f"   {snippet[:300]}{'…' if len(snippet) > 300 else ''}")
    return "\n".join(lines)


def query(args: argparse.Namespace, settings: Settings) -> Outcome:
    # The retriever's own checks, asked before the model loads, so that the message names the flag.
    for flag, value, check in (("--expand", args.expand, check_expand), ("--mmr", args.mmr, check_mmr)):
        if value is not None:
            try:
                check(value)
            except QueryError as exc:
                raise UsageError(f"{flag} {value}: {exc}") from exc
    top_k = args.top_k or settings.top_k
    settings = with_min_relevance(settings, args.min_relevance)
    if args.mode:
        settings = settings.model_copy(update={"retrieval_mode": args.mode})
    filters = parse_filters(args.filter, settings.meta_schema)
    passages = retrieve_many(settings, [args.text], top_k, filters, args.truncate, args.rerank, args.expand,
                             args.mmr)[0]
    _out(args, {"query": args.text, "passages": [p.to_dict() for p in passages]}, format_passages(passages))
    return None


def context(args: argparse.Namespace, settings: Settings) -> Outcome:
    from pipelines.cli.context_cmd import context_cmd

    context_cmd(args, settings)
    return None


# -- delete, config, demo ------------------------------------------------------------------------------
def _matching(stored: dict, target: str, given: str) -> tuple[str, list[str]]:
    """(name, stored sources) a delete means: the source itself or those under it as a folder; failing
    that, the name as a report spells it (`name_\\xff.txt`), or as given (a source of an older rule)."""
    for name in (target, typed_source(given), given):
        names = sorted(s for s in stored if s == name or under(s, name)) if name else []
        if names:
            return name or target, names
    return target, []


def delete(args: argparse.Namespace, settings: Settings) -> Outcome:
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
            for name in names:
                audit("delete", settings.tenant, cli_key(), source=name)
    finally:
        store.close()
    verb = "would delete" if args.dry_run else "deleted"
    text = (f"{verb} {points} points of {len(names)} source(s) under {shown(target)}"
            + "".join(f"\n  {shown(s)}" for s in names) if names else f"no points stored for {shown(target)}")
    _out(args, {"source": target, "sources": names, "sources_deleted": 0 if args.dry_run else len(names),
                "points_deleted": 0 if args.dry_run else points, "points": points, "dry_run": args.dry_run}, text)
    return None if names else ErrorKind.INPUT  # nothing stored under that name


def evaluate_cmd(args: argparse.Namespace, settings: Settings) -> Outcome:
    from pipelines.evaluation.run import evaluate, markdown_table, write_report
    from retrieval.context import STRATEGIES

    strategies = args.context_strategies or []
    strategies = list(STRATEGIES) if "all" in strategies else list(dict.fromkeys(strategies))
    report = evaluate(settings, args.dataset, args.fmt, args.modes or ["dense", "bm25", "hybrid"], args.ablation,
                      strategies)
    if args.report:
        write_report(report, Path(args.report), "german-rag " + " ".join(sys.argv[1:]))
    _out(args, report, f"{report['dataset']}: {report['documents']} documents, {report['queries']} queries\n"
         + markdown_table(report))
    return None


def verify_cmd(args: argparse.Namespace, settings: Settings) -> Outcome:
    from pipelines.indexing.verify import format_verify, verify_collection

    embedder = build_embedder(settings)
    store = build_store(settings)
    try:
        embedder.prepare()  # verify compares ids and sizes: the model's config files, never its weights
        runner = build_ingest_runner(settings, embedder, store, progress=False)
        # As a tenant, verify sees what that tenant's ingest wrote (every group of it), not only what its
        # --groups may read; the owner sees every tenant.
        seen = store if settings.tenant is None else runner.io
        report = verify_collection(seen, runner.model_id, embedder.dimension, runner.doc_id_of,
                                   _paths(args.paths))
    finally:
        store.close()
    _out(args, report.to_dict(), format_verify(report))
    return None if report.ok else ErrorKind.INPUT


def mcp_cmd(args: argparse.Namespace, settings: Settings) -> Outcome:
    """`german-rag mcp`: stdio (one local client) or http (the service, whose /mcp is the MCP endpoint)."""
    if args.transport == "http":
        from pipelines.service.app import serve as run_service

        run_service(settings)
        return None
    from pipelines.service.mcp import serve_stdio

    serve_stdio(settings)
    return None


def serve(args: argparse.Namespace, settings: Settings) -> Outcome:
    from pipelines.service.app import serve as run_service

    run_service(settings, watch=_paths(args.watch))
    return None


def watch(args: argparse.Namespace, settings: Settings) -> Outcome:
    """`watch ROOT...`: sync, then apply file events until SIGTERM or SIGINT (exit 0, after the current file;
    what is left waits for the next start's sync). The totals are printed at the end."""
    from pipelines.cli.watch import run_watch

    totals = run_watch(settings, _paths(args.paths), args.allow_mass_delete, args.metrics_port)
    files = ", ".join(f"{n} {action}" for action, n in sorted(totals["files"].items())) or "no changes"
    _out(args, totals, f"watch stopped: {totals['events']} events, {files}; {totals['failures']} failed, "
         f"{totals['retries']} retries after store outages, {totals['pending']} paths left for the next start")
    return None


def keys_cmd(args: argparse.Namespace, settings: Settings) -> Outcome:
    """`keys add` prints a new key once (stdout; the rest to stderr), `keys list` shows no secrets, `keys revoke`."""
    from pipelines.config import group_list
    from pipelines.service.principals import add_key, load_keys, revoke_key

    if not settings.keys_file:
        raise ConfigError("keys: no keys file: set GERMAN_RAG_KEYS_FILE (setting keys_file) or --keys-file")
    path = settings.keys_file
    if args.keys_action == "add":
        key, record = add_key(path, args.tenant, group_list(args.groups or ""), args.role, args.name)
        if args.json:
            _out(args, {"key": key, **record.public()}, "")
        else:
            print(key)
            print(f"key {record.key_id} ({record.name}): tenant {record.tenant}, role {record.role}, groups "
                  f"{list(record.groups)}; shown once, only its hash is kept in {path}", file=sys.stderr)
    elif args.keys_action == "list":
        records = [r.public() for r in load_keys(path)]
        lines = [f"{r['key_id']}  {r['name']}  tenant={r['tenant']}  groups={','.join(r['groups']) or '-'}  "
                 f"role={r['role']}  created={r['created']}" for r in records]
        _out(args, {"keys": records}, "\n".join(lines) or "no keys")
    else:
        gone = revoke_key(path, args.key_id)
        _out(args, {"revoked": gone.public()}, f"revoked key {gone.key_id} ({gone.name}, tenant {gone.tenant})")
    return None


def show_config(args: argparse.Namespace, settings: Settings) -> Outcome:
    data = settings.public_dict()
    text = "\n".join(f"{k} = {v!r}" for k, v in data.items())
    status = embed_backend_status(settings, measure=args.calibrate)
    if status is not None:
        data["embed_backend_auto"] = status
        text += f"\n\nembedding backend: {status.get('summary') or status['backend']}"
        for t in status.get("auto", {}).get("trials", []):
            speed = (f"x{t['speedup']:.2f} fp32, {t['tokens_per_s']:,.0f} tokens/s, " if t["speedup"]
                     else "not timed, ")
            figures = (f"{speed}min cosine {t['min_cosine']:.4f}, query {t['query_ms']:.1f} ms" if not t["error"]
                       else t["error"])
            text += f"\n  {t['backend']:<11} {'pass' if t['passed'] else 'FAIL'}  {figures}"
    _out(args, data, text)
    return None


def demo(args: argparse.Namespace, settings: Settings) -> Outcome:
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
        return ErrorKind.INPUT
    return None

