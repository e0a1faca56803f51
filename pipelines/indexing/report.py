"""The ingest report: per-file outcome, totals that must balance, time per stage."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ingest.embed_choice import Calibration

# removed: the file is empty now, so its stored document was deleted (an empty file has nothing to serve);
# deleted: the file is gone from its folder, so `sync` deleted its stored document
STATUSES = ("ingested", "unchanged", "removed", "deleted", "failed", "skipped")


@dataclass
class FileResult:
    source: str
    status: str
    chunks: int = 0
    points_written: int = 0
    points_deleted: int = 0
    chunks_reused: int = 0  # chunks whose vectors came from the store (unchanged text), not the model
    points_updated: int = 0  # points whose access fields (tenant, groups) changed without re-embedding
    error: str | None = None
    renamed_from: str | None = None  # sync: the vanished source whose vectors this file took (a rename or move)
    ocr_pages: int = 0  # pages whose text was read by OCR
    ocr_low_confidence: list[int] = field(default_factory=list)  # OCR'd pages below ocr_min_confidence
    ocr_problems: dict[str, str] = field(default_factory=dict)  # page -> why it was not OCR'd (timeout, limit)


@dataclass
class IngestReport:
    collection: str
    files: list[FileResult] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(
        default_factory=lambda: {"parse": 0.0, "chunk": 0.0, "embed": 0.0, "store": 0.0}
    )
    total_seconds: float = 0.0
    # Why the store stopped answering mid-run (StoreUnavailableError), or None: the files from then on
    # failed as "not attempted", and the CLI exits 3 (retry later) once it has printed this report.
    outage: str | None = None
    # The backend that embedded this run's chunks, and with `auto` what it measured (`backend_info`).
    embed_backend: dict | None = None
    # The index build the run ended with (pipelines/indexing/index_build.py IndexBuild.to_dict), or None
    index: dict | None = None

    def merge(self, other: IngestReport) -> None:
        """Add another run's files, stage times and outage (a run split by access fields)."""
        self.embed_backend = self.embed_backend or other.embed_backend
        self.files.extend(other.files)
        for stage, seconds in other.stage_seconds.items():
            self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + seconds
        self.total_seconds += other.total_seconds
        self.outage = self.outage or other.outage

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def chunks(self) -> int:
        return sum(f.chunks for f in self.files if f.status == "ingested")

    @property
    def points_written(self) -> int:
        return sum(f.points_written for f in self.files)

    @property
    def balanced(self) -> bool:
        """Files seen = ingested + unchanged + removed + failed + skipped; chunks made = points written."""
        by_status = sum(self.count(s) for s in STATUSES)
        return by_status == len(self.files) and self.chunks == self.points_written

    def summary(self) -> dict:
        return {
            "collection": self.collection,
            "files_seen": len(self.files),
            **{s: self.count(s) for s in STATUSES},
            "chunks": self.chunks,
            "points_written": self.points_written,
            "points_deleted": sum(f.points_deleted for f in self.files),
            "chunks_reused": sum(f.chunks_reused for f in self.files),
            "points_updated": sum(f.points_updated for f in self.files),
            "deleted_sources": [f.source for f in self.files if f.status == "deleted"],
            "renamed": [{"from": f.renamed_from, "to": f.source} for f in self.files if f.renamed_from],
            "ocr_pages": sum(f.ocr_pages for f in self.files if f.status == "ingested"),
            "ocr_low_confidence": [f"{f.source} (page {p})" for f in self.files for p in f.ocr_low_confidence],
            "ocr_problems": [f"{f.source} (page {p}): {why}" for f in self.files for p, why in f.ocr_problems.items()],
            "balanced": self.balanced,
            "stage_seconds": {k: round(v, 3) for k, v in self.stage_seconds.items()},
            "total_seconds": round(self.total_seconds, 3),
            "outage": self.outage,
            "embed_backend": self.embed_backend,
            "index": self.index,
        }

    def to_dict(self) -> dict:
        return {**self.summary(), "files": [asdict(f) for f in self.files]}


def backend_info(embedder: object) -> dict:
    """The loaded embedder's backend, with the figures `auto` chose it by (HFEmbedder); an embedder without
    backends (USE runs numpy) is named by its class."""
    return describe_backend(getattr(embedder, "backend_name", type(embedder).__name__),
                            getattr(embedder, "calibration", None))


def describe_backend(backend: str, calibration: Calibration | None) -> dict:
    """{backend, and with `auto`: summary, auto (every candidate's figures)}: the ingest report's and
    `german-rag config`'s shape."""
    info: dict = {"backend": backend}
    if calibration is not None:
        info["summary"] = calibration.summary()
        info["auto"] = calibration.to_dict()
    return info
