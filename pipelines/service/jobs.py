"""Upload jobs: files land in a private folder, one worker thread ingests them, the folder is removed.

An uploaded file's name is only a label: it becomes the stored source `upload:<name>` (so uploading a
changed file of the same name replaces the old version, as re-ingesting a path does) but it is never
part of a path on disk; the file is saved as `<index><extension>` inside a folder only this user can read.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import queue
import re
import shutil
import tempfile
import threading
import time
import unicodedata
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ingest.parse_worker import abort_all
from ingest.schema import DEFAULT_ACCESS, Access, ModelUnavailableError
from ingest.store.access import OWNER, Principal
from pipelines.indexing.discover import Candidate
from pipelines.indexing.report import FileResult, IngestReport
from pipelines.indexing.run import IngestRunner
from pipelines.service.principals import Caller, audit

log = logging.getLogger(__name__)
UPLOAD_PREFIX = "upload:"
MAX_NAME_CHARS = 200
MAX_EXT_CHARS = 16  # a longer "extension" is part of the name
NAME_HASH_CHARS = 8  # hex digits of sha256(name) that end a cut name
STOP_GRACE_S = 10.0  # after the shutdown timeout: how long the worker thread may take to wind up
KEEP_JOBS = 1000  # finished jobs remembered for GET /v1/jobs/{id}; the oldest are forgotten first


def display_name(filename: str | None) -> str:
    """The label of an uploaded file: its last path component in NFC (macOS sends names in NFD: the
    same name must be the same source), control and format characters spelled as escapes (`\\t`,
    `\\u202e`: removing them made `tab<TAB>x.txt` the same source as `tabx.txt`), bounded to MAX_NAME_CHARS.

    A longer name is cut in its stem, so the extension that picks the parser survives, and the cut ends
    in `~` and a short hash of the whole name: two names that differ only past the cut stay two sources
    (a plain cut made them one, and the second upload replaced the first), while the same long name
    again is the same source and replaces its own earlier version."""
    name = re.split(r"[\\/]", unicodedata.normalize("NFC", filename or ""))[-1]
    name = "".join(ch.encode("unicode_escape").decode("ascii") if unicodedata.category(ch)[0] == "C" else ch
                   for ch in name).strip()
    if name.startswith(".") and "." not in name[1:] and len(name) > 1:  # "   .txt" stripped, or ".txt" as sent:
        name = "unnamed" + name  # the extension picks the parser; as a dotfile it had none (a 415)
    if len(name) > MAX_NAME_CHARS:
        tag = "~" + hashlib.sha256(name.encode()).hexdigest()[:NAME_HASH_CHARS]
        stem, dot, ext = name.rpartition(".")
        keep = len(ext) + 1 if dot and stem and len(ext) <= MAX_EXT_CHARS else 0
        room = MAX_NAME_CHARS - keep - len(tag)
        name = (stem[:room].rstrip() + tag + "." + ext) if keep else name[:room].rstrip() + tag
    return name or "unnamed"


def _literal(text: str) -> Callable[[re.Match[str]], str]:
    return lambda _: text


def hide_paths(message: str, job: Job) -> str:
    """A message for the caller: the server's paths (a parser may name the file it read) become the
    upload names the caller sent; the job folder itself is never shown."""
    for f in job.files:
        message = message.replace(str(f.path), f.name)
    message = message.replace(str(job.folder), "<upload>")
    for f in job.files:  # a bare `0003.pdf` is a name the caller never sent
        # a function, not the name itself: re.sub would read backslashes in the name as escapes
        message = re.sub(rf"(?<![\w.]){re.escape(f.path.name)}(?![\w.])", _literal(f.name), message)
    return message


@dataclass(frozen=True)
class UploadedFile:
    name: str  # display name as sent
    path: Path  # inside the job's private folder

    @property
    def source(self) -> str:
        return UPLOAD_PREFIX + self.name


@dataclass
class Job:
    job_id: str
    files: list[UploadedFile]
    folder: Path
    state: str = "queued"  # queued | running | succeeded | failed
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    results: list[FileResult] = field(default_factory=list)
    summary: dict | None = None
    error: str | None = None
    caller: Caller = field(default_factory=lambda: Caller(OWNER, "none"))  # who uploaded (the job is theirs)
    access: Access = DEFAULT_ACCESS  # tenant and groups of the documents it writes
    meta: dict = field(default_factory=dict)  # user metadata of its documents (the upload's `meta` field)

    def visible_to(self, principal: Principal) -> bool:
        """A job is its uploader's: keys of the same tenant and groups (any role) that may read its documents,
        the tenant's admins and the local owner. Anyone else is told it does not exist (404, never 403): its
        file names are its documents' names."""
        owner = self.caller.principal
        if principal.is_owner:
            return True
        if principal.tenant != owner.tenant:
            return False
        reads = not self.access.groups or bool(principal.groups & set(self.access.groups))
        return principal.role == "admin" or (principal.groups == owner.groups and reads)

    def to_dict(self) -> dict:
        by_source = {r.source: r for r in self.results}
        files = []
        for f in self.files:
            r = by_source.get(f.source)
            files.append({"name": f.name, "source": f.source, **({k: v for k, v in asdict(r).items() if k != "source"}
                                                                   if r else {"status": "pending"})})
        return {"job_id": self.job_id, "state": self.state, "created_at": self.created_at,
                "started_at": self.started_at, "finished_at": self.finished_at, "error": self.error,
                "counts": self.summary, "files": files}


