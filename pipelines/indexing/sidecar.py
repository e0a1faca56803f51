"""Per-file access fields and user metadata from a sidecar: `NAME.meta.json` (or `NAME.meta.yaml`) next to
`NAME` (e.g. `brief.pdf.meta.json`).

    {"tenant": "acme", "groups": ["hr", "legal"], "meta": {"projekt": "Umzug", "frist": "2024-06-30"}}

Every key is optional: a missing `tenant` is the run's tenant, missing `groups` the run's groups, `meta` an
object of scalars (the document's user metadata, payload `meta`, over the run's `--meta`). Other top-level keys
are an error, not metadata: a mistyped `group` must not leave a document readable by the whole tenant. A
sidecar is never ingested itself. A sidecar that cannot be read, is not a JSON/YAML mapping, has other keys or
values of the wrong type fails its file (the run goes on with the rest); so does a tenant the run may not write,
and a file with both a .json and a .yaml sidecar.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol, TypeVar

import yaml

from ingest.schema import Access, AccessError, InputError
from ingest.store.access import Principal
from pipelines.indexing.fields import MetaValueError, Scalar, user_meta
from pipelines.indexing.report import FileResult

SUFFIX = ".meta.json"
SUFFIXES = (SUFFIX, ".meta.yaml", ".meta.yml")
KEYS = frozenset({"tenant", "groups", "meta"})
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
    """The sidecar that describes `path` (the first that exists of .meta.json, .meta.yaml, .meta.yml)."""
    for suffix in SUFFIXES[1:]:
        side = path.with_name(path.name + suffix)
        if side.is_file():
            return side
    return path.with_name(path.name + SUFFIX)


def is_sidecar(path: Path) -> bool:
    """Whether `path` is some file's sidecar (the file it describes exists next to it)."""
    return any(path.name.endswith(s) and path.with_name(path.name[: -len(s)]).exists() for s in SUFFIXES)


def described(path: Path) -> Path | None:
    """The document a sidecar path describes (whether or not it exists), or None for any other path."""
    return next((path.with_name(path.name[: -len(s)]) for s in SUFFIXES if path.name.endswith(s)), None)


def _read(path: Path) -> dict | None:
    """The sidecar of `path` as a mapping, or None without one."""
    sides = [side for suffix in SUFFIXES if (side := path.with_name(path.name + suffix)).is_file()]
    if not sides:
        return None
    if len(sides) > 1:
        raise SidecarError(f"{sides[0].name}: {path.name} has {len(sides)} sidecars; keep one")
    side = sides[0]
    try:
        raw = side.read_bytes()[: MAX_BYTES + 1]
    except OSError as exc:
        raise SidecarError(f"{side.name}: cannot read it: {exc.strerror or exc}") from exc
    if len(raw) > MAX_BYTES:
        raise SidecarError(f"{side.name}: larger than {MAX_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
        data = json.loads(text) if side.name.endswith(SUFFIX) else yaml.safe_load(text)
    except UnicodeDecodeError as exc:
        raise SidecarError(f"{side.name}: not UTF-8 ({exc})") from exc
    except (json.JSONDecodeError, yaml.YAMLError, ValueError, OverflowError) as exc:
        raise SidecarError(f"{side.name}: not valid {'JSON' if side.name.endswith(SUFFIX) else 'YAML'} ({exc})") \
            from exc
    if not isinstance(data, dict):
        raise SidecarError(f"{side.name}: must be a mapping with the keys {sorted(KEYS)}")
    if unknown := sorted(map(str, set(data) - KEYS)):
        raise SidecarError(f"{side.name}: unknown key(s) {unknown} (allowed: {sorted(KEYS)}; user metadata "
                           "goes under 'meta')")
    return data


def access_for(path: Path, default: Access) -> Access:
    """The access fields of the document at `path`: its sidecar's, completed from `default`."""
    return read_sidecar(path, default)[0]


def read_sidecar(path: Path, default: Access) -> tuple[Access, dict[str, Scalar]]:
    """(access fields, user metadata) of the document at `path` from its sidecar, completed from `default`."""
    data = _read(path)
    if data is None:
        return default, {}
    side = sidecar_of(path)
    tenant = data.get("tenant", default.tenant)
    groups = data.get("groups", list(default.groups))
    if not isinstance(tenant, str) or not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise SidecarError(f"{side.name}: 'tenant' must be a string and 'groups' a list of strings")
    try:
        access = Access(tenant, tuple(groups))
    except AccessError as exc:
        raise SidecarError(f"{side.name}: {exc}") from exc
    meta = data.get("meta", {})
    if not isinstance(meta, dict):
        raise SidecarError(f"{side.name}: 'meta' must be a mapping of names to values")
    try:
        return access, user_meta(meta, f"{side.name}: meta")
    except MetaValueError as exc:
        raise SidecarError(str(exc)) from exc


def group_by_access(candidates: list[F], default: Access, writer: Principal, metas: dict[str, dict[str, Scalar]]
                    | None = None) -> tuple[dict[Access, list[F]], list[FileResult]]:
    """Candidates grouped by their access fields (a sidecar's, else `default`); a file whose sidecar is broken
    or names a tenant `writer` may not write fails alone (a FileResult). `metas` receives each source's sidecar
    metadata (where it has any)."""
    groups: dict[Access, list[F]] = {}
    refused: list[FileResult] = []
    for cand in candidates:
        try:
            access, meta = read_sidecar(cand.path, default)
            if meta and metas is not None:
                metas[cand.source] = meta
            if not writer.may_store(access):
                raise SidecarError(f"{sidecar_of(cand.path).name}: tenant {access.tenant!r} is not the tenant "
                                   f"this run writes ({writer.tenant!r})")
        except SidecarError as exc:
            refused.append(FileResult(cand.source, "failed", error=f"{cand.source}: {exc}"))
            continue
        groups.setdefault(access, []).append(cand)
    return groups, refused
