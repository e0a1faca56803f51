"""Keeping a collection in step with folders: `sync` (a whole reconcile) and `apply` (the files a watcher saw
change).

    sync ROOT...:  walk the roots -> ingest what is new or changed -> delete the stored sources under the roots
                   whose files are gone (only after the walk and the ingest completed)

Safety first, because a deletion cannot be taken back and an unmounted share looks like an empty folder:
- a root that is missing, not a folder, unreadable or empty is an error (a failed entry naming it) and nothing
  stored under it is deleted, also not by another root around it; the other roots go on;
- a folder below a root that cannot be listed hides its files, so nothing stored under it is deleted either;
- a stored source counts as gone only when looking it up says "no such file" or finds a folder (not on a
  permission error), and it is looked up again right before its deletion (an ingest may take hours);
- deleting more than `max_delete_share` of a root's stored sources needs `allow_mass_delete`; without it those
  sources are failed entries ("not deleted") and the run exits 1.

A file whose bytes a vanished source stored (a rename or a move, in the same run) is ingested under its new
name with the old source's vectors, matched by chunk content hash, so no model call; then the old source is
deleted like any vanished one (renames never count towards the mass-delete share).
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ingest.limits import file_stamp
from ingest.schema import DEFAULT_TENANT, P, ParseError
from ingest.store.access import ingest_principal
from ingest.store.base import DocState, StoreUnavailableError, VectorStore
from pipelines.indexing.discover import Candidate, discover, is_supported
from pipelines.indexing.report import FileResult, IngestReport
from pipelines.indexing.run import IngestRunner, compact_quietly
from pipelines.indexing.sidecar import group_by_access
from pipelines.indexing.triage import sha256_file
from pipelines.sources import escape_name, file_path, source_name, under

OnFile = Callable[[FileResult], None] | None
_BATCH = 256  # sources per store call when looking for a file's copies in other tenants


@dataclass(frozen=True)
class SyncOptions:
    dry_run: bool = False
    allow_mass_delete: bool = False
    max_delete_share: float = 0.5  # of a root's stored sources; more needs allow_mass_delete


@dataclass
class Root:
    path: Path
    source: str  # the root as a source prefix (absolute, symlinks resolved)
    error: str | None = None


@dataclass
class SyncPlan:
    """What a sync does (a dry run reports it and does nothing): every list holds source names."""

    add: list[str] = field(default_factory=list)
    replace: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # unsupported file types (the run skips them too)
    rename: list[dict[str, str]] = field(default_factory=list)  # {"from": old, "to": new}
    delete: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # deletions over the mass-delete share, without the flag
    failed: list[dict[str, str]] = field(default_factory=list)  # {"source": ..., "error": ...}
    # an owner's sync: copies of a file in tenants other than the one its sidecar (or the default) names now
    other_tenants: list[dict[str, str]] = field(default_factory=list)  # {"source": ..., "tenant": ...}

    def to_dict(self) -> dict:
        return {"dry_run": True, **asdict(self)}


@dataclass
class _Reconcile:
    """One reconcile's facts, gathered before anything is written."""

    candidates: list[Candidate]
    missing: list[tuple[str, str]]
    roots: list[Root]
    vanished: dict[str, str | None]  # stored source whose file is gone -> its stored file hash
    renames: dict[str, str]  # new source -> the vanished source with its bytes
    refused: set[str]  # vanished sources a mass-delete guard keeps
    hashes: dict[str, str]  # source -> file hash, for the new candidates hashed to find renames


