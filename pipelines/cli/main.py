"""The `german-rag` command line. Exit codes: 0 all done, 1 some inputs failed, 2 bad usage or configuration,
3 unavailable (retry later), 70 internal error."""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
import warnings

from ingest.errors import ErrorKind, GermanRagError, InternalError
from pipelines.cli.context_cmd import MIN_RELEVANCE_HELP, add_context_parser
from pipelines.config import Settings, load_settings
from pipelines.logs import setup_logging
from pipelines.sources import valid_text

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNAVAILABLE, EXIT_INTERNAL = 0, 1, 2, 3, 70
# The one table from error kind (ingest/errors.py) to (exit code, label): codes a job scheduler can act on.
# An internal error (a bug, a broken invariant) exits 70, sysexits' EX_SOFTWARE, not 1: a scheduler must
# not take a bug for "some files failed, read the report", and nothing in it is the input's fault.
# argparse's own usage errors exit 2 as well. A command that ran to its end returns the kind of what went
# wrong, if anything (commands.py): an ingest run with failed files exits 1, one that lost the store
# mid-run exits 3 after printing its report.
EXIT_CODES: dict[ErrorKind, tuple[int, str]] = {
    ErrorKind.USAGE: (EXIT_USAGE, "usage error"),
    ErrorKind.CONFIGURATION: (EXIT_USAGE, "configuration error"),
    ErrorKind.INPUT: (EXIT_FAILED, "error"),
    ErrorKind.UNAVAILABLE: (EXIT_UNAVAILABLE, "unavailable, retry later"),
    ErrorKind.INTERNAL: (EXIT_INTERNAL, "internal error"),
}
# Settings a flag can override, with the flag's spelling where it is not the field's name.
FLAG_SETTINGS = {"collection": "--collection", "embed_model": "--model", "qdrant_url": "--qdrant-url",
                 "qdrant_path": "--qdrant-path", "offline": "--offline", "log_level": "--log-level",
                 "top_k": "--top-k", "chunk_tokens": "--chunk-tokens", "chunk_overlap": "--chunk-overlap",
                 "host": "--host", "port": "--port", "max_file_bytes": "--max-file-bytes",
                 "max_pages": "--max-pages", "parse_timeout": "--parse-timeout", "tenant": "--tenant",
                 "groups": "--groups", "keys_file": "--keys-file", "ocr_mode": "--ocr", "watch_debounce": "--debounce"}


def _common(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("settings (override env GERMAN_RAG_* and the TOML file)")
    g.add_argument("--config", help="TOML settings file (default: $GERMAN_RAG_CONFIG or ./german-rag.toml)")
    g.add_argument("--collection", help="Qdrant collection name")
    g.add_argument("--model", dest="embed_model", help="embedding model: hub id or local directory")
    g.add_argument("--qdrant-url", help="Qdrant server URL (default: embedded store)")
    g.add_argument("--qdrant-path", help="embedded Qdrant folder")
    g.add_argument("--offline", action="store_true", default=None, help="never contact the model hub")
    g.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    g.add_argument("--tenant", help="act as this tenant (ingest writes its documents, reads see only its points)")
    g.add_argument("--groups", metavar="A,B", help="ingest: the documents' groups; reads: the reader's groups")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def _ingest_flags(p: argparse.ArgumentParser) -> None:
    """The chunking, per-file limit and OCR flags of every command that ingests (ingest, sync, watch)."""
    p.add_argument("--ocr", dest="ocr_mode", choices=["auto", "off", "force"],
                   help="OCR of scans and images: auto (pages without usable text), off, force (every page)")
    p.add_argument("--chunk-tokens", type=int, help="chunk size in model tokens")
    p.add_argument("--chunk-overlap", type=int, help="overlap between chunks in model tokens")
    p.add_argument("--max-file-bytes", type=int, help="per-file size limit (0: none)")
    p.add_argument("--max-pages", type=int, help="PDF page limit per file (0: none)")
    p.add_argument("--parse-timeout", type=float, help="seconds to parse one file (0: no worker, no limit)")


def _optimize_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-optimize", action="store_true", help="do not build the HNSW index at the end, even "
                        "past optimize_threshold unindexed points (run `german-rag optimize` later)")


