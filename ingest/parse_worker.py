"""Parsing in a worker process that can be killed: the parse-time limit, and a shield for the run.

A parser that hangs (a crafted PDF, a pathological HTML) or blows up (a segfault in a C library, the
kernel's OOM killer) takes only the worker down; the run reports the file and starts a new worker.
The worker is one long-lived process, so a file costs a pipe round trip, not a process start.

Workers come from multiprocessing's fork server, not a plain fork of this process: forking a
process with threads (torch, a service running several ingests, filelock's fork guard) is unsafe.
The fork server imports unstructured and spaCy once (`ingest._parse_preload`), so a new worker
starts in milliseconds with the parsers loaded. Without a fork server (or with
`parse_timeout_s = 0`) files are parsed in process, without a time limit.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import select
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path

from ingest.limits import LimitError, Limits
from ingest.parse import parse_file
from ingest.schema import Document, IngestError, ParseError

log = logging.getLogger(__name__)
_PRELOAD = "ingest._parse_preload"
_LIVE: weakref.WeakSet[ParseWorker] = weakref.WeakSet()  # for abort_all()


def _exit_with(parent_pid: int) -> None:
    """End this worker as soon as the process that asked for it is gone, even in the middle of a parse
    (a parent killed with SIGKILL cannot say so, and a busy worker does not read its pipe). The worker's
    own parent is the fork server, which lives as long as any worker does, so PR_SET_PDEATHSIG would
    not fire: a thread waits on a pidfd of the real parent instead (polling where there is none)."""
    def watch() -> None:
        try:
            fd = os.pidfd_open(parent_pid)
        except (AttributeError, OSError):
            fd = None
        while True:
            if fd is not None:
                select.select([fd], [], [])  # readable once the process has ended (a zombie included)
            else:
                time.sleep(1.0)
                try:
                    os.kill(parent_pid, 0)
                    continue
                except PermissionError:
                    continue
                except ProcessLookupError:
                    pass
            os._exit(1)

    threading.Thread(target=watch, name="german-rag-parent-watch", daemon=True).start()


def _serve(conn: Connection, limits: Limits, parent_pid: int | None = None) -> None:
    """Worker loop: (path, source) in, (True, Document) or (False, ParseError) out; None or EOF ends it."""
    if parent_pid is not None:
        _exit_with(parent_pid)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):  # the parent is gone (even if it was SIGKILLed)
            return
        if msg is None:
            return
        path, source = msg
        try:
            conn.send((True, parse_file(Path(path), source, limits)))
        except IngestError as exc:  # a file's error, or a configuration one (OCR not installed): kept typed
            conn.send((False, type(exc)(str(exc))))
        except BaseException as exc:  # anything else must reach the parent as a message, not a hang
            conn.send((False, ParseError(f"{source}: parser failed: {type(exc).__name__}: {exc}")))


@contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Start the worker without it re-running the caller's script.

    A fork-server child imports the parent's `__main__` by path or module name; for a script without
    an `if __name__ == "__main__":` guard that would run the whole job again inside the worker. The
    worker needs only this module, so the main module's file and spec are hidden while it starts.
    """
    main = sys.modules.get("__main__")
    if main is None:  # an embedding host without a main module: nothing to hide
        yield
        return
    had_file, file, spec = hasattr(main, "__file__"), getattr(main, "__file__", None), getattr(main, "__spec__", None)
    try:
        if had_file:
            del main.__file__
        main.__spec__ = None  # multiprocessing reads it, so it must exist
        yield
    finally:
        main.__spec__ = spec
        if had_file:
            main.__file__ = file


def warm_up() -> None:
    """Start the fork server now (returns at once): it imports the parsers (about 3 s) on another core
    while this process goes on (an ingest calls it when triage finds the first file to parse), so the
    first file finds it ready. Best effort: if it cannot start here, `ParseWorker.start` tries again and
    falls back as usual."""
    if "forkserver" not in mp.get_all_start_methods():
        return
    from multiprocessing import forkserver

    mp.get_context("forkserver").set_forkserver_preload([_PRELOAD])
    try:
        with _main_module_hidden():
            forkserver.ensure_running()
    except (RuntimeError, OSError) as exc:
        log.debug("parse fork server not started early", extra={"error": str(exc)})


