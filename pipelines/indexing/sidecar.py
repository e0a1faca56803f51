"""Per-file access fields from a sidecar: `NAME.meta.json` next to `NAME` (e.g. `brief.pdf.meta.json`).

    {"tenant": "acme", "groups": ["hr", "legal"]}

Both keys are optional: a missing `tenant` is the run's tenant, missing `groups` the run's groups. A sidecar is
never ingested itself. A sidecar that cannot be read, is not a JSON object, has other keys or values of the
wrong type fails its file (the run goes on with the rest); so does a tenant the run may not write.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol, TypeVar

from ingest.schema import Access, AccessError, InputError
from ingest.store.access import Principal
from pipelines.indexing.report import FileResult

SUFFIX = ".meta.json"
KEYS = frozenset({"tenant", "groups"})
MAX_BYTES = 64 << 10


class _File(Protocol):
    """What grouping needs of a candidate (discover.Candidate; discover imports this module, not the reverse)."""

    @property
    def path(self) -> Path: ...

    @property
    def source(self) -> str: ...


F = TypeVar("F", bound=_File)


class SidecarError(InputError):
    """A sidecar file that cannot be used: its document fails, named with the sidecar's problem."""


def sidecar_of(path: Path) -> Path:
    return path.with_name(path.name + SUFFIX)


def is_sidecar(path: Path) -> bool:
    """Whether `path` is some file's sidecar (the file it describes exists next to it)."""
    return path.name.endswith(SUFFIX) and path.with_name(path.name[: -len(SUFFIX)]).exists()


def access_for(path: Path, default: Access) -> Access:
    """The access fields of the document at `path`: its sidecar's, completed from `default`."""
    side = sidecar_of(path)
    try:
        if not side.is_file():
            return default
        raw = side.read_bytes()[: MAX_BYTES + 1]
    except OSError as exc:
        raise SidecarError(f"{side.name}: cannot read it: {exc.strerror or exc}") from exc
    if len(raw) > MAX_BYTES:
        raise SidecarError(f"{side.name}: larger than {MAX_BYTES} bytes")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SidecarError(f"{side.name}: not UTF-8 JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise SidecarError(f"{side.name}: must be a JSON object with the keys {sorted(KEYS)}")
    if unknown := sorted(set(data) - KEYS):
        raise SidecarError(f"{side.name}: unknown key(s) {unknown} (allowed: {sorted(KEYS)})")
    tenant = data.get("tenant", default.tenant)
    groups = data.get("groups", list(default.groups))
    if not isinstance(tenant, str) or not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise SidecarError(f"{side.name}: 'tenant' must be a string and 'groups' a list of strings")
    try:
        return Access(tenant, tuple(groups))
    except AccessError as exc:
        raise SidecarError(f"{side.name}: {exc}") from exc


def group_by_access(candidates: list[F], default: Access,
                    writer: Principal) -> tuple[dict[Access, list[F]], list[FileResult]]:
    """Candidates grouped by their access fields (a sidecar's, else `default`); a file whose sidecar is broken
    or names a tenant `writer` may not write fails alone (a FileResult)."""
    groups: dict[Access, list[F]] = {}
    refused: list[FileResult] = []
    for cand in candidates:
        try:
            access = access_for(cand.path, default)
            if not writer.may_store(access):
                raise SidecarError(f"{sidecar_of(cand.path).name}: tenant {access.tenant!r} is not the tenant "
                                   f"this run writes ({writer.tenant!r})")
        except SidecarError as exc:
            refused.append(FileResult(cand.source, "failed", error=f"{cand.source}: {exc}"))
            continue
        groups.setdefault(access, []).append(cand)
    return groups, refused