def _meta_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE",
                        help="user metadata of every document of the run (payload meta.KEY; a file's sidecar wins); "
                        "repeatable")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="german-rag", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("ingest", help="ingest files and folders (recursively) into Qdrant")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--shard", metavar="I/N", help="take only shard I of N (0 <= I < N; stable hash of the path)")
    p.add_argument("--bulk", action="store_true", help="a large load into a server: defer HNSW indexing to the end")
    _optimize_flag(p)
    _meta_flag(p)
    _ingest_flags(p)
    _common(p)
    p = sub.add_parser("sync", help="keep a collection in step with folders: ingest new and changed files, "
                       "delete the stored documents whose files are gone")
    p.add_argument("paths", nargs="+", metavar="ROOT", help="folder to keep in step (its sources only are touched)")
    p.add_argument("--dry-run", action="store_true", help="list what would be added, replaced, renamed and "
                   "deleted; change nothing")
    p.add_argument("--allow-mass-delete", action="store_true", help="delete even when more than "
                   "sync_max_delete_share of a root's sources are gone")
    _optimize_flag(p)
    _meta_flag(p)
    _ingest_flags(p)
    _common(p)
    p = sub.add_parser("verify", help="check a collection against its source files (exit 1 if anything is off)")
    p.add_argument("paths", nargs="+", metavar="PATH")
    _common(p)
    p = sub.add_parser("query", help="retrieve the top passages for a question")
    p.add_argument("text", metavar="TEXT")
    p.add_argument("--top-k", type=int)
    p.add_argument("--filter", action="append", default=[], metavar="FIELD=VALUE",
                   help="metadata filter, repeatable: FIELD=VALUE (repeated: any of them) or a range FIELD>=V, "
                   "FIELD<=V, FIELD>V, FIELD<V (on one field: AND), e.g. 'date>=2023-01-01'; FIELD: source, "
                   "doc_id, page, heading_path, chunk_index, title, author, file_type, file_size, modified, pages, "
                   "language, date, meta.KEY")
    p.add_argument("--truncate", action="store_true", help="cut a query over the model's token limit")
    p.add_argument("--mode", choices=["dense", "bm25", "hybrid"], help="retrieval mode (default: hybrid)")
    p.add_argument("--rerank", action=argparse.BooleanOptionalAction, default=None,
                   help="rerank with the cross-encoder (default: setting `rerank`)")
    p.add_argument("--expand", type=int, metavar="N", help="add N neighbour chunks on each side")
    p.add_argument("--mmr", type=float, metavar="LAMBDA", help="diversify with MMR (0..1, 1 = relevance only)")
    p.add_argument("--min-relevance", metavar="X", help=MIN_RELEVANCE_HELP)
    _common(p)
    add_context_parser(sub, _common)
    p = sub.add_parser("optimize", help="build the HNSW index and quantized vectors now (ingest and sync do it by "
                       "themselves past optimize_threshold unindexed points)")
    _common(p)
    p = sub.add_parser("delete", help="remove a source (a file as ingested, or every source under a folder)")
    p.add_argument("source", metavar="SOURCE", help="file or folder path (the file may be gone), or upload:NAME")
    p.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    _common(p)
    p = sub.add_parser("config", help="print the effective settings, secrets hidden")
    p.add_argument("--calibrate", action="store_true",
                   help="with embed_backend=auto: load the model and measure the backends now if not stored yet")
    _common(p)
    p = sub.add_parser("eval", help="evaluate retrieval on a SQuAD, DPR or BEIR dataset")
    p.add_argument("dataset", metavar="DATASET")
    p.add_argument("--format", dest="fmt", choices=["squad", "squad-articles", "dpr", "beir"],
                   help="squad-articles: SQuAD with one document per article (its paragraphs joined)")
    p.add_argument("--mode", dest="modes", action="append", choices=["dense", "bm25", "hybrid"],
                   help="repeatable; default: all three")
    p.add_argument("--report", metavar="DIR", help="write Markdown, JSON and a recall@k plot here")
    p.add_argument("--ablation", action="store_true", help="add bm25 rows for each lexical-analyzer variant")
    p.add_argument("--context", dest="context_strategies", action="append",
                   choices=["topk", "merge", "expand", "mmr", "focus", "all"], help="add answer_in_context@256/512/"
                   "1024/2048 for this context strategy (repeatable; all: the five); SQuAD and DPR sets")
    _common(p)
    p = sub.add_parser("demo", help="ingest the bundled German examples and answer two questions")
    _common(p)
    p = sub.add_parser("serve", help="run the HTTP retrieval service (FastAPI; /docs for the API)")
    p.add_argument("--host", help="address to bind (default: setting `host`, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to bind (default: setting `port`, 8000)")
    p.add_argument("--keys-file", help="TOML file of API keys (setting `keys_file`; see `german-rag keys`)")
    _common(p)
    p.add_argument("--watch", action="append", default=[], metavar="ROOT",
                   help="keep this folder in step while serving (repeatable; counters on /metrics)")
    _mcp_parser(sub)
    _keys_parser(sub)
    _watch_parser(sub)
    return parser