class UploadRunner(IngestRunner):
    """IngestRunner over uploaded files with their own source names (not discovered from paths), so
    uploads get exactly the CLI's hashing, unchanged detection, parsing, limits and write order."""

    def run_uploads(self, files: list[UploadedFile], stop: threading.Event,
                    on_file: Callable[[FileResult], None] | None = None) -> IngestReport:
        candidates = [Candidate(f.path, f.source, True) for f in files]
        return self.run_candidates(candidates, on_file, stop)


class JobManager:
    """A bounded queue of jobs and one worker thread; full queue -> `submit` returns None (HTTP 429)."""

    def __init__(self, runner: UploadRunner, queue_size: int,
                 on_result: Callable[[FileResult], None] | None = None) -> None:
        self._runner, self._on_result = runner, on_result
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=queue_size)
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.accepting = True
        self._thread = threading.Thread(target=self._loop, name="ingest-worker", daemon=True)
        self._thread.start()

    def submit(self, files: list[UploadedFile], folder: Path, caller: Caller | None = None,
               access: Access = DEFAULT_ACCESS, meta: dict | None = None) -> Job | None:
        job = Job(uuid.uuid4().hex, files, folder, caller=caller or Caller(OWNER, "none"), access=access,
                  meta=dict(meta or {}))
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            return None
        with self._lock:
            self._jobs[job.job_id] = job
            while len(self._jobs) > KEEP_JOBS:
                self._jobs.popitem(last=False)
        return job

    def get(self, job_id: str, principal: Principal = OWNER) -> Job | None:
        """The job, if `principal` may see it (else None: as if there were none)."""
        with self._lock:
            job = self._jobs.get(job_id)
        return job if job is not None and job.visible_to(principal) else None

    def visible(self, principal: Principal) -> list[Job]:
        """The jobs `principal` may see, newest first."""
        with self._lock:
            jobs = list(self._jobs.values())
        return [j for j in reversed(jobs) if j.visible_to(principal)]

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            if self._stop.is_set():
                self._finish(job, "failed", "not started: the service shut down")
                continue
            self._run(job)

    def _run(self, job: Job) -> None:
        job.state, job.started_at = "running", time.time()
        try:
            # The job's own runner: its documents' access fields, over the store as its uploader sees it
            # (the runner refuses a tenant the uploader may not write).
            runner = replace(self._runner, access=job.access, store=self._runner.store.scoped(job.caller.principal),
                             meta=job.meta)
            report = runner.run_uploads(job.files, self._stop, self._record(job))
            job.summary = report.summary()
            failed = report.count("failed")
            self._finish(job, "failed" if failed else "succeeded",
                         f"{failed} of {len(job.files)} files failed" if failed else None)
        except ModelUnavailableError as exc:
            self._finish(job, "failed", str(exc))
        except Exception as exc:  # the store went away, a bug: the job fails, the worker lives on
            log.exception("ingest job failed", extra={"job_id": job.job_id})
            self._finish(job, "failed", hide_paths(f"{type(exc).__name__}: {exc}", job))

    def _record(self, job: Job) -> Callable[[FileResult], None]:
        def on_file(result: FileResult) -> None:
            if result.error:
                result = replace(result, error=hide_paths(result.error, job))
            job.results.append(result)
            audit(job.caller, "ingest", job_id=job.job_id, source=result.source, status=result.status,
                  groups=list(job.access.groups), points_written=result.points_written,
                  points_deleted=result.points_deleted, points_updated=result.points_updated)
            if self._on_result:
                self._on_result(result)
        return on_file

    @staticmethod
    def _finish(job: Job, state: str, error: str | None) -> None:
        shutil.rmtree(job.folder, ignore_errors=True)
        job.state, job.error, job.finished_at = state, error, time.time()

    def shutdown(self, timeout: float) -> None:
        """Stop taking jobs; let queued and running jobs finish within `timeout`, then stop between files.

        What is left then is marked failed: files not begun and jobs not started. A file being parsed
        when the timeout ends is stopped (its parse worker is killed); a file being written is still
        completed (the store writes new points before it deletes old ones), so nothing is left
        half-written. The wait for the worker thread is bounded too: a service must stop.
        """
        if self._stop.is_set():  # already shut down (a test, then the app's own shutdown)
            return
        self.accepting = False
        deadline = time.monotonic() + timeout
        while not self._idle() and time.monotonic() < deadline:
            time.sleep(0.05)
        self._stop.set()
        if not self._idle():
            killed = abort_all(self._thread.ident)
            log.warning("shutdown timeout reached: stopping the running job", extra={"parse_workers": killed})
        with contextlib.suppress(queue.Full):  # after every queued job: the worker marks those failed, then ends
            self._queue.put(None, timeout=STOP_GRACE_S)
        self._thread.join(STOP_GRACE_S)
        if self._thread.is_alive():  # stuck in a store or model call: leave it, but leave no files behind
            log.error("ingest worker did not stop; exiting without it")
            with self._lock:
                unfinished = [j for j in self._jobs.values() if j.state not in ("succeeded", "failed")]
            for job in unfinished:
                self._finish(job, "failed", "stopped: the service shut down")

    def _idle(self) -> bool:
        with self._lock:
            return all(j.state in ("succeeded", "failed") for j in self._jobs.values())


