"""`embed_backend = auto` on a CPU: every candidate backend measured on this machine, the fastest that agrees.

Which backend is fastest depends on the CPU more than on anything we can read from it: int8 pays most where
the CPU has VNNI (Intel since Cascade Lake, AMD since Zen 4), bf16 only with AMX or AVX512-BF16 units, and one
int8 runtime can be exact on one instruction set and lose accuracy on another (CTranslate2's int8 through
oneDNN on AVX2 without VNNI: all-MiniLM on xquad-de min cosine 0.985, exact 0.991 with VNNI). So at the
first use of a model, `auto` embeds the bundled German texts (`resources/calibration_de.txt`: law
paragraphs, prose, questions) with fp32 torch and with each candidate, checks every vector's cosine to fp32
(>= `MIN_COSINE`), times those that pass in turns with fp32 on chunk-sized windows of the paragraphs, and
keeps the fastest. fp32 torch is always among them, so `auto` is never slower than it by more than the
measurement's noise.

The result is cached next to the model's exports, keyed by the CPU (name, flags), the thread count, the
library versions and the texts, so the measurement (15 s for MiniLM; 285 s for the gBERT-large shape on 2
cores; plus one-time exports) runs once per machine and model. `german-rag config` and the
ingest report show the choice and its figures.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from ingest.embed_backends import BackendError, BackendRequest, EncoderBackend, TorchBackend, build_backend
from ingest.embed_choice import Calibration, Trial, cache_file, cache_key, cached_calibration, candidates, cpu_identity

log = logging.getLogger(__name__)

# Speed is timed on 32 windows of the default chunk size (256 tokens) cut from the passages: 8,192 tokens, the
# default batch budget, so each backend runs the batches an ingest gives it (torch gains from big batches,
# CTranslate2 splits them, see CTranslate2Backend.batch_tokens).
TIMED_ROWS, TIMED_TOKENS = 32, 256
# Runs the embedder's own batching, padding and pooling with one backend: token id rows -> unit vectors.
Encode = Callable[[EncoderBackend, list[list[int]]], np.ndarray]


def calibration_texts() -> tuple[list[str], list[str]]:
    """The bundled passages and questions."""
    passages, queries = [], []
    text = resources.files("ingest").joinpath("resources/calibration_de.txt").read_text(encoding="utf-8")
    for line in text.splitlines():
        kind, _, body = line.partition("\t")
        if kind == "passage":
            passages.append(body)
        elif kind == "query":
            queries.append(body)
    return passages, queries


def choose(request: BackendRequest, model: torch.nn.Module, encode: Encode, passages: list[list[int]],
           queries: list[list[int]], timed: list[list[int]]) -> tuple[EncoderBackend, Calibration]:
    """The backend `auto` picks for `model` here: from the cache, or measured now and cached.

    `passages` and `queries` (token id rows) are checked for accuracy; `timed` (rows shaped like ingest
    chunks: speed depends on the length through attention and per-call overhead) is timed."""
    known = cached_calibration(request.transformer_dir, request.cache_dir, request.threads)
    if known is not None:
        return _build(request, model, known.chosen, trial=False), known
    return _measure(request, model, encode, passages, queries, timed)


def _build(request: BackendRequest, model: torch.nn.Module, name: str, trial: bool = True) -> EncoderBackend:
    if name == "torch":
        return TorchBackend("torch", model, torch.device("cpu"))
    # bf16 converts the module in place: a trial works on a copy so the fp32 reference stays intact; the
    # stored choice does not (nothing else uses the fp32 module then, and a copy of gBERT-large is 1.3 GB)
    source = copy.deepcopy(model) if trial and name == "torch-bf16" else model
    return build_backend(replace(request, name=name, device=torch.device("cpu")), source)


def _measure(request: BackendRequest, model: torch.nn.Module, encode: Encode, passages: list[list[int]],
             queries: list[list[int]], timed: list[list[int]]) -> tuple[EncoderBackend, Calibration]:
    started = time.perf_counter()
    # Warnings, though nothing is wrong: the first run pauses here (seconds for a small model, minutes for
    # gBERT-large on 2 cores, plus its exports), once per model and machine; the user should see why.
    log.warning("embed_backend=auto: measuring the backends on this machine, once per model and CPU",
                extra={"candidates": candidates(), "model": str(request.transformer_dir)})
    reference = _build(request, model, "torch")
    ref_p, ref_q, ref_query = _vectors(reference, encode, passages, queries)
    trials = {"torch": Trial("torch", 1.0, 1.0, query_ms=ref_query)}
    agreeing: dict[str, EncoderBackend] = {"torch": reference}
    for name in candidates():  # accuracy first: only a backend that agrees with fp32 is worth timing
        try:
            backend = _build(request, model, name)
            vec_p, vec_q, query_ms = _vectors(backend, encode, passages, queries)
        except (BackendError, ImportError, RuntimeError, OSError, ValueError) as exc:
            trials[name] = Trial(name, error=f"{type(exc).__name__}: {exc}"[:300])
            log.info("embed_backend=auto: candidate unavailable", extra={"backend": name, "error": str(exc)[:300]})
            continue
        cos = np.concatenate([(vec_p * ref_p).sum(1), (vec_q * ref_q).sum(1)])
        trials[name] = Trial(name, float(cos.min()), float(cos.mean()), query_ms=query_ms)
        if trials[name].passed:
            agreeing[name] = backend
        del backend
    # The agreeing backends timed in turns, two rounds, the best of each: a load change on a shared machine
    # hits them alike. fp32 torch is timed with them, so the speed-ups are ratios from the same minutes.
    seconds: dict[str, list[float]] = {name: [] for name in agreeing}
    for _ in range(2):
        for name, backend in agreeing.items():
            seconds[name].append(_seconds(backend, encode, timed))
    for name, times in seconds.items():
        trials[name] = replace(trials[name], tokens_per_s=_rate(timed, min(times)),
                               speedup=min(seconds["torch"]) / min(times))
        log.info("embed_backend=auto: candidate measured", extra=asdict(trials[name]))
    chosen = max(seconds, key=lambda n: trials[n].speedup or 0.0)
    name, isa, _ = cpu_identity()
    result = Calibration(
        chosen=chosen, trials=list(trials.values()), cpu=name, isa=isa, threads=request.threads,
        texts=len(passages) + len(queries), tokens=sum(len(r) for r in passages + queries),
        seconds=round(time.perf_counter() - started, 2), measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
        key=cache_key(request.threads))
    _store(cache_file(request.transformer_dir, request.cache_dir, request.threads), result)
    log.warning("embed_backend=auto: chosen", extra={"backend": result.chosen, "summary": result.summary()})
    return agreeing[chosen], result


def _vectors(backend: EncoderBackend, encode: Encode, passages: list[list[int]], queries: list[list[int]]
             ) -> tuple[np.ndarray, np.ndarray, float]:
    """Unit vectors of every passage and question, and the median batch-1 question time (ms)."""
    encode(backend, passages[:2])  # warm-up: kernels picked, memory allocated
    vec_p = encode(backend, passages)
    vec_q, times = [], []
    for row in queries:
        started = time.perf_counter()
        vec_q.append(encode(backend, [row])[0])
        times.append(time.perf_counter() - started)
    return _unit(vec_p), _unit(np.stack(vec_q)), float(np.median(times) * 1000)


def _seconds(backend: EncoderBackend, encode: Encode, rows: list[list[int]]) -> float:
    started = time.perf_counter()
    encode(backend, rows)
    return time.perf_counter() - started


def _rate(rows: list[list[int]], seconds: float) -> float:
    return sum(len(r) for r in rows) / max(seconds, 1e-9)


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def _store(path: Path, result: Calibration) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.part")
    tmp.write_text(json.dumps(result.to_dict(), indent=1, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)  # two processes calibrating at once: either complete file wins
