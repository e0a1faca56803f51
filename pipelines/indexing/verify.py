"""`german-rag verify`: check a collection against its source files.

Checks, each a Problem naming the source: the collection's model and vector size match the
configured model (and every stored vector has that size); every source file is present in its
current version (the document id from its bytes and the ingest settings); every document has
exactly `chunk_count` chunks with indices 0..n-1 once each and point id == chunk id; no source keeps
chunks of an older version; no stored source is an orphan (its file is gone, or it lies under a
checked folder but is no longer found there); every point carries its access fields (`tenant`, `groups`:
points from before #12 have neither and count as tenant `default`, readable by all of its users; one
problem per source, with the number of such points).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ingest.schema import EmptyDocumentError, P, ParseError
from pipelines.indexing.discover import Candidate, discover, is_supported
from pipelines.indexing.triage import sha256_file
from pipelines.sources import file_path, shown, source_name, under

_FIELDS = [P.SOURCE, P.DOC_ID, P.CHUNK_ID, P.CHUNK_INDEX, P.CHUNK_COUNT, P.TENANT, P.GROUPS]


@dataclass(frozen=True)
class Problem:
    kind: str  # model, vector_size, missing, outdated, stale, incomplete, duplicate, bad_id, orphan, unreadable,
    # no_access
    source: str
    detail: str


@dataclass
class VerifyReport:
    collection: str
    sources_checked: int = 0
    points: int = 0
    documents: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"collection": self.collection, "ok": self.ok, "sources_checked": self.sources_checked,
                "points": self.points, "documents": self.documents,
                "problems": [asdict(p) for p in self.problems]}


def verify_collection(store, model_id: str, dimension: int, doc_id_of: Callable[[Candidate, str], str],
                      paths: list) -> VerifyReport:
    """Compare the store's collection with the files under `paths` (see the module docstring)."""
    report = VerifyReport(collection=store.options.collection)
    store.require_collection()
    meta = store.metadata()
    if meta.get("embed_model") != model_id or meta.get("dimension") != dimension:
        report.problems.append(Problem("model", "*", f"collection built with {meta.get('embed_model')!r} "
                                       f"({meta.get('dimension')}-d), configured {model_id!r} ({dimension}-d)"))
    stored = _scan(store, dimension, report)
    _check_access(stored, report)
    _check_documents(stored, report)
    _check_sources(stored, doc_id_of, paths, report)
    return report


def _scan(store, dimension: int, report: VerifyReport) -> dict[str, dict[str, list[tuple[str, dict]]]]:
    """source -> doc_id -> [(point id, payload)], checking ids and vector sizes on the way."""
    stored: dict[str, dict[str, list[tuple[str, dict]]]] = defaultdict(lambda: defaultdict(list))
    for point_id, payload, vector in store.scan(_FIELDS, vectors=True):
        report.points += 1
        source = str(payload.get(P.SOURCE, "?"))
        if vector is not None and len(vector) != dimension:
            report.problems.append(Problem("vector_size", source, f"point {point_id}: {len(vector)}-d vector, "
                                           f"expected {dimension}"))
        if payload.get(P.CHUNK_ID) != point_id:
            report.problems.append(Problem("bad_id", source, f"point {point_id}: chunk_id "
                                           f"{payload.get(P.CHUNK_ID)!r} differs from the point id"))
        stored[source][str(payload.get(P.DOC_ID))].append((point_id, payload))
    return stored


def _check_access(stored: dict, report: VerifyReport) -> None:
    """One problem per source whose points lack access fields (a collection from before tenants existed:
    they read as tenant `default`, every user of it), counted per source, not listed per point."""
    for source, docs in sorted(stored.items()):
        points = [payload for doc in docs.values() for _, payload in doc]
        lacking = [p for p in points if not p.get(P.TENANT) or p.get(P.GROUPS) is None]
        if lacking:
            report.problems.append(Problem("no_access", source, f"{len(lacking)} of {len(points)} points have no "
                                           "access fields (tenant, groups): they count as tenant 'default' and "
                                           "every user of it may read them; re-ingest the file to write them "
                                           "(nothing is embedded again)"))


