"""Which files an ingest run looks at: named files, and folders walked recursively."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ingest.parse import SUPPORTED_EXTENSIONS


@dataclass(frozen=True)
class Candidate:
    path: Path
    source: str
    explicit: bool  # named on the command line (an unsupported type is then an error, not a skip)


def source_name(path: Path) -> str:
    """The stored name of a file: its absolute path, symlinks not resolved, as POSIX text."""
    return Path(os.path.abspath(path)).as_posix()


def discover(paths: list[str | Path]) -> tuple[list[Candidate], list[tuple[str, str]]]:
    """Files to ingest, sorted, each once; plus (path, reason) for named paths that do not exist."""
    found: dict[str, Candidate] = {}
    missing: list[tuple[str, str]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for file in _walk(path):
                found.setdefault(source_name(file), Candidate(file, source_name(file), False))
        elif path.exists() or path.is_symlink():
            found.setdefault(source_name(path), Candidate(path, source_name(path), True))
        else:
            missing.append((str(raw), "no such file or directory"))
    return sorted(found.values(), key=lambda c: c.source), missing


def _walk(root: Path) -> list[Path]:
    """Every non-hidden file below root; symlinked folders are not followed (no loops)."""
    out = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out.extend(Path(folder) / f for f in sorted(files) if not f.startswith("."))
    return out


def is_supported(candidate: Candidate) -> bool:
    return candidate.path.suffix.lower() in SUPPORTED_EXTENSIONS
