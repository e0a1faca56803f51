"""int8 recipes tried for issue #17, on all-MiniLM over every xquad-de chunk and question: cosine to fp32.

    nice .venv/bin/python benchmarks/int8_recipes.py                        # every recipe (~5 min on 2 cores)
    CT2_FORCE_CPU_ISA=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 .venv/bin/python benchmarks/int8_recipes.py --recipes ct2-int8

The texts are exactly those `benchmarks/backend_eval.py` checks (the corpus chunked as `german-rag eval`
ingests it, every question one by one); each recipe runs behind the embedder's own batching, padding and
pooling (`HFEmbedder._vectors_with`), so only the runtime differs. Recipes:

- `ort-dynamic-layer0`: ONNX Runtime dynamic int8 (per-channel weights, activations per tensor at run time),
  FFN down projections and the first layer in fp32 (the recipe before issue #17);
- `ort-dynamic`: the same with the first two layers in fp32 (what `onnx-int8` ships);
- `ort-static-qdq`: ONNX Runtime static QDQ, per-channel weights, activation ranges calibrated (percentile
  99.99) on the bundled German calibration texts, the `keep_fp32` layers excluded;
- `ov-nncf`, `ov-nncf-keep`: OpenVINO with NNCF post-training int8 (transformer preset, SmoothQuant),
  calibrated on the same texts; `-keep` leaves the `keep_fp32` layers in fp32;
- `ct2-int8`: CTranslate2 int8 (what `ct2-int8` ships: int8 weights per row, activations per row at run time);
- `ct2-int8-7bit`: the same with weights on 7 bits, which keeps AVX2's u8 x s8 pair sums below int16 saturation.

Accuracy only (times are printed but the machine is shared). Output: docs/bench/int8_recipes-<machine>.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.backend_eval import corpus_chunks, cosine_stats, default_model_dir
from benchmarks.common import DATA, ROOT, finish, machine, markdown_table, write_outputs

RECIPES = ("ort-dynamic-layer0", "ort-dynamic", "ort-static-qdq", "ov-nncf", "ov-nncf-keep", "ct2-int8",
           "ct2-int8-7bit")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipes", default=",".join(RECIPES), help="comma list")
    p.add_argument("--dataset", default=str(DATA / "xquad-de" / "xquad.de.json"))
    p.add_argument("--work", default=str(ROOT / ".cache" / "int8-recipes"), help="folder for the quantized models")
    p.add_argument("--json", help="output JSON path (default docs/bench/int8_recipes-<machine>.json)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    info = machine()
    model_dir = default_model_dir()
    passages, queries, emb = corpus_chunks(model_dir, args.dataset)
    emb.load()
    ids_p = emb.document_ids(passages)
    ids_q = [emb._encode_ids([q])[0][: emb.max_tokens] for q in queries]
    ref_p, ref_q = emb._vectors_with(emb._backend, ids_p), np.stack([emb._vectors_with(emb._backend, [r])[0]
                                                                     for r in ids_q])
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for recipe in [r for r in args.recipes.split(",") if r]:
        started = time.perf_counter()
        try:
            backend = build(recipe, emb, work)
            vec_p = emb._vectors_with(backend, ids_p)
            vec_q = np.stack([emb._vectors_with(backend, [r])[0] for r in ids_q])
        except Exception as exc:  # a recipe that cannot be built here is reported
            rows.append({"recipe": recipe, "error": f"{type(exc).__name__}: {exc}"[:300]})
            continue
        row = {"recipe": recipe, "passages": cosine_stats(vec_p, ref_p), "queries": cosine_stats(vec_q, ref_q),
               "seconds": round(time.perf_counter() - started, 1)}
        row["pass"] = min(row["passages"]["min"], row["queries"]["min"]) >= 0.99
        print(recipe, row, flush=True)
        rows.append(row)
    result = {"model": model_dir, "dataset": args.dataset, "passage_chunks": len(passages), "queries": len(queries),
              "command": " ".join(sys.argv), "results": rows}
    finish(info)
    path = write_outputs("int8_recipes", info, result, render(result), args.json)
    print(render(result), f"\nwritten {path}", sep="\n")
    return result


def build(recipe: str, emb, work: Path):
    """The recipe's backend for the embedder's model (exports and quantized files under `work`)."""
    import torch

    from ingest.embed_backends import BackendRequest, OnnxBackend, OpenVinoBackend, _export_onnx, build_backend

    request = BackendRequest("onnx", emb.spec.transformer_dir, torch.device("cpu"), emb.options.threads or 2,
                             work, "token_type_ids" in emb._ensure_tokenizer().model_input_names)
    if recipe == "ct2-int8":
        return build_backend(BackendRequest(**{**request.__dict__, "name": "ct2-int8"}), emb._backend.model)
    if recipe == "ct2-int8-7bit":
        return ct2_7bit(request, work)
    fp32 = _export_onnx(emb._backend.model, request, work)
    if recipe.startswith("ort-dynamic"):
        return OnnxBackend(recipe, ort_dynamic(fp32, work, layers=1 if recipe.endswith("layer0") else 2), 2)
    if recipe == "ort-static-qdq":
        return OnnxBackend(recipe, ort_static(fp32, work, emb), 2)
    return OpenVinoBackend(recipe, nncf_int8(fp32, work, emb, keep=recipe.endswith("keep")), 2, "f32")


def excluded(names: list[str], layers: int) -> list[str]:
    """The MatMuls a recipe keeps in fp32: FFN down projections and the first `layers` layers."""
    from ingest.embed_backends import keep_fp32

    return [n for n in names if keep_fp32(n, first_layers=layers)]


def matmuls(path: Path) -> list[str]:
    import onnx

    return [n.name for n in onnx.load(str(path), load_external_data=False).graph.node if n.op_type == "MatMul"]


def ort_dynamic(fp32: Path, work: Path, layers: int) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = work / f"ort-dynamic-{layers}.onnx"
    quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8, per_channel=True,
                     nodes_to_exclude=excluded(matmuls(fp32), layers))
    return out


def calibration_feeds(emb, names: set[str], size: int = 8, same_width: bool = False) -> list[dict]:
    """The bundled calibration texts (not the eval set) as model inputs, `size` per batch; `same_width` pads
    every batch to the longest text (ONNX Runtime's calibrator stacks the batches' activations)."""
    from ingest.embed_calibrate import calibration_texts

    passages, queries = calibration_texts()
    rows = [r[: emb.max_tokens] for r in emb.document_ids(passages + queries)]
    pad = emb._ensure_tokenizer().pad_token_id or 0
    feeds = []
    # same_width: only full batches (the calibrator also needs one batch size)
    for i in range(0, len(rows) - (size - 1 if same_width else 0), size):
        batch = rows[i: i + size]
        width = max(len(r) for r in (rows if same_width else batch))
        ids = np.full((len(batch), width), pad, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for j, row in enumerate(batch):
            ids[j, : len(row)], mask[j, : len(row)] = row, 1
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in names:
            feed["token_type_ids"] = np.zeros_like(ids)
        feeds.append(feed)
    return feeds


def ort_static(fp32: Path, work: Path, emb) -> Path:
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    names = {i.name for i in onnx.load(str(fp32), load_external_data=False).graph.input}
    batches = iter(calibration_feeds(emb, names, same_width=True))

    class Reader(CalibrationDataReader):
        def get_next(self):
            return next(batches, None)

    out = work / "ort-static-qdq.onnx"
    quantize_static(str(fp32), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8, op_types_to_quantize=["MatMul"],
                    nodes_to_exclude=excluded(matmuls(fp32), 2), calibrate_method=CalibrationMethod.Percentile,
                    extra_options={"CalibPercentile": 99.99})
    return out


def nncf_int8(fp32: Path, work: Path, emb, keep: bool) -> Path:
    import nncf
    import openvino as ov

    model = ov.convert_model(str(fp32))
    names = {p.get_any_name() for p in model.inputs}
    ignored = {}
    if keep:
        ops = [op.get_friendly_name() for op in model.get_ops() if op.get_type_name() == "MatMul"]
        ignored["ignored_scope"] = nncf.IgnoredScope(names=excluded(ops, 2), validate=False)
    feeds = calibration_feeds(emb, names, size=1)
    quantized = nncf.quantize(model, nncf.Dataset(feeds), model_type=nncf.ModelType.TRANSFORMER,
                              subset_size=len(feeds), **ignored)
    out = work / f"ov-nncf{'-keep' if keep else ''}.xml"
    ov.save_model(quantized, str(out), compress_to_fp16=False)
    return out


def ct2_7bit(request, work: Path):
    """CTranslate2 int8 with every quantized weight rescaled from 127 to 63 steps (7 bits)."""
    from ctranslate2.specs import model_spec

    from ingest.embed_backends import CTranslate2Backend, ct2_converter

    def seven_bits(layer, name, value):
        key = name.split("/")[-1]
        scale = getattr(layer, f"{key}_scale", None)
        if isinstance(value, model_spec.Variable) and value.dtype == "int8" and isinstance(scale, model_spec.Variable):
            weights = np.rint(value.numpy().astype(np.float32) * 63 / 127).astype(np.int8)
            setattr(layer, key, model_spec.NumpyVariable(weights))
            setattr(layer, f"{key}_scale", model_spec.NumpyVariable(scale.numpy().astype(np.float32) * 63 / 127))

    original = model_spec.LayerSpec.optimize

    def optimize(this, quantization=None):
        original(this, quantization=quantization)
        this._visit(seven_bits)

    out = work / "ct2-int8-7bit"
    model_spec.LayerSpec.optimize = optimize  # for this conversion only
    try:
        ct2_converter(request.transformer_dir).convert(str(out), quantization="int8", force=True)
    finally:
        model_spec.LayerSpec.optimize = original
    return CTranslate2Backend("ct2-int8-7bit", out, 2)


def render(result: dict) -> str:
    headers = ["recipe", "passages min", "passages mean", "below 0.99", "queries min", "queries mean", "below 0.99",
               "pass (min >= 0.99)"]
    rows = []
    for r in result["results"]:
        if "error" in r:
            rows.append([r["recipe"], f"failed: {r['error'][:90]}", "", "", "", "", "", "no"])
            continue
        p, q = r["passages"], r["queries"]
        rows.append([r["recipe"], f"{p['min']:.4f}", f"{p['mean']:.4f}", p["below_0.99"], f"{q['min']:.4f}",
                     f"{q['mean']:.4f}", q["below_0.99"], "yes" if r["pass"] else "no"])
    return (f"all-MiniLM-L6-v2 (`{result['model']}`), {Path(result['dataset']).name}: {result['passage_chunks']} "
            f"chunks, {result['queries']} questions; cosine of each recipe's vector to fp32 torch.\n\n"
            f"Command: `{result['command']}`\n\n" + markdown_table(headers, rows))


if __name__ == "__main__":
    main()