def _check_documents(stored: dict, report: VerifyReport) -> None:
    for source, docs in sorted(stored.items()):
        if len(docs) > 1:
            report.problems.append(Problem("stale", source, f"{len(docs)} versions stored (doc ids "
                                           f"{', '.join(sorted(d[:12] for d in docs))}); one expected"))
        for doc_id, points in sorted(docs.items()):
            report.documents += 1
            expected = {int(p.get(P.CHUNK_COUNT, -1)) for _, p in points}
            indices = sorted(int(p.get(P.CHUNK_INDEX, -1)) for _, p in points)
            dupes = sorted({i for i in indices if indices.count(i) > 1})
            if dupes:
                report.problems.append(Problem("duplicate", source, f"doc {doc_id[:12]}: chunk indices {dupes} "
                                               "stored more than once"))
            count = expected.pop() if len(expected) == 1 else None
            if count is None or sorted(set(indices)) != list(range(count)):
                report.problems.append(Problem("incomplete", source, f"doc {doc_id[:12]}: {len(points)} points, "
                                               f"chunk_count {sorted(expected) or count}, indices "
                                               f"{_ranges(sorted(set(indices)))}"))


def _check_sources(stored: dict, doc_id_of: Callable[[Candidate, str], str], paths: list,
                   report: VerifyReport) -> None:
    candidates, missing = discover(paths)
    for raw, why in missing:
        report.problems.append(Problem("missing", raw, why))
    seen = set()
    for cand in candidates:
        if not is_supported(cand):
            continue
        seen.add(cand.source)
        report.sources_checked += 1
        if cand.source not in stored:
            if _is_empty(cand.path, cand.source):  # nothing to index: ingest skips or removes it
                continue
            report.problems.append(Problem("missing", cand.source, "not in the collection (never ingested, or "
                                           "it failed)"))
            continue
        try:
            doc_id = doc_id_of(cand, sha256_file(cand.path, cand.source))
        except ParseError as exc:
            report.problems.append(Problem("unreadable", cand.source, str(exc)))
            continue
        if doc_id not in stored[cand.source]:
            report.problems.append(Problem("outdated", cand.source, "the stored version is not the file's current "
                                           "content (or the model/chunk settings changed); ingest it again"))
    roots = [source_name(p) for p in paths if Path(p).is_dir()]
    for source in sorted(set(stored) - seen):
        if source.startswith("upload:"):  # a service upload has no file to compare with
            continue
        exists = file_path(source).exists()
        if any(under(source, root) for root in roots) or not exists:
            report.problems.append(Problem("orphan", source, "stored, but its file is gone"
                                           + (" from the checked folder" if exists else "")))


# A file with no text but its markup is small; anything larger is not empty, and verify must not parse
# it in process (no worker, no time limit) just to find out: it is reported missing as before.
_EMPTY_CANDIDATE_BYTES = 256 * 1024


def _is_empty(path: Path, source: str) -> bool:
    """Whether ingest would find no text in the file (0 bytes, or nothing but whitespace and markup)."""
    try:
        size = path.stat().st_size
    except OSError:
        return False
    if size == 0:
        return True
    if size > _EMPTY_CANDIDATE_BYTES:
        return False
    from ingest.parse import parse_file  # only for small files the collection lacks: most runs never parse

    try:
        parse_file(path, source)
    except EmptyDocumentError:
        return True
    except Exception:  # unreadable or broken: not empty, the file is reported as missing
        return False
    return False


def _ranges(values: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2, 5' (a short list for a message)."""
    out: list[str] = []
    for v in values:
        if out and v == int(out[-1].split("-")[-1]) + 1:
            out[-1] = f"{out[-1].split('-')[0]}-{v}"
        else:
            out.append(str(v))
    return ", ".join(out) or "none"


def format_verify(report: VerifyReport) -> str:
    head = (f"collection {report.collection}: {report.points} points, {report.documents} documents, "
            f"{report.sources_checked} source files checked: "
            + ("OK" if report.ok else f"{len(report.problems)} problem(s)"))
    return "\n".join([head, *(f"  {p.kind.upper()}: {shown(p.source)}: {shown(p.detail)}" for p in report.problems)])
