"""What `embed_backend = auto` chose on this machine, stored: the figures, the key, the folder.

Reading a stored choice imports neither torch nor a runtime (`german-rag config` shows it in a fraction of
a second); `ingest.embed_calibrate` makes the measurement. The key holds what decides which kernels run
and how fast: the CPU (model name, every flag), the thread count, the kernel settings a user may cap
(`KERNEL_ENV`), the library versions, the candidates, the accuracy rule and the calibration texts.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from importlib import metadata, resources
from pathlib import Path

METHOD = 2  # how the measurement is made (ingest/embed_calibrate.py): a change measures again
MIN_COSINE = 0.99  # the accuracy rule of issue #6 and benchmarks/backend_eval.py, per text
CANDIDATES = ("ct2-int8", "onnx-int8", "torch-int8", "torch-bf16")

BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # without one of these, bf16 matmuls are emulated (~300x slower)
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "asimd",
             "sve")
LIBRARIES = ("torch", "onnxruntime", "ctranslate2", "transformers")
# Settings that change which kernels the runtimes pick (an ISA cap makes another machine of this one).
KERNEL_ENV = ("CT2_FORCE_CPU_ISA", "CT2_USE_MKL", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS",
              "ATEN_CPU_CAPABILITY", "OMP_NUM_THREADS")


@dataclass(frozen=True)
class Trial:
    """One candidate's figures on this machine (an error instead where it cannot be built or run)."""

    backend: str
    min_cosine: float | None = None
    mean_cosine: float | None = None
    tokens_per_s: float | None = None
    speedup: float | None = None  # fp32 torch's time over this one's, timed in turns (best of two); None: not
    # timed, because it failed the accuracy rule or could not run
    query_ms: float | None = None  # median of batch-1 question embeddings
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and self.min_cosine is not None and self.min_cosine >= MIN_COSINE


@dataclass
class Calibration:
    chosen: str
    trials: list[Trial]
    cpu: str
    isa: list[str]
    threads: int
    texts: int
    tokens: int
    seconds: float
    measured_at: str
    key: str
    cached: bool = field(default=False, compare=False)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["trials"] = [{**asdict(t), "passed": t.passed} for t in self.trials]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        trials = [Trial(**{k: v for k, v in t.items() if k != "passed"}) for t in data["trials"]]
        return cls(**{**data, "trials": trials, "cached": True})

    def trial(self, backend: str) -> Trial | None:
        return next((t for t in self.trials if t.backend == backend), None)

    def summary(self) -> str:
        """One line: the choice, its speed over fp32, its worst cosine, where and when it was measured."""
        best = self.trial(self.chosen)
        figures = (f"x{best.speedup:.2f} fp32 torch, min cosine {best.min_cosine:.4f}"
                   if best and best.speedup and best.min_cosine is not None else "the fp32 reference")
        return (f"auto -> {self.chosen} ({figures}; measured on {self.cpu}, {self.threads} threads, "
                f"{self.measured_at[:10]}{', cached' if self.cached else ''})")



def cpu_identity() -> tuple[str, list[str], str]:
    """CPU model name, the ISA flags that decide kernels, and a digest of every flag."""
    name, flags = "unknown CPU", ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and name == "unknown CPU":
                    name = value.strip()
                elif key.strip() in ("flags", "Features") and not flags:
                    flags = value.strip()
    except OSError:
        pass
    present = set(flags.split())
    return name, [f for f in ISA_FLAGS if f in present], hashlib.sha256(flags.encode()).hexdigest()[:12]


def candidates() -> list[str]:
    """The backends `auto` measures here (fp32 torch is the reference, measured first)."""
    _, isa, _ = cpu_identity()
    return [c for c in CANDIDATES if c != "torch-bf16" or any(f in isa for f in BF16_FLAGS)]


def cache_key(threads: int) -> str:
    name, _, flags_digest = cpu_identity()
    versions = [f"{lib}={_version(lib)}" for lib in LIBRARIES]
    texts = resources.files("ingest").joinpath("resources/calibration_de.txt").read_bytes()
    env = [f"{k}={os.environ[k]}" for k in KERNEL_ENV if k in os.environ]
    parts = [f"method={METHOD}", name, flags_digest, str(threads), *versions, *env, ",".join(candidates()),
             str(MIN_COSINE), hashlib.sha256(texts).hexdigest()]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def cache_file(transformer_dir: Path, cache_dir: Path, threads: int) -> Path:
    return export_folder(transformer_dir, cache_dir) / f"auto-{cache_key(threads)}.json"


def cached_calibration(transformer_dir: Path, cache_dir: Path, threads: int) -> Calibration | None:
    """The stored measurement for this model on this machine, or None (never measures)."""
    path = cache_file(transformer_dir, cache_dir, threads)
    try:
        return Calibration.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def export_folder(transformer_dir: Path, cache_dir: Path) -> Path:
    """Cache folder for exports of this model: keyed by its weight files and the library versions."""
    digest = hashlib.sha256()
    digest.update(str(transformer_dir.resolve()).encode())
    for path in sorted(transformer_dir.glob("*")):
        if path.is_file() and path.suffix in {".safetensors", ".bin", ".json"}:
            stat = path.stat()
            digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    digest.update(f"torch={_version('torch')};ort={_version('onnxruntime')}".encode())
    return cache_dir / f"{transformer_dir.name}-{digest.hexdigest()[:16]}"


def _version(lib: str) -> str:
    """An installed package's version without importing it (torch takes a second to import)."""
    try:
        return metadata.version(lib)
    except metadata.PackageNotFoundError:
        return "none"