class Syncer:
    """Reconciles a collection with folders through an IngestRunner (its store, model and access fields)."""

    def __init__(self, runner: IngestRunner, roots: Sequence[str | os.PathLike[str]],
                 options: SyncOptions | None = None) -> None:
        self.runner = runner
        self.options = options or SyncOptions()
        self.roots = [Root(Path(r), source_name(r)) for r in roots]

    @property
    def _store(self) -> VectorStore:
        """The view deletes and the stored-source scan use: the owner's whole store, or a tenant's every group."""
        return self.runner.store if self.runner.store.principal.is_owner else self.runner.io

    # -- sync: the whole roots ---------------------------------------------------------------------
    def sync(self, on_file: OnFile = None, stop: threading.Event | None = None) -> IngestReport:
        """Ingest everything under the roots, then delete the stored sources under them that are gone."""
        self._check_roots()
        good = [r for r in self.roots if r.error is None]
        candidates, missing = discover([r.path for r in good]) if good else ([], [])
        facts = self._facts(candidates, list(missing), good, scope=None)
        return self._run(facts, on_file, stop)

    def plan(self) -> SyncPlan:
        """What `sync` would do, without writing or deleting anything."""
        self._check_roots()
        good = [r for r in self.roots if r.error is None]
        candidates, missing = discover([r.path for r in good]) if good else ([], [])
        return self._plan(self._facts(candidates, list(missing), good, scope=None))

    # -- apply: what a watcher saw ------------------------------------------------------------------
    def apply(self, changed: Iterable[str | os.PathLike[str]], removed: Iterable[str | os.PathLike[str]],
              on_file: OnFile = None, stop: threading.Event | None = None) -> IngestReport:
        """Ingest changed files (a folder: its files) and delete the stored sources under removed paths whose
        files are gone; paths outside the roots are ignored. A rename is its old path in `removed` and its new
        path in `changed`, in one call. A root that vanished or is empty deletes nothing (a failed entry)."""
        self._check_roots()
        good = [r for r in self.roots if r.error is None]
        inside = [Path(p) for p in changed if _within(source_name(p), good)]
        candidates, missing = discover([p for p in inside if os.path.lexists(p)]) if inside else ([], [])
        # A watcher's paths are what a walk would find, not files a user named: an unsupported type is skipped.
        candidates = [replace(c, explicit=False) for c in candidates]
        scope = [source_name(p) for p in removed if _within(source_name(p), good)]
        facts = self._facts(candidates, list(missing), good, scope=scope)
        return self._run(facts, on_file, stop)

    # -- the reconcile --------------------------------------------------------------------------------
    def _check_roots(self) -> None:
        for root in self.roots:
            root.error = root_problem(root.path)

    def _facts(self, candidates: list[Candidate], missing: list[tuple[str, str]], good: list[Root],
               scope: list[str] | None) -> _Reconcile:
        """Who is gone, who was renamed, which deletions the guard keeps. `scope` None: everything under the
        roots (sync); else only sources at or under those paths (apply)."""
        # Not seen, so not gone: the files under folders the walk could not list (named as walked, maybe through a
        # symlinked root, so compared resolved too) and under failed roots (also where another root contains them).
        blind = {n for name, _ in missing for n in (name, source_name(file_path(name)))}
        blind.update(r.source for r in self.roots if r.error)
        stored = self._stored(good, scope)
        seen = {c.source for c in candidates}
        vanished = {s: h for s, h in stored.items()
                    if s not in seen and not any(s == b or under(s, b) for b in blind) and is_gone(s)}
        new = [c for c in candidates if c.source not in stored]
        hashes = self._hashes(new) if vanished else {}
        by_hash = {h: s for s, h in sorted(vanished.items()) if h}
        renames: dict[str, str] = {}
        for source, digest in hashes.items():
            old = by_hash.pop(digest, None)  # one new file per vanished source: a copy is not a rename
            if old:
                renames[source] = old
        # The share guards a whole reconcile (an unmounted share, a wrong root); a watcher's removals are events
        # the file system reported one by one, and a vanished or emptied root is refused for both.
        refused = self._guard(stored, set(vanished) - set(renames.values()), good) if scope is None else set()
        return _Reconcile(candidates, missing, self.roots, vanished, renames, refused, hashes)

    def _stored(self, good: list[Root], scope: list[str] | None) -> dict[str, str | None]:
        """Stored sources under the good roots (and at or under a `scope` path), with their stored file hash.
        Removed files that are stored sources need one lookup; a removed folder (or a sync) one scan."""
        if not good or scope == [] or not self._store.exists():
            return {}
        if scope is not None:
            states = self._store.doc_states(scope)
            if all(states[s].present for s in scope):
                return {s: states[s].file_hash() for s in scope if _within(s, good)}
        out = {}
        for source, entry in self._store.sources().items():
            if not _within(source, good):
                continue
            if scope is not None and not any(source == p or under(source, p) for p in scope):
                continue
            out[source] = entry.get("doc_hash")
        return out

    @staticmethod
    def _hashes(candidates: list[Candidate]) -> dict[str, str]:
        """File hashes of the new files the ingest takes (an unsupported one is skipped: it is no rename)."""
        out = {}
        for cand in candidates:
            if not is_supported(cand):
                continue
            try:
                out[cand.source] = _hash(cand)
            except ParseError:
                continue  # unreadable now (or a FIFO): the ingest reports it
        return out

    def _guard(self, stored: dict[str, str | None], deleting: set[str], good: list[Root]) -> set[str]:
        """The deletions a root's mass-delete share forbids (all of that root's, none of the others')."""
        if self.options.allow_mass_delete:
            return set()
        refused: set[str] = set()
        for root in good:
            mine = [s for s in stored if under(s, root.source)]
            gone = [s for s in deleting if under(s, root.source)]
            if mine and len(gone) / len(mine) > self.options.max_delete_share:
                refused.update(gone)
        return refused

    def _run(self, facts: _Reconcile, on_file: OnFile, stop: threading.Event | None) -> IngestReport:
        report = IngestReport(collection=self.runner.store.options.collection)
        for root in facts.roots:
            if root.error:
                _emit(report, on_file, FileResult(root.source, "failed", error=root.error))
        runner = replace(self.runner, reuse_from={facts.hashes[new]: old for new, old in facts.renames.items()})
        if facts.candidates or facts.missing:
            report.merge(runner.run_discovered(facts.candidates, facts.missing, _heirs_only(facts, on_file), stop))
        if report.outage or (stop is not None and stop.is_set()):
            why = report.outage or "the run was stopped"
            for source in sorted(facts.vanished):
                _emit(report, on_file, FileResult(source, "failed", error=f"{source}: not deleted: {why}"))
            return report
        try:
            self._drop_other_tenants(facts, report)
        except StoreUnavailableError as exc:  # the deletes below then report "not deleted" without asking again
            report.outage = str(exc)
        self._delete(facts, report, on_file)
        return report

    # -- one tenant per file (an owner's sync) -----------------------------------------------------------
    def _other_tenants(self, facts: _Reconcile, sources: list[str]) -> dict[str, list[tuple[str, str]]]:
        """source -> [(doc_id, tenant)] of its stored versions in other tenants than the one its sidecar (or the
        run) gives it now: a sidecar moved it, and the old tenant must no longer read it. Only an owner's sync
        sees every tenant; a tenant's sync leaves other tenants' copies alone."""
        if not self.runner.store.principal.is_owner or not sources or not self._store.exists():
            return {}
        wanted = set(sources)
        by_access, _ = group_by_access([c for c in facts.candidates if c.source in wanted], self.runner.access,
                                       self.runner.store.principal, {}, self.runner.store.options.meta_schema)
        out: dict[str, list[tuple[str, str]]] = {}
        for access, group in by_access.items():
            own = self._store.scoped(ingest_principal(access))  # every point of the tenant, whatever its groups
            names = [c.source for c in group]
            for i in range(0, len(names), _BATCH):
                batch = names[i : i + _BATCH]
                # Two counts answer the usual case (no copy elsewhere) without reading a payload.
                if self._store.count({P.SOURCE: batch}) == own.count({P.SOURCE: batch}):
                    continue
                for source, state in self._store.doc_states(batch).items():
                    for doc_id, stored in state.access.items():
                        tenant = stored.tenant if stored else DEFAULT_TENANT
                        if tenant != access.tenant:
                            out.setdefault(source, []).append((doc_id, tenant))
        return out

    def _drop_other_tenants(self, facts: _Reconcile, report: IngestReport) -> None:
        """Delete those copies once the file's current version is stored (its entry says how many points went)."""
        done = {f.source: f for f in report.files if f.status in ("ingested", "unchanged")}
        for source, copies in self._other_tenants(facts, list(done)).items():
            for doc_id, _ in copies:
                done[source].points_deleted += self._store.delete_doc(doc_id)

    def _delete(self, facts: _Reconcile, report: IngestReport, on_file: OnFile) -> None:
        """Delete the vanished sources (after the ingest); a failed rename keeps its old source."""
        done = {f.source: f for f in report.files}
        heirs = {old: new for new, old in facts.renames.items()}  # a dict: a moved folder has thousands
        share = f"{self.options.max_delete_share:.0%}"
        for source in sorted(facts.vanished):
            if source in facts.refused:
                _emit(report, on_file, FileResult(source, "failed", error=(
                    f"{source}: not deleted: its file is gone, but so are more than {share} of its root's sources "
                    "(an unmounted share?); run with --allow-mass-delete if that is meant")))
                continue
            if not is_gone(source):  # back since the walk: not seen by this run, so left as it is stored
                continue
            if report.outage:  # each call would wait out its retries again: the next run deletes it
                _emit(report, on_file, FileResult(source, "failed", error=f"{source}: not deleted: {report.outage}"))
                continue
            heir = heirs.get(source)
            if heir is not None and done.get(heir) is not None and done[heir].status == "failed":
                _emit(report, on_file, FileResult(source, "failed", error=(
                    f"{source}: not deleted: its renamed file {heir} failed to ingest")))
                continue
            try:
                points = self._store.delete_source(source)
            except StoreUnavailableError as exc:
                report.outage = str(exc)
                _emit(report, on_file, FileResult(source, "failed", error=f"{source}: not deleted: {exc}"))
                continue
            _emit(report, on_file, FileResult(source, "deleted", points_deleted=points))
        if self.runner.compact and any(f.points_deleted for f in report.files) and not report.outage:
            compact_quietly(self._store)

    def _plan(self, facts: _Reconcile) -> SyncPlan:
        plan = SyncPlan()
        plan.failed = [{"source": r.source, "error": r.error} for r in facts.roots if r.error]
        plan.failed += [{"source": name, "error": f"{name}: {why}"} for name, why in facts.missing]
        metas: dict = {}
        by_access, refused = group_by_access(facts.candidates, self.runner.access, self.runner.store.principal, metas,
                                             self.runner.store.options.meta_schema)
        plan.failed += [{"source": r.source, "error": r.error or ""} for r in refused]
        for access, group in by_access.items():
            runner = replace(self.runner, access=access, file_meta=metas)
            states = runner.io.doc_states([c.source for c in group]) if group and runner.io.exists() else {}
            for cand in group:
                self._classify(plan, runner, cand, states.get(cand.source) or DocState({}, {}), facts)
        plan.rename = [{"from": old, "to": new} for new, old in sorted(facts.renames.items())]
        plan.other_tenants = [{"source": s, "tenant": t} for s, copies in sorted(self._other_tenants(
            facts, [c.source for c in facts.candidates]).items()) for _, t in copies]
        plan.delete = sorted(set(facts.vanished) - facts.refused)
        plan.refused = sorted(facts.refused)
        return plan

    @staticmethod
    def _classify(plan: SyncPlan, runner: IngestRunner, cand: Candidate, state: DocState, facts: _Reconcile) -> None:
        if cand.source in facts.renames:
            return  # listed under rename
        if not is_supported(cand):  # as the ingest's triage: skipped in a walked folder, failed if named
            if cand.explicit:
                plan.failed.append({"source": cand.source, "error": f"{cand.source}: unsupported file type "
                                    f"{cand.path.suffix.lower() or '(none)'!r}"})
            else:
                plan.skipped.append(cand.source)
            return
        try:
            digest = facts.hashes.get(cand.source) or _hash(cand)
        except ParseError as exc:
            plan.failed.append({"source": cand.source, "error": str(exc)})
            return
        if not state.present:
            plan.add.append(cand.source)
        elif state.complete(runner.identity(cand.source, digest)[0]):
            plan.unchanged.append(cand.source)
        else:
            plan.replace.append(cand.source)