class ParseWorker:
    """`parse(path, source)` with the time limit of `limits.parse_timeout_s`."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._proc: mp.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._aborted = False
        self.owner = threading.get_ident()  # the thread that runs this worker's files (see abort_all)
        _LIVE.add(self)

    @property
    def isolated(self) -> bool:
        return self.limits.parse_timeout_s > 0 and "forkserver" in mp.get_all_start_methods()

    def start(self) -> None:
        """Start the worker now (the fork server's first start imports the parsers: seconds, once)."""
        if not self.isolated or self._proc is not None:
            return
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload([_PRELOAD])
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_serve, args=(child, self.limits, os.getpid()), daemon=True,
                           name="german-rag-parse")
        try:
            with _main_module_hidden():
                proc.start()
        except (RuntimeError, OSError) as exc:
            # e.g. a script calling the library at import time without `if __name__ == "__main__":`:
            # multiprocessing refuses to start workers there. Parse in process (no time limit) rather
            # than fail every file.
            log.warning("parse worker unavailable, parsing in process without a time limit",
                        extra={"error": str(exc).strip().splitlines()[0]})
            self.limits = replace(self.limits, parse_timeout_s=0)
            parent.close()
            child.close()
            return
        child.close()
        self._proc, self._conn = proc, parent

    def parse(self, path: Path, source: str) -> Document:
        if self._aborted:
            raise ParseError(f"{source}: parsing was stopped (shutting down)")
        if not self.isolated:
            return parse_file(path, source, self.limits)
        self.start()
        conn = self._conn
        if self._aborted:  # abort() ran while the worker started
            self._stop(kill=True)
            raise ParseError(f"{source}: parsing was stopped (shutting down)")
        if conn is None:  # could not fork
            return parse_file(path, source, self.limits)
        try:
            conn.send((str(path), source))
        except OSError:  # the worker died between files (OOM killer, a signal): start a new one once
            self._stop(kill=True)
            self.start()
            if self._conn is None:
                return parse_file(path, source, self.limits)
            conn = self._conn
            conn.send((str(path), source))
        timeout = self.limits.parse_timeout_s
        if not conn.poll(timeout):
            self._stop(kill=True)
            raise LimitError(f"{source}: parsing took longer than {timeout:g} s (parse_timeout_s); stopped")
        try:
            ok, value = conn.recv()
        except (EOFError, OSError) as exc:
            code = self._proc.exitcode if self._proc is not None else None
            self._stop(kill=True)
            if self._aborted:
                raise ParseError(f"{source}: parsing was stopped (shutting down)") from exc
            raise ParseError(f"{source}: the parser process died (exit code {code}) on this file") from exc
        if ok:
            return value
        raise value

    def _stop(self, kill: bool) -> None:
        proc, conn = self._proc, self._conn
        self._proc, self._conn = None, None
        if proc is None:
            return
        if kill:
            proc.kill()
        elif conn is not None:
            try:
                conn.send(None)
            except OSError:
                proc.kill()
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join()
        if conn is not None:
            conn.close()

    def close(self) -> None:
        self._stop(kill=False)

    def abort(self) -> None:
        """Kill the worker now, from any thread: a parse in progress fails with 'stopped', and so
        does every later one (the owner is shutting down)."""
        self._aborted = True
        proc = self._proc
        if proc is not None and proc.is_alive():
            proc.kill()


def abort_all(owner: int | None = None) -> int:
    """Kill the parse workers made by thread `owner` (all of this process's if None), e.g. a service's
    ingest thread past its shutdown timeout; returns how many."""
    workers = [w for w in list(_LIVE) if owner is None or w.owner == owner]
    for worker in workers:
        worker.abort()
    return len(workers)
