"""An ingest run: discover -> triage -> parse -> chunk -> embed -> write, never all-or-nothing.

Triage hashes each file's bytes and asks the store whether that exact version is already complete:
unchanged files cost a hash and a lookup, no parsing, no model weights. The rest flow through a
pipeline (pipelines/ingest_stages.py): a worker process parses ahead while the model embeds chunks of
several files in one batch, and a writer thread stores finished files behind it. A changed file
re-embeds only chunks whose text is new; the others keep their stored vectors.

A file that fails is reported with its reason and the run goes on. Per file, new points are written
before the stale points of an older version are deleted, so a crash leaves either the old or the new
version searchable, never neither; the next run finishes what a crashed one started (tests/test_crash.py
kills runs with SIGKILL to prove it). Files are parsed in a worker process under per-file limits
(ingest/limits.py); a store that stays unreachable through its retries fails the current file and
marks the rest "not attempted", so the report never counts a point that was not confirmed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol, cast

from tqdm import tqdm

from ingest.abbreviations import LEARNED_KEY, learn_definitions, merge_learned
from ingest.chunk import TokenChunker
from ingest.limits import Limits
from ingest.parse_worker import ParseWorker
from ingest.schema import (
    DEFAULT_ACCESS,
    DEFAULT_TENANT,
    Access,
    AccessError,
    Chunk,
    Chunker,
    Document,
    Embedder,
    EmptyDocumentError,
    IngestError,
    ModelUnavailableError,
    ParseError,
    make_doc_id,
)
from ingest.sparse import SparseEncoder
from ingest.store.access import ingest_principal
from ingest.store.base import VectorStore
from pipelines.indexing.discover import Candidate, discover, in_shard
from pipelines.indexing.fields import Scalar, document_fields, meta_hash, ocr_summary
from pipelines.indexing.report import FileResult, IngestReport, backend_info
from pipelines.indexing.sidecar import SidecarError, group_by_access, read_sidecar
from pipelines.indexing.stages import (
    PASS_THROUGH,
    Chunked,
    ParseAhead,
    Pending,
    Ready,
    Removal,
    StageClock,
    Writer,
    empty_result,
)
from pipelines.indexing.triage import STOPPED, Triage

log = logging.getLogger(__name__)
CHUNKER_VERSION = "chunker-v1"
# The document fields a version writes (pipelines/indexing/fields.py): a new one re-parses each file once to
# store them; its chunk texts are unchanged, so every vector is reused (no model call).
FIELDS_VERSION = "fields-v2"  # v2: law_section and citations (ingest/citations.py)


@dataclass
class IngestRunner:
    embedder: Embedder
    chunker: Chunker
    store: VectorStore
    model_id: str
    sparse: SparseEncoder | None = None
    progress: bool = True
    limits: Limits = field(default_factory=Limits)
    shard: tuple[int, int] | None = None  # (index, count): this run takes the files whose path hashes to index
    batch_tokens: int = 32_768  # chunks of several files are embedded together up to this many tokens
    parse_ahead: int = 16  # files parsed ahead of the model at most (bounded: memory stays flat)
    bulk: bool = False  # a large load: the server defers HNSW indexing until the run ends
    access: Access = DEFAULT_ACCESS  # tenant and groups of every document this run writes
    # file hash -> a vanished source that stored those bytes (sync: a renamed or moved file): a new source with
    # these bytes takes that source's vectors by chunk content hash instead of calling the model
    reuse_from: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Scalar] = field(default_factory=dict)  # user metadata of every document (`--meta`, form fields)
    # After a run that deleted points, vacuum the store (the edge engine's BM25 IDF counts deleted points until
    # then; seconds on a large store, so a watcher turns this off and compacts when idle)
    compact: bool = True
    file_meta: dict[str, dict[str, Scalar]] = field(default_factory=dict)  # source -> its sidecar's metadata
    # keep the abbreviation definitions the parsed documents write ("Long Form (ABK)") in the collection's
    # metadata, for the query-time expander (ingest/abbreviations.py)
    learn_abbreviations: bool = True

    def __post_init__(self) -> None:
        self._check_access()

    def _check_access(self) -> None:
        if not self.store.principal.may_store(self.access):
            raise AccessError(f"tenant {self.store.principal.tenant!r} may not ingest documents of tenant "
                              f"{self.access.tenant!r}")

    @property
    def io(self) -> VectorStore:
        """The store as this run reads and writes it: its documents' tenant, every group of it (triage and stale
        deletes see that tenant's earlier versions only, never another tenant's copy of the same path). A view:
        a shallow copy sharing the store's connection."""
        return self.store.scoped(ingest_principal(self.access))

    @property
    def fingerprint(self) -> str:
        """Everything that shapes a document's points; a change re-ingests the file."""
        sparse = self.sparse
        lexical = f"{sparse.analyzer.fingerprint()}|{sparse.avgdl}|k1={sparse.k1}|b={sparse.b}" if sparse else "none"
        # A tenant other than the default is part of the ids: two tenants' copies of one file are two documents
        # (the default adds nothing, so collections from before tenants keep their ids).
        tenant = "" if self.access.tenant == DEFAULT_TENANT else f"|tenant={self.access.tenant}"
        return (f"{self.model_id}|{self.embedder.dimension}|{self.chunker.fingerprint()}|{CHUNKER_VERSION}{tenant}"
                f"|{lexical}|{FIELDS_VERSION}")

    def run(self, paths: list, on_file: Callable[[FileResult], None] | None = None) -> IngestReport:
        """Discover files and folders (recursively), take this run's shard, ingest each."""
        candidates, missing = discover(paths)
        if self.shard is not None:
            candidates = [c for c in candidates if in_shard(c.source, *self.shard)]
        return self.run_discovered(candidates, missing, on_file)

    def run_discovered(self, candidates: list[Candidate], missing: Sequence[tuple[str, str]] = (),
                       on_file: Callable[[FileResult], None] | None = None,
                       stop: threading.Event | None = None) -> IngestReport:
        """Ingest discovered files, one run per tenant and groups their sidecars give them."""
        metas: dict[str, dict[str, Scalar]] = {}
        by_access, refused = group_by_access(candidates, self.access, self.store.principal, metas,
                                             self.store.options.meta_schema)
        runner = replace(self, file_meta=metas) if metas else self
        if not refused and list(by_access) in ([], [self.access]):  # no sidecar changes the access fields
            return runner.run_candidates(candidates, on_file, stop, missing=missing)
        report = IngestReport(collection=self.store.options.collection)
        for result in refused:
            report.files.append(result)
            if on_file:
                on_file(result)
        for i, (access, group) in enumerate(by_access.items()):  # one run per tenant and groups
            part = replace(runner, access=access).run_candidates(group, on_file, stop,
                                                                  missing=missing if i == 0 else ())
            report.merge(part)
        return report

    def run_candidates(self, candidates: list[Candidate], on_file: Callable[[FileResult], None] | None = None,
                       stop: threading.Event | None = None,
                       missing: Sequence[tuple[str, str]] = ()) -> IngestReport:
        """Ingest named files (e.g. uploads with their own source names); `stop` ends the run between files."""
        self._check_access()  # the store may have been swapped since construction
        started = time.perf_counter()
        report = IngestReport(collection=self.store.options.collection)
        report.files.extend(FileResult(p, "failed", error=f"{p}: {why}") for p, why in missing)
        clock = StageClock(report)
        bar = tqdm(total=len(candidates), desc="ingest", unit="file", disable=not self.progress or None,
                   leave=False)
        lock = threading.Lock()
        chunks_done = [0]  # a running count: summing the report per file would be quadratic

        def emit(result: FileResult) -> None:
            with lock:
                report.files.append(result)
                chunks_done[0] += result.chunks if result.status == "ingested" else 0
                bar.update(1)
                bar.set_postfix(chunks=chunks_done[0], refresh=False)
            if on_file:
                on_file(result)

        try:
            self.embedder.prepare()  # fail before any file if the model is missing (weights wait)
            self.io.ensure_collection(self.model_id, self.embedder.dimension)
            if self.bulk:
                self.io.begin_bulk()
            else:
                self.io.end_bulk()  # a bulk run that died left indexing off: turn it back on
            try:
                pending, report.outage = Triage(self).run(candidates, clock, emit, stop)
                if pending:
                    report.outage = self._ingest(pending, clock, emit, stop)
            finally:
                if self.bulk:
                    self._end_bulk()
            if self.compact and not report.outage and any(f.points_deleted for f in report.files):
                compact_quietly(self.io)
        finally:
            bar.close()
        report.total_seconds = time.perf_counter() - started
        if not report.balanced:
            raise IngestError(f"ingest report does not balance: {report.summary()}")
        return report

    def _end_bulk(self) -> None:
        """Restore indexing after a bulk run; if the store is unreachable now, the next ingest does it
        (the old value waits in the collection's metadata), so this never hides the run's own outcome."""
        try:
            self.io.end_bulk()
        except Exception as exc:
            log.warning("bulk load: indexing not restored yet; the next ingest restores it",
                        extra={"error": str(exc)})

    def identity(self, source: str, file_hash: str) -> tuple[str, dict[str, Scalar], str]:
        """(doc_id, user metadata, its hash) of a file version: its bytes, its user metadata (a file's sidecar over
        the run's --meta) and this run's fingerprint. Metadata without keys adds nothing (ids stay as they were)."""
        user = {**self.meta, **self.file_meta.get(source, {})}
        digest = meta_hash(user)
        content = f"{file_hash}|meta={digest}" if digest else file_hash
        return make_doc_id(source, content, self.fingerprint), user, digest

    def doc_id_of(self, cand: Candidate, file_hash: str) -> str:
        """The doc_id an ingest of this run would give the file's current version (its sidecar read): what
        `verify` compares the stored version with. A broken sidecar is a ParseError (the file is unreadable)."""
        try:
            access, meta = read_sidecar(cand.path, self.access, self.store.options.meta_schema)
            runner = replace(self, access=access, file_meta={cand.source: meta}) if access != self.access or meta \
                else self
        except (SidecarError, AccessError) as exc:
            raise ParseError(f"{cand.source}: {exc}") from exc
        return runner.identity(cand.source, file_hash)[0]

    # -- the pipeline: parse ahead -> chunk + embed (batched across files) -> write behind ---------
    def _ingest(self, pending: list[Pending], clock: StageClock, emit: Callable[[FileResult], None],
                stop: threading.Event | None) -> str | None:
        """Parse, chunk, embed and write the pending files; returns the store's outage, if it stopped answering."""
        store_lock = threading.Lock()  # the embedded engines are not thread-safe: one store call at a time
        writer = Writer(self.io, store_lock, clock, emit, access=self.access)

        def cancelled() -> str | None:
            if stop is not None and stop.is_set():
                return STOPPED
            return f"not attempted: {writer.outage}" if writer.outage else None

        worker = ParseWorker(self.limits)
        parse = ParseAhead(worker, pending, clock, self.parse_ahead, cancelled)  # starts the worker at once
        learned: dict[tuple[str, str], None] = {}
        try:
            self.embedder.load()  # weights load while the parse worker starts and parses ahead
            clock.report.embed_backend = backend_info(self.embedder)
            batch: list[Chunked | Removal | FileResult] = []
            tokens = 0
            for item, value in parse:
                why = value if isinstance(value, str) else cancelled()
                if why is not None:
                    batch.append(FileResult(item.cand.source, "failed", error=f"{item.cand.source}: {why}"))
                elif isinstance(value, PASS_THROUGH):
                    batch.append(value)
                elif isinstance(value, Document):  # always, here: a str is a reason (`why`) above
                    if self.learn_abbreviations:
                        learned.update(dict.fromkeys(learn_definitions([value.text])))
                    entry = self._chunk(item, value, clock)
                    batch.append(entry)
                    tokens += 0 if isinstance(entry, PASS_THROUGH) else sum(c.token_count for c in entry[1])
                # Embed when the batch is big enough, or now if the parser has nothing ready (never idle).
                if tokens >= self.batch_tokens or not parse.has_ready():
                    writer.put(self._embed(batch, clock, store_lock, lambda: writer.outage))
                    batch, tokens = [], 0
            if batch:
                writer.put(self._embed(batch, clock, store_lock, lambda: writer.outage))
        except BaseException:
            parse.close()
            worker.close()
            writer.finish(raise_error=False)  # the exception in flight is the one to report
            raise
        parse.close()
        worker.close()
        writer.finish()
        if learned and not writer.outage:
            keep_learned(self.io, list(learned))
        return writer.outage

    def _chunk(self, item: Pending, doc: Document, clock: StageClock) -> Chunked | Removal | FileResult:
        source = item.cand.source
        try:
            with clock.timed("chunk"):
                chunks, ids = self._split(doc, item.doc_id)
                parsed = {**doc.metadata, "pages": doc.metadata.get("pages") or doc.pages or None}
                item.fields = document_fields(parsed, item.user_meta, item.stamp[1], item.meta_hash,
                                              self.store.options.meta_schema)
                item.ocr = ocr_summary(doc.metadata, self.limits.ocr.min_confidence)
            if not chunks:
                raise EmptyDocumentError(f"{source}: no chunks made from {len(doc.text)} characters")
            return item, chunks, ids
        except ModelUnavailableError:
            raise
        except EmptyDocumentError as exc:
            return empty_result(item, exc)
        except IngestError as exc:
            log.warning("file failed", extra={"source": source, "error": str(exc)})
            return FileResult(source, "failed", error=str(exc))
        except Exception as exc:  # a bug must not end the run for the other files
            log.exception("file failed unexpectedly", extra={"source": source})
            return FileResult(source, "failed", error=f"{source}: {type(exc).__name__}: {exc}")

    def _split(self, doc: Document, doc_id: str) -> tuple[list[Chunk], list[list[int]] | None]:
        """The document's chunks and, where the chunker counted them with this run's embedder (TokenChunker over
        an HFEmbedder), their token ids as the model takes them: the model call then skips a second tokenizer
        pass over every chunk (the vectors are the same: `document_ids` is what `embed_documents` would run)."""
        # A subclass that redefines `chunk` is called through `chunk`: the ids would be its parent's chunks.
        if (isinstance(self.chunker, TokenChunker) and type(self.chunker).chunk is TokenChunker.chunk
                and self.chunker.tokenizer is self.embedder):
            return self.chunker.chunk_ids(doc, doc_id)
        return self.chunker.chunk(doc, doc_id), None

    def _embed(self, batch: list, clock: StageClock, store_lock: threading.Lock,
               outage: Callable[[], str | None] = lambda: None) -> list[Ready | Removal | FileResult]:
        """Vectors for every chunk of the batch: reused from the store where a file's own chunk text is
        unchanged, otherwise from one model call over all files (similar lengths batch together)."""
        files = [e for e in batch if not isinstance(e, PASS_THROUGH)]
        known: dict[str, dict[str, list[float]]] = {}  # source -> content hash -> stored vector
        for item, chunks, _ in files:
            # A changed file keeps the vectors of its unchanged chunks; a renamed one takes its old source's.
            origin = item.cand.source if item.had_version else item.reuse_source
            if origin and not outage():
                try:
                    with clock.timed("store"), store_lock:
                        known[item.cand.source] = self.io.stored_vectors(origin, [c.content_hash for c in chunks])
                except Exception:
                    log.warning("stored vectors unavailable, embedding again", extra={"source": item.cand.source})
                    break  # one failed lookup is enough: do not wait out the retries once per file
        new: dict[str, tuple[str, list[int] | None]] = {}  # content hash -> (text, ids): each new text once
        for item, chunks, ids in files:
            mine = known.get(item.cand.source, {})
            for i, c in enumerate(chunks):
                if c.content_hash not in mine:
                    new.setdefault(c.content_hash, (c.text, ids[i] if ids is not None else None))
        try:
            with clock.timed("embed"):
                fresh = dict(zip(new, self._vectors(list(new.values())), strict=True))
                out: list[Ready | Removal | FileResult] = []
                for entry in batch:
                    if isinstance(entry, PASS_THROUGH):
                        out.append(entry)
                        continue
                    item, chunks, _ = entry
                    mine = known.get(item.cand.source, {})
                    texts = [c.text for c in chunks]
                    out.append(Ready(item, chunks, [mine.get(c.content_hash) or fresh[c.content_hash] for c in chunks],
                                     self.sparse.encode_documents(texts) if self.sparse else None,
                                     reused=sum(1 for c in chunks if c.content_hash in mine)))
                return out
        except ModelUnavailableError:
            raise
        except Exception as exc:
            if len(files) > 1:  # find the file that breaks: the others of the batch still go in
                log.warning("batch failed, embedding its files one by one", extra={"files": len(files)})
                return [r for entry in batch for r in self._embed([entry], clock, store_lock, outage)]
            log.exception("embedding failed", extra={"files": len(files)})
            why = str(exc) if isinstance(exc, IngestError) else f"{type(exc).__name__}: {exc}"
            return [e if isinstance(e, PASS_THROUGH) else
                    FileResult(e[0].cand.source, "failed", error=f"{e[0].cand.source}: embedding failed: {why}")
                    for e in batch]

    def _vectors(self, new: list[tuple[str, list[int] | None]]) -> list[list[float]]:
        """One model call over the new texts, with their token ids where every one has them."""
        if not new:
            return []
        texts = [text for text, _ in new]
        ids = [row for _, row in new]
        if all(row is not None for row in ids):
            return cast(_TakesTokenIds, self.embedder).embed_documents(texts, token_ids=cast(list[list[int]], ids))
        return self.embedder.embed_documents(texts)


