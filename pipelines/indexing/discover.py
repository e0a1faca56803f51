"""Which files an ingest run looks at: named files, and folders walked recursively."""

from __future__ import annotations

import errno
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from ingest.parse import SUPPORTED_EXTENSIONS
from pipelines.indexing.sidecar import is_sidecar
from pipelines.sources import escape_name, source_name


@dataclass(frozen=True)
class Candidate:
    path: Path
    source: str
    explicit: bool  # named on the command line (an unsupported type is then an error, not a skip)


def discover(paths: list[str | Path]) -> tuple[list[Candidate], list[tuple[str, str]]]:
    """Files to ingest, sorted, each once; plus (path, reason) for paths that cannot be looked at.

    Named paths that do not exist, folders that cannot be listed (too long a path, no permission),
    symlink loops and dangling symlinks are reported, never skipped in silence. A file reached twice
    (named twice, or through a symlink and its target) is one candidate: sources are real paths.
    """
    found: dict[str, Candidate] = {}
    missing: list[tuple[str, str]] = []
    for raw in paths:
        path = Path(raw)
        try:
            is_dir, exists = path.is_dir(), os.path.lexists(path)
        except OSError as exc:
            missing.append((escape_name(str(raw)), f"cannot look at it: {exc.strerror or exc}"))
            continue
        if is_dir:
            for file in _walk(path, missing):
                if not is_sidecar(file):  # a document's access fields, read with the document
                    _add(found, missing, file, False)
        elif exists:
            _add(found, missing, path, True)
        else:
            missing.append((escape_name(str(raw)), "no such file or directory"))
    return sorted(found.values(), key=lambda c: c.source), missing


def _add(found: dict[str, Candidate], errors: list[tuple[str, str]], path: Path, explicit: bool) -> None:
    """Add one file under its source name (once per real file), unless it is a broken link."""
    shown = escape_name(os.path.abspath(path))
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            errors.append((shown, "symlink loop (too many levels of symbolic links)"))
            return
        if exc.errno == errno.ENOENT and os.path.islink(path):
            errors.append((shown, f"dangling symlink (its target {escape_name(os.path.realpath(path))} is missing)"))
            return
    source = source_name(path)
    known = found.get(source)
    if known is None or (explicit and not known.explicit):  # the same real file, named or reached twice
        found[source] = Candidate(known.path if known else path, source, explicit)


def _walk(root: Path, errors: list[tuple[str, str]]) -> list[Path]:
    """Every non-hidden file below root; symlinked folders are not followed (no loops)."""
    out: list[Path] = []

    def failed(exc: OSError) -> None:
        name = escape_name(os.path.abspath(exc.filename)) if exc.filename else escape_name(str(root))
        errors.append((name, f"cannot list folder: {exc.strerror or exc}"))

    for folder, dirs, files in os.walk(root, followlinks=False, onerror=failed):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out.extend(Path(folder) / f for f in sorted(files) if not f.startswith("."))
    return out


def in_shard(source: str, index: int, count: int) -> bool:
    """Whether `source` belongs to shard `index` of `count`: a stable hash of the path, the same on
    every machine and every run (Python's hash() is salted per process, so it is not used)."""
    digest = hashlib.sha256(source.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % count == index


def parse_shard(text: str) -> tuple[int, int]:
    """`I/N` with 0 <= I < N -> (I, N); anything else is a ValueError naming the flag."""
    index, sep, count = text.partition("/")
    if not sep or not index.strip().isdigit() or not count.strip().isdigit():
        raise ValueError(f"--shard {text!r}: expected I/N, e.g. 0/4")
    i, n = int(index), int(count)
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard {text!r}: needs N >= 1 and 0 <= I < N")
    return i, n


def is_supported(candidate: Candidate) -> bool:
    return candidate.path.suffix.lower() in SUPPORTED_EXTENSIONS