class UploadRoot:
    """This service's folder for upload jobs: `<upload_dir>/german-rag-uploads-<pid>-<random>/`, held
    with an exclusive lock on its `.lock` file for the life of the process.

    A service killed with SIGKILL cannot remove its folder; the kernel releases its lock. So at start
    every folder with the prefix whose lock can be taken is a dead service's and is removed; a folder
    whose lock is held belongs to a live service (another instance on the same upload_dir) and is kept.
    """

    PREFIX = "german-rag-uploads-"

    def __init__(self, parent: str | None) -> None:
        self.parent = Path(parent or tempfile.gettempdir())
        self.path: Path | None = None
        self._lock_fd: int | None = None

    def open(self) -> Path:
        removed = self.remove_stale()
        path = Path(tempfile.mkdtemp(prefix=f"{self.PREFIX}{os.getpid()}-", dir=self.parent))  # mode 0700
        fd = os.open(path / ".lock", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.path, self._lock_fd = path, fd
        if removed:
            log.warning("removed upload folders of services that did not stop", extra={"folders": removed})
        return path

    def close(self) -> None:
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
        self.path, self._lock_fd = None, None

    def remove_stale(self) -> int:
        removed = 0
        for folder in self.parent.glob(f"{self.PREFIX}*"):
            try:
                if folder.is_symlink() or not folder.is_dir() or folder.stat().st_uid != os.getuid():
                    continue
                fd = os.open(folder / ".lock", os.O_RDWR)  # no lock file (yet): not ours to judge
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # held: a live service's folder
                os.close(fd)
                continue
            shutil.rmtree(folder, ignore_errors=True)
            os.close(fd)
            removed += 1
        return removed
