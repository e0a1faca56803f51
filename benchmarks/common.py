"""Shared parts of the benchmarks: the machine and its load, the matmul rate, German texts, output files."""

from __future__ import annotations

import csv
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
BENCH_DOCS = ROOT / "docs" / "bench"
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_bf16")
csv.field_size_limit(10_000_000)  # 10kgnad articles are long single fields


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def machine() -> dict:
    """Who ran it, on what, and how busy the machine was (load averages at the start)."""
    import torch

    flags = cpu_flags()
    info = {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "isa": [f for f in ISA_FLAGS if f in flags],
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
    }
    return info


def machine_slug(info: dict) -> str:
    """A short file-name tag: the GPU if one is used, else the CPU family and core count."""
    name = info.get("gpu") or info["cpu"]
    words = re.findall(r"[a-z0-9]+", name.lower())
    keep = [w for w in words if w not in {"processor", "cpu", "core", "tm", "r", "with", "radeon", "graphics"}]
    tag = "-".join(keep[:3]) or "machine"
    return tag if info.get("gpu") else f"{tag}-{info['cores']}c"


def finish(info: dict) -> dict:
    info["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    return info


def matmul_gflops(dtype: str = "float32", size: tuple[int, int, int] = (2048, 1024, 4096), repeats: int = 7,
                  device: str = "cpu") -> float:
    """Measured matrix-multiply rate at a BERT-large FFN shape (median of `repeats`)."""
    import torch

    m, k, n = size
    dt = getattr(torch, dtype)
    a = torch.randn(m, k, dtype=dt, device=device)
    b = torch.randn(k, n, dtype=dt, device=device)
    a @ b  # warm-up: thread pool and kernel selection
    times = []
    for _ in range(repeats):
        if device != "cpu":
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if device != "cpu":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 2 * m * k * n / statistics.median(times) / 1e9


def matmul_int8_gops(size: tuple[int, int, int] = (2048, 1024, 4096), repeats: int = 7) -> float:
    """The int8 matrix-multiply rate measured like `matmul_gflops` (torch._int_mm: oneDNN s8 x s8 -> s32), in
    GOP/s: the ceiling an int8 backend's matmuls approach on this CPU (with VNNI about 3x the fp32 rate,
    without it about 1.6x). CTranslate2 and ONNX Runtime run u8 x s8 kernels of their own, so a rough bound."""
    import torch

    m, k, n = size
    a = torch.randint(-128, 128, (m, k), dtype=torch.int8)
    b = torch.randint(-128, 128, (k, n), dtype=torch.int8)
    torch._int_mm(a, b)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch._int_mm(a, b)
        times.append(time.perf_counter() - start)
    return 2 * m * k * n / statistics.median(times) / 1e9


@dataclass(frozen=True)
class Shape:
    layers: int
    hidden: int
    intermediate: int


def flops_per_text(shape: Shape, tokens: int) -> float:
    """Forward FLOPs of a BERT encoder for one text of `tokens` tokens, attention included.

    Per layer and token: Q, K, V and output projections 8·h², FFN 4·h·i, attention scores and the
    weighted sum 4·s·h (s = sequence length). Embeddings, layer norms, softmax and pooling are
    below 1% and left out.
    """
    per_token = shape.layers * (8 * shape.hidden**2 + 4 * shape.hidden * shape.intermediate)
    attention = shape.layers * 4 * tokens * shape.hidden
    return tokens * (per_token + attention)


def german_documents(limit: int | None = None) -> Iterator[tuple[str, str]]:
    """(name, text) pairs: the laws in gesetze/ (front matter dropped), then the 10kgnad articles."""
    count = 0
    for path in sorted((DATA / "gesetze").rglob("*.md")):
        text = re.sub(r"\A---\n.*?\n---\n", "", path.read_text(encoding="utf-8"), flags=re.S)
        yield path.stem, text
        count += 1
        if limit and count >= limit:
            return
    for i, (_label, text) in enumerate(news_articles()):
        yield f"10kgnad-{i:04d}", text
        count += 1
        if limit and count >= limit:
            return


def news_articles() -> list[tuple[str, str]]:
    """10kgnad/test.csv rows as (label, text): `;`-separated, `'`-quoted, no header."""
    with (DATA / "10kgnad" / "test.csv").open(encoding="utf-8", newline="") as fh:
        return [(row[0], row[1]) for row in csv.reader(fh, delimiter=";", quotechar="'") if len(row) >= 2]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[pos]


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def markdown_table(headers: list[str], rows: list[list[object]]) -> str:
    def cell(x: object) -> str:
        if isinstance(x, float):
            return f"{x:,.3f}" if abs(x) < 10 else f"{x:,.1f}"
        return str(x)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


def _path_prefixes() -> list[tuple[str, str]]:
    """Machine-specific folders and what a report says instead, longest first (a venv may sit in ROOT)."""
    # the data folder both as spelled and resolved: ../shared is often a symlink (CI links it beside the clone)
    pairs = [(str(DATA), "../shared/data"), (str(DATA.resolve()), "../shared/data"), (str(ROOT), "."),
             (tempfile.gettempdir(), "$TMPDIR"), (str(Path.home()), "~")]
    return sorted(pairs, key=lambda p: len(p[0]), reverse=True)


_SITE = re.compile(r"(?<![\w:/])/[^\s`'\"]*?/(?:site|dist)-packages/")
_ABSOLUTE = re.compile(r"(?<![\w:/.~$])/(?:[\w.+@-]+/)+([\w.+@-]+)")


def public_text(text: str) -> str:
    """`text` without machine paths: an installed package's files by the package's path, the shared data
    as ../shared/data, the checkout as `.`, other absolute paths by their last component."""
    text = _SITE.sub("", text)
    for prefix, label in _path_prefixes():
        text = re.sub(re.escape(prefix) + r"(?=/|\b)", label, text)  # no label holds a backslash
    return _ABSOLUTE.sub(lambda m: m.group(1), text)


def public(value: object) -> object:
    """A JSON-like value with `public_text` applied to every string, keys included."""
    if isinstance(value, str):
        return public_text(value)
    if isinstance(value, dict):
        return {public(k): public(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [public(v) for v in value]
    return value


def model_label(model: str) -> str:
    """A model's name for a report: a hub id as it is, a local folder by its package or folder name."""
    if not model.startswith(("/", ".", "~")) and not Path(model).exists():
        return model  # a hub id
    return public_text(str(Path(model).expanduser().resolve()))


def command_line() -> str:
    """The benchmark's command line without this machine's paths."""
    return public_text(" ".join(sys.argv))


def write_outputs(name: str, info: dict, result: dict, markdown: str, json_path: str | None) -> Path:
    """JSON (to --json or docs/bench/<name>-<machine>.json) plus a Markdown twin next to it, both without
    machine paths (`public`)."""
    path = Path(json_path) if json_path else BENCH_DOCS / f"{name}-{machine_slug(info)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(public({"machine": info, **result}), indent=2, ensure_ascii=False) + "\n")
    markdown = public_text(markdown)
    load = f"load average {info['load_avg_start']} at start, {info.get('load_avg_end')} at end"
    header = f"# {name} benchmark\n\nMachine: {info['cpu']}, {info['cores']} cores"
    header += f", GPU {info['gpu']}" if info.get("gpu") else ""
    header += f", torch {info['torch']}; {load}.\n\n"
    path.with_suffix(".md").write_text(header + markdown + "\n")
    return path