class _TakesTokenIds(Protocol):
    """An embedder that takes the token ids its own `document_ids` gave (HFEmbedder)."""

    def embed_documents(self, texts: Sequence[str], token_ids: Sequence[Sequence[int]] | None = None
                        ) -> list[list[float]]: ...


def keep_learned(store: VectorStore, pairs: list[tuple[str, str]]) -> None:
    """Merge a run's learned abbreviations into the collection's (read, merge, write: two runs writing at the
    same moment may drop one's new pairs; the next ingest of those files learns them again). Never fails the
    run: the documents are written, only their definitions wait for the next run."""
    try:
        stored = store.metadata().get(LEARNED_KEY)
        merged = merge_learned(stored, pairs)
        if merged != merge_learned(stored, ()):
            store.update_metadata({LEARNED_KEY: [list(p) for p in merged]})
    except Exception as exc:
        log.warning("learned abbreviations not stored; the next run tries again", extra={"error": str(exc)})


def compact_quietly(store: VectorStore) -> None:
    """Vacuum after deletes; a store that fails now is vacuumed by the next run (or its close), so this never
    hides a run's own outcome."""
    try:
        with_time = time.perf_counter()
        if store.compact():
            log.info("store compacted after deletes", extra={"seconds": round(time.perf_counter() - with_time, 3)})
    except Exception as exc:
        log.warning("store not compacted after deletes; the next run does it", extra={"error": str(exc)})
