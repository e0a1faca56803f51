"""An ingest run: discover -> parse -> chunk -> embed -> write, one file at a time, never all-or-nothing.

A file that fails is reported with its reason and the run goes on. Per file, new points are written
before the stale points of an older version are deleted, so a crash leaves either the old or the new
version searchable, never neither; the next run finishes what a crashed one started (tests/test_crash.py
kills runs with SIGKILL to prove it). Files are parsed in a worker process under per-file limits
(ingest/limits.py); a store that stays unreachable through its retries fails the current file and
marks the rest "not attempted", so the report never counts a point that was not confirmed.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from ingest.chunk import TokenChunker
from ingest.embed import HFEmbedder
from ingest.limits import Limits, check_name, file_stamp, printable
from ingest.parse_worker import ParseWorker
from ingest.schema import Document, IngestError, ModelUnavailableError, ParseError, make_doc_id
from ingest.sparse import SparseEncoder
from ingest.store import QdrantStore, StoreUnavailableError
from pipelines.discover import Candidate, discover, in_shard, is_supported
from pipelines.report import FileResult, IngestReport

log = logging.getLogger(__name__)
CHUNKER_VERSION = "chunker-v1"


@dataclass
class IngestRunner:
    embedder: HFEmbedder
    chunker: TokenChunker
    store: QdrantStore
    model_id: str
    sparse: SparseEncoder | None = None
    progress: bool = True
    limits: Limits = field(default_factory=Limits)
    shard: tuple[int, int] | None = None  # (index, count): this run takes the files whose path hashes to index

    @property
    def fingerprint(self) -> str:
        """Everything that shapes a document's points; a change re-ingests the file."""
        o = self.chunker.options
        lexical = f"{self.sparse.analyzer.fingerprint()}|{self.sparse.avgdl}" if self.sparse else "none"
        return (f"{self.model_id}|{self.embedder.dimension}|{o.max_tokens}|{o.overlap_tokens}|{CHUNKER_VERSION}"
                f"|{lexical}")

    def run(self, paths: list, on_file: Callable[[FileResult], None] | None = None) -> IngestReport:
        """Discover files and folders (recursively), take this run's shard, ingest each."""
        candidates, missing = discover(paths)
        if self.shard is not None:
            candidates = [c for c in candidates if in_shard(c.source, *self.shard)]
        return self.run_candidates(candidates, on_file, missing=missing)

    def run_candidates(self, candidates: list[Candidate], on_file: Callable[[FileResult], None] | None = None,
                       stop: threading.Event | None = None,
                       missing: Sequence[tuple[str, str]] = ()) -> IngestReport:
        """Ingest named files (e.g. uploads with their own source names); `stop` ends the run between files."""
        started = time.perf_counter()
        report = IngestReport(collection=self.store.options.collection)
        report.files.extend(FileResult(p, "failed", error=f"{p}: {why}") for p, why in missing)
        worker = ParseWorker(self.limits)  # started on the first file that needs parsing (none if unchanged)
        try:
            self.embedder.load()  # fail before any file if the model is missing
            self.store.ensure_collection(self.model_id, self.embedder.dimension)
            self._loop(candidates, worker, report, on_file, stop)
        finally:
            worker.close()
        report.total_seconds = time.perf_counter() - started
        if not report.balanced:
            raise IngestError(f"ingest report does not balance: {report.summary()}")
        return report

    def _loop(self, candidates: list[Candidate], worker: ParseWorker, report: IngestReport,
              on_file: Callable[[FileResult], None] | None, stop: threading.Event | None = None) -> None:
        outage: str | None = None
        bar = tqdm(candidates, desc="ingest", unit="file", disable=not self.progress or None, leave=False)
        for cand in bar:
            if stop is not None and stop.is_set():  # shutting down: a file not begun is reported, not begun
                result = FileResult(cand.source, "failed", error=f"{cand.source}: not ingested, the run was "
                                    "stopped (service shut down)")
            elif outage:  # the store is gone: say so per file instead of waiting out every retry again
                result = FileResult(cand.source, "failed", error=f"{cand.source}: not attempted: {outage}")
            else:
                try:
                    result = self._one(cand, worker, report)
                except StoreUnavailableError as exc:
                    outage = str(exc)
                    result = FileResult(cand.source, "failed", error=f"{cand.source}: {exc}")
            report.files.append(result)
            if on_file:
                on_file(result)

    def _one(self, cand: Candidate, worker: ParseWorker, report: IngestReport) -> FileResult:
        if not is_supported(cand):
            status = "failed" if cand.explicit else "skipped"
            return FileResult(cand.source, status, error=f"{cand.source}: unsupported file type "
                              f"{cand.path.suffix.lower() or '(none)'!r}")
        try:
            check_name(cand.source)
        except ParseError as exc:  # the report must stay printable: show the name escaped
            return FileResult(printable(cand.source), "failed", error=str(exc))
        try:
            with _timed(report, "parse"):
                stamp = file_stamp(cand.path, cand.source)
                file_hash = sha256_file(cand.path, cand.source)
            # The id comes from the file's bytes, not its parsed text: an unchanged file is recognised
            # without parsing it (parsing is most of a re-ingest, and unstructured's PDF output is
            # not always the same twice).
            doc_id = make_doc_id(cand.source, file_hash, self.fingerprint)
            with _timed(report, "store"):
                state = self.store.doc_state(cand.source)
            if state.complete(doc_id):
                with _timed(report, "store"):
                    deleted = self.store.delete_stale(cand.source, doc_id) if len(state.present) > 1 else 0
                return FileResult(cand.source, "unchanged", points_deleted=deleted)
            with _timed(report, "parse"):
                doc = worker.parse(cand.path, cand.source)
                if file_stamp(cand.path, cand.source) != stamp:  # the text may not match file_hash
                    raise ParseError(f"{cand.source}: file changed while it was being ingested; run again")
            return self._store_document(doc, doc_id, file_hash, report)
        except (ModelUnavailableError, StoreUnavailableError):
            raise
        except IngestError as exc:
            log.warning("file failed", extra={"source": cand.source, "error": str(exc)})
            return FileResult(cand.source, "failed", error=str(exc))
        except Exception as exc:  # a bug must not end the run for the other files
            log.exception("file failed unexpectedly", extra={"source": cand.source})
            return FileResult(cand.source, "failed", error=f"{cand.source}: {type(exc).__name__}: {exc}")

    def _store_document(self, doc: Document, doc_id: str, file_hash: str, report: IngestReport) -> FileResult:
        with _timed(report, "chunk"):
            chunks = self.chunker.chunk(doc, doc_id)
        if not chunks:
            raise IngestError(f"{doc.source}: no chunks made from {len(doc.text)} characters")
        with _timed(report, "embed"):
            vectors = self.embedder.embed_documents([c.text for c in chunks])
            texts = [c.text for c in chunks]
            sparse = self.sparse.encode_documents(texts) if self.sparse else None
        with _timed(report, "store"):
            written = self.store.upsert_chunks(chunks, vectors, sparse, doc_hash=file_hash)
            deleted = self.store.delete_stale(doc.source, doc_id)  # only after the new version is in
        return FileResult(doc.source, "ingested", chunks=len(chunks), points_written=written,
                          points_deleted=deleted)


def sha256_file(path: Path, source: str) -> str:
    """Hash of a file's bytes, read in blocks; an unreadable file is a ParseError naming it."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise ParseError(f"{source}: cannot read file: {exc.strerror or exc}") from exc
    return digest.hexdigest()


@contextmanager
def _timed(report: IngestReport, stage: str):
    started = time.perf_counter()
    try:
        yield
    finally:
        report.stage_seconds[stage] += time.perf_counter() - started