def _hash(cand: Candidate) -> str:
    """A candidate's file hash; anything but a regular file (a FIFO would block its reader) is a ParseError, as
    the ingest's triage refuses it before opening it."""
    file_stamp(cand.path, cand.source)
    return sha256_file(cand.path, cand.source)


def _heirs_only(facts: _Reconcile, on_file: OnFile) -> Callable[[FileResult], None]:
    """`on_file` for the ingest: the runner matches reused vectors by file hash, so a second copy of a vanished
    file takes them too (harmless, same bytes), but only the one new file `facts.renames` chose is its rename."""
    def emit(result: FileResult) -> None:
        if result.renamed_from and facts.renames.get(result.source) != result.renamed_from:
            result.renamed_from = None
        if on_file:
            on_file(result)
    return emit


def _emit(report: IngestReport, on_file: OnFile, result: FileResult) -> None:
    report.files.append(result)
    if on_file:
        on_file(result)


def _within(source: str, roots: list[Root]) -> bool:
    return any(source == r.source or under(source, r.source) for r in roots)


def root_problem(path: Path) -> str | None:
    """Why a sync root must not be synced (nothing under it may be deleted), or None."""
    shown = escape_name(os.path.abspath(path))
    try:
        if not path.is_dir():
            return f"{shown}: sync root is missing or not a folder (an unmounted share?); nothing under it deleted"
        with os.scandir(path) as entries:
            if not any(not e.name.startswith(".") for e in entries):
                return f"{shown}: sync root is empty (an unmounted share?); nothing under it deleted"
    except OSError as exc:
        return f"{shown}: cannot read the sync root: {exc.strerror or exc}; nothing under it deleted"
    return None


def is_gone(source: str) -> bool:
    """Whether a stored source's file does not exist: only "no such file" counts, never an error that merely
    hides it (a permission problem, a stale mount), since a wrong "gone" deletes a document. A folder where the
    file was is gone too (a source is a file, never a folder)."""
    try:
        found = os.lstat(file_path(source))
    except OSError as exc:
        return exc.errno in (errno.ENOENT, errno.ENOTDIR)
    return stat.S_ISDIR(found.st_mode)
