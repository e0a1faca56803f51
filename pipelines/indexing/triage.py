"""Triage of an ingest run: what needs work, without parsing or the model.

Each file's bytes are hashed and the store is asked (256 sources per lookup) whether that exact version is
already complete: an unchanged file costs a hash and a lookup and is reported at once; the rest become
`Pending` for the pipeline (pipelines/indexing/run.py). A store that stops answering ends triage: every file
left is reported "not attempted", never waited out retry by retry.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ingest.limits import Limits, file_stamp
from ingest.parse_worker import warm_up
from ingest.schema import DEFAULT_ACCESS, Access, IngestError, ParseError
from ingest.store.base import DocState, StoreUnavailableError, VectorStore
from pipelines.indexing.discover import Candidate, is_supported
from pipelines.indexing.fields import Scalar
from pipelines.indexing.report import FileResult
from pipelines.indexing.stages import Pending, StageClock

log = logging.getLogger(__name__)
STOPPED = "not ingested, the run was stopped (service shut down)"


class _Runner(Protocol):
    """What triage reads of its IngestRunner (run.py imports this module, not the reverse)."""

    store: VectorStore
    limits: Limits
    access: Access
    reuse_from: dict[str, str]

    @property
    def io(self) -> VectorStore: ...

    def identity(self, source: str, file_hash: str) -> tuple[str, dict[str, Scalar], str]: ...


@dataclass
class Triage:
    runner: _Runner

    def run(self, candidates: list[Candidate], clock: StageClock, emit: Callable[[FileResult], None],
                stop: threading.Event | None) -> tuple[list[Pending], str | None]:
        """Report unsupported, unreadable and unchanged files now; return the files to (re-)ingest, and
        the store's outage if it stopped answering (then no file is left to ingest)."""
        pending: list[Pending] = []
        outage: str | None = None
        states: dict = {}  # source -> DocState, fetched for the next 256 files at a time
        for i, cand in enumerate(candidates):
            if stop is not None and stop.is_set():  # shutting down: a file not begun is reported, not begun
                emit(FileResult(cand.source, "failed", error=f"{cand.source}: {STOPPED}"))
                continue
            if outage:  # the store is gone: say so per file instead of waiting out every retry again
                emit(FileResult(cand.source, "failed", error=f"{cand.source}: not attempted: {outage}"))
                continue
            try:
                if cand.source not in states:
                    with clock.timed("store"):
                        states = self._doc_states([c.source for c in candidates[i : i + 256]])
                state = states[cand.source]
                if isinstance(state, Exception):
                    raise state
                result = self._one(cand, clock, state)
            except StoreUnavailableError as exc:
                outage = str(exc)
                result = FileResult(cand.source, "failed", error=f"{cand.source}: {exc}")
            except Exception as exc:  # an engine error on this file's lookup: this file fails, the run goes on
                log.exception("file failed unexpectedly", extra={"source": cand.source})
                states.pop(cand.source, None)
                result = FileResult(cand.source, "failed", error=f"{cand.source}: {type(exc).__name__}: {exc}")
            if isinstance(result, Pending):
                if not pending:
                    self._parse_needed()
                pending.append(result)
            else:
                emit(result)
        if outage:
            for item in pending:
                emit(FileResult(item.cand.source, "failed", error=f"{item.cand.source}: not attempted: {outage}"))
            return [], outage
        return pending, None

    def _doc_states(self, sources: list[str]) -> dict[str, DocState | Exception]:
        """Doc states of a batch of sources; if the engine refuses the batch, each source is asked alone,
        so one source it cannot take fails only its own file (StoreUnavailableError still ends triage)."""
        try:
            return dict(self.runner.io.doc_states(sources))
        except StoreUnavailableError:
            raise
        except Exception:
            log.warning("doc-state lookup failed for a batch; asking per file", extra={"files": len(sources)})
        out: dict[str, DocState | Exception] = {}
        for source in sources:
            try:
                out[source] = self.runner.io.doc_state(source)
            except StoreUnavailableError:
                raise
            except Exception as exc:
                out[source] = exc
        return out

    def _parse_needed(self) -> None:
        """Triage found the first file to parse: the parse worker's fork server starts importing the
        parsers now (seconds, on another core) while triage goes on. A run with nothing to parse starts
        no worker process at all."""
        if self.runner.limits.parse_timeout_s > 0:
            warm_up()

    def _one(self, cand: Candidate, clock: StageClock, state: DocState) -> FileResult | Pending:
        if not is_supported(cand):
            status = "failed" if cand.explicit else "skipped"
            return FileResult(cand.source, status, error=f"{cand.source}: unsupported file type "
                              f"{cand.path.suffix.lower() or '(none)'!r}")
        try:
            with clock.timed("parse"):
                stamp = file_stamp(cand.path, cand.source)
                file_hash = sha256_file(cand.path, cand.source)
        except IngestError as exc:
            return FileResult(cand.source, "failed", error=str(exc))
        # The id comes from the file's bytes, not its parsed text: an unchanged file is recognised
        # without parsing it (parsing is most of a re-ingest, and unstructured's PDF output is
        # not always the same twice).
        doc_id, user, digest = self.runner.identity(cand.source, file_hash)
        caller = self.runner.store.principal
        # Replacing a version this writer may not read would delete (or re-label) it: only its groups or an admin.
        if caller.role != "admin" and any(not caller.can_see(acc or DEFAULT_ACCESS) for acc in state.access.values()):
            return FileResult(cand.source, "failed", error=f"{cand.source}: a document of this name exists in "
                              "groups this key is not in; only a key of those groups or an admin may replace it")
        with clock.timed("store"):
            if state.complete(doc_id):
                deleted = self.runner.io.delete_stale(cand.source, doc_id) if len(state.present) > 1 else 0
                updated = (self.runner.io.set_access(doc_id, self.runner.access)
                           if state.access.get(doc_id) != self.runner.access else 0)  # also fills in missing fields
                return FileResult(cand.source, "unchanged", points_deleted=deleted, points_updated=updated)
        reuse = None if state.present else self.runner.reuse_from.get(file_hash)
        return Pending(cand, doc_id, file_hash, stamp, had_version=bool(state.present), reuse_source=reuse,
                       user_meta=user, meta_hash=digest)


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
