"""The threads of an ingest run: parsing ahead of the model, and writing behind it.

    parse-ahead thread --(bounded queue)--> caller: chunk + embed --(bounded queue)--> writer thread

The parse worker is another process, so parsing the next files runs while the model embeds; the
writer sends finished files to Qdrant while the model embeds the next batch. Both queues are bounded,
so a corpus of any size holds only a few files in memory. Every queued item ends as exactly one
FileResult, in the order the files were handed in, so the report balances whatever fails.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ingest.errors import GermanRagError
from ingest.limits import file_stamp
from ingest.parse_worker import ParseWorker
from ingest.schema import DEFAULT_ACCESS, Access, Chunk, Document, EmptyDocumentError, IngestError, ParseError
from ingest.store.base import StoreUnavailableError
from pipelines.indexing.discover import Candidate
from pipelines.indexing.report import FileResult, IngestReport

_END = object()
log = logging.getLogger(__name__)


@dataclass
class Pending:
    """A file that must be (re-)ingested, as triage found it."""

    cand: Candidate
    doc_id: str
    file_hash: str
    stamp: tuple
    had_version: bool  # the store holds another version of this source: vectors may be reused, stale deleted
    reuse_source: str | None = None  # a vanished source with these bytes (a rename): its vectors are reused
    user_meta: dict = field(default_factory=dict)  # the document's user metadata (sidecar over --meta)
    meta_hash: str = ""  # of user_meta, part of doc_id ("" for none)
    fields: dict = field(default_factory=dict)  # the payload's document fields, set once it is parsed
    ocr: tuple[int, list[int], dict[str, str]] = (0, [], {})  # OCR'd pages, low-confidence pages, page problems


@dataclass
class Ready:
    """A file with its chunks and vectors, ready to write."""

    pending: Pending
    chunks: list[Chunk]
    dense: list[list[float]]
    sparse: list[tuple[list[int], list[float]]] | None
    reused: int = 0


@dataclass
class Removal:
    """A file that is empty now: its stored version is deleted (in order, by the writer)."""

    pending: Pending
    reason: str


# A parsed file's chunks and, where the chunker gave them, their token ids as the model takes them
Chunked = tuple[Pending, list[Chunk], list[list[int]] | None]

# Entries of a batch that need no embedding and no chunking: passed through to the writer as they are.
PASS_THROUGH = (FileResult, Removal)


def empty_result(item: Pending, exc: EmptyDocumentError) -> Removal | FileResult:
    """An empty file removes the version the store holds; with none stored there is simply nothing to do."""
    if item.had_version:
        return Removal(item, str(exc))
    return FileResult(item.cand.source, "skipped", error=f"{exc}; nothing to index")


@dataclass
class StageClock:
    """Seconds per stage, summed across threads (stages overlap, so they add up to more than the wall)."""

    report: IngestReport
    lock: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            with self.lock:
                self.report.stage_seconds[stage] += time.perf_counter() - started


class ParseAhead:
    """Parses pending files in order on a thread, at most `depth` files ahead of the consumer."""

    def __init__(self, worker: ParseWorker, items: Iterable[Pending], clock: StageClock, depth: int,
                 cancelled: Callable[[], str | None]) -> None:
        self._worker, self._items, self._clock, self._cancelled = worker, list(items), clock, cancelled
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="german-rag-parse-ahead", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for item in self._items:
                if self._closed.is_set():
                    return
                why = self._cancelled()
                self._put((item, why) if why else (item, self._parse(item)))
        finally:
            self._put(_END)

    def _parse(self, item: Pending) -> Document | Removal | FileResult:
        source = item.cand.source
        try:
            with self._clock.timed("parse"):
                doc = self._worker.parse(item.cand.path, source)
                if file_stamp(item.cand.path, source) != item.stamp:  # the text may not match file_hash
                    raise ParseError(f"{source}: file changed while it was being ingested; run again")
            return doc
        except EmptyDocumentError as exc:
            return empty_result(item, exc)
        except IngestError as exc:
            return FileResult(source, "failed", error=str(exc))
        except Exception as exc:  # a bug must not end the run for the other files
            return FileResult(source, "failed", error=f"{source}: {type(exc).__name__}: {exc}")

    def _put(self, value) -> None:
        while not self._closed.is_set():
            try:
                self._queue.put(value, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self) -> Iterator[tuple[Pending, Document | Removal | FileResult | str]]:
        while True:
            value = self._queue.get()
            if value is _END:
                return
            yield value

    def has_ready(self) -> bool:
        return not self._queue.empty()

    def close(self) -> None:
        self._closed.set()
        self._thread.join()


class Writer:
    """Writes ready files on a thread, in order: new points first, then the old version's stale points.

    A store that stays unreachable fails the file being written and every later one ("not attempted"),
    so the report never counts a point that was not confirmed. `emit` is called from this thread only.
    """

    def __init__(self, store, store_lock: threading.Lock, clock: StageClock,
                 emit: Callable[[FileResult], None], depth: int = 2, access: Access = DEFAULT_ACCESS) -> None:
        self._store, self._lock, self._clock, self._emit = store, store_lock, clock, emit
        self.access = access
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self.outage: str | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="german-rag-writer", daemon=True)
        self._thread.start()

    def put(self, item: list[Ready | Removal | FileResult]) -> None:
        self._queue.put(item)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            for entry in item:
                try:
                    self._emit(entry if isinstance(entry, FileResult) else self._remove(entry)
                               if isinstance(entry, Removal) else self._write(entry))
                except BaseException as exc:
                    self.error = self.error or exc

    def _write(self, ready: Ready) -> FileResult:
        def write() -> FileResult:
            written = self._store.upsert_chunks(ready.chunks, ready.dense, ready.sparse,
                                                doc_hash=ready.pending.file_hash, access=self.access,
                                                fields=ready.pending.fields)
            deleted = (self._store.delete_stale(source, ready.pending.doc_id)  # only after the new version
                       if ready.pending.had_version else 0)
            pages, low, problems = ready.pending.ocr
            return FileResult(source, "ingested", chunks=len(ready.chunks), points_written=written,
                              points_deleted=deleted, chunks_reused=ready.reused,
                              renamed_from=ready.pending.reuse_source, ocr_pages=pages, ocr_low_confidence=low,
                              ocr_problems=problems)

        source = ready.pending.cand.source
        return self._stored(source, "write", write)

    def _remove(self, removal: Removal) -> FileResult:
        def remove() -> FileResult:
            return FileResult(source, "removed", points_deleted=self._store.delete_source(source),
                              error=f"{removal.reason}; its stored document was removed")

        source = removal.pending.cand.source
        return self._stored(source, "delete", remove)

    def _stored(self, source: str, what: str, call: Callable[[], FileResult]) -> FileResult:
        """`call` (one file's store work) under the store lock, with the outage rule: a store that stays
        unreachable fails this file and marks every later one "not attempted"; any other error fails
        this file only."""
        if self.outage:
            return FileResult(source, "failed", error=f"{source}: not attempted: {self.outage}")
        try:
            with self._clock.timed("store"), self._lock:
                return call()
        except StoreUnavailableError as exc:
            self.outage = str(exc)
            return FileResult(source, "failed", error=f"{source}: {exc}")
        except GermanRagError as exc:  # the store refused this file (its message names it)
            return FileResult(source, "failed", error=str(exc))
        except Exception as exc:  # an engine error (a 4xx, the edge binding's plain Exception): this file only
            log.exception(f"{what} failed", extra={"source": source})
            return FileResult(source, "failed", error=f"{source}: {what} failed: {type(exc).__name__}: {exc}")

    def finish(self, raise_error: bool = True) -> None:
        """Wait for every queued file; re-raise what broke the thread (a bug, never a per-file error)."""
        self._queue.put(_END)
        self._thread.join()
        if self.error is not None:
            if raise_error:
                raise self.error
            log.error("writer failed", extra={"error": repr(self.error)})