def _mcp_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mcp", help="the MCP server (tools search, get_context, get_passage, list_sources): stdio "
                       "for one local client, or http: the service with its /mcp endpoint and API keys")
    p.add_argument("--transport", choices=["stdio", "http"], default="stdio",
                   help="stdio (default; acts as --tenant/--groups like the CLI) or http (streamable HTTP at "
                   "http://HOST:PORT/mcp, the same process as `serve`)")
    p.add_argument("--host", help="http: address to bind (default: setting `host`, 127.0.0.1)")
    p.add_argument("--port", type=int, help="http: port to bind (default: setting `port`, 8000)")
    p.add_argument("--keys-file", help="http: TOML file of API keys (setting `keys_file`)")
    _common(p)


def _watch_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("watch", help="keep a collection in step with folders as they change (sync, then file events)")
    p.add_argument("paths", nargs="+", metavar="ROOT", help="folder to watch, recursively")
    p.add_argument("--debounce", type=float, metavar="S", help="seconds a file must stay unchanged before it is "
                   "ingested (setting watch_debounce, default 1)")
    p.add_argument("--allow-mass-delete", action="store_true", help="let the start's sync delete even when more "
                   "than sync_max_delete_share of a root's sources are gone")
    p.add_argument("--metrics-port", type=int, metavar="PORT", help="serve the watch counters for Prometheus on "
                   "this port (address: setting host); default: no HTTP, the totals are printed at the end")
    _ingest_flags(p)
    _common(p)


def _keys_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keys", help="the service's API keys: add, list, revoke (the file keeps salted hashes only)")
    actions = p.add_subparsers(dest="keys_action", required=True)
    add = actions.add_parser("add", help="make a random key for a tenant; it is printed once, only its hash kept")
    add.add_argument("--tenant", required=True, help="the tenant the key reads and writes")
    add.add_argument("--groups", metavar="A,B", help="the groups the key reads (default: none, only documents "
                     "without groups)")
    add.add_argument("--role", required=True, choices=["read", "write", "admin"])
    add.add_argument("--name", help="a label for `keys list` and the audit log (default: TENANT-ROLE)")
    revoke = actions.add_parser("revoke", help="remove a key by its id (see `keys list`)")
    revoke.add_argument("key_id", metavar="KEY_ID")
    for q in (add, actions.add_parser("list", help="the keys: id, name, tenant, groups, role, created"), revoke):
        q.add_argument("--config", help="TOML settings file (default: $GERMAN_RAG_CONFIG or ./german-rag.toml)")
        q.add_argument("--keys-file", help="the keys file (default: setting `keys_file`, GERMAN_RAG_KEYS_FILE)")
        q.add_argument("--json", action="store_true", help="print machine-readable JSON")


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {k: getattr(args, k, None) for k in FLAG_SETTINGS}
    return load_settings(args.config, flags=FLAG_SETTINGS, **overrides)


def exit_code(exc: BaseException) -> tuple[int, str]:
    """(exit code, label) for an error, by its kind (EXIT_CODES); anything unexpected is internal."""
    kind = exc.kind if isinstance(exc, GermanRagError) else ErrorKind.INTERNAL
    return EXIT_CODES[kind]


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", message="Payload indexes have no effect")
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
        setup_logging(settings.log_level, settings.log_json)
        # The parse worker starts only when an ingest's triage finds a file to parse (IngestRunner); heavy
        # libraries load inside the command that needs them, so a run with nothing to do stays fast.
        from pipelines.cli.commands import run

        outcome = run(args.command, args, settings)
        return EXIT_OK if outcome is None else EXIT_CODES[outcome][0]
    except GermanRagError as exc:
        return _fail(args, exc)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `german-rag ingest … | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's flush at exit would raise again
        return 141  # 128 + SIGPIPE, as a shell reports a process a closed pipe ended
    except Exception as exc:  # a bug: its traceback for the report, then the same one-line error and code
        traceback.print_exc()
        return _fail(args, InternalError(f"{type(exc).__name__}: {exc}"))


def _fail(args: argparse.Namespace, exc: GermanRagError) -> int:
    code, label = exit_code(exc)
    if getattr(args, "json", False):
        print(json.dumps(valid_text({"error": str(exc), "kind": exc.kind.value, "type": type(exc).__name__}),
                         ensure_ascii=False))
    print(valid_text(f"german-rag: {label}: {exc}"), file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
