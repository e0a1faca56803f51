"""Inference backends behind one seam: token ids and mask in, the encoder's last hidden state out.

`HFEmbedder` tokenizes, batches and pools; a backend only runs the transformer. Choices:

- `torch`: fp32 eager (the reference every other backend is checked against);
- `torch-int8`: torch dynamic quantization of the Linear layers (int8 weights, activations quantized
  per batch); small batches are bound by reading weights, so a quarter of the bytes pays there;
- `onnx` / `onnx-int8`: the model exported once with `torch.onnx` and run by ONNX Runtime (fp32, or
  with ONNX Runtime's dynamic int8 quantization of the MatMuls);
- `ct2-int8`: the model converted once by CTranslate2 and run by its encoder with int8 weights; its
  activations are quantized per row at run time, so one outlier token does not flatten the scale of a
  whole batch (the accuracy ONNX Runtime's per-tensor dynamic int8 loses on MiniLM, issue #17);
- `openvino`: the same model converted by OpenVINO and run by its CPU plugin (fp32);
- `openvino-bf16`: OpenVINO with bf16 inference precision (fast only on CPUs with AMX or AVX512-BF16);
- `torch-bf16`: torch eager with bf16 weights on the CPU: on CPUs with AMX (Sapphire Rapids and later)
  bf16 matmuls run ~10x the fp32 rate; on AVX2-only CPUs they run ~300x slower, so never pick it there;
- `cuda-bf16`: torch on a CUDA device in bfloat16;
- `auto`: `cuda-bf16` with a GPU; on a CPU, the fastest candidate that agrees with fp32 on this machine,
  measured once per model and CPU (`ingest.embed_calibrate`).

Exported files are cached in a folder keyed by the model's weights and the library versions, so the
export (seconds for small models, a minute for gBERT-large) happens once per model and backend.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from ingest.embed_choice import export_folder
from ingest.errors import ConfigError
from ingest.schema import IngestError

log = logging.getLogger(__name__)

BACKENDS = ("torch", "torch-int8", "torch-bf16", "onnx", "onnx-int8", "ct2-int8", "openvino", "openvino-bf16",
            "cuda-bf16", "auto")


class BackendError(ConfigError, IngestError):
    """A backend cannot be built or run here (missing package, no GPU, failed export)."""


class EncoderBackend(Protocol):
    name: str
    # The most tokens per batch this runtime runs well (None: the embedder's budget, `embed_batch_tokens`).
    batch_tokens: int | None

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                      token_type_ids: torch.Tensor | None) -> torch.Tensor:
        """Last hidden state (batch, seq, hidden) as float32 on the backend's device."""
        ...


@dataclass(frozen=True)
class BackendRequest:
    """What a backend needs: which one, the transformer folder, where to put exports, threads."""

    name: str
    transformer_dir: Path
    device: torch.device
    threads: int
    cache_dir: Path
    token_type_ids: bool  # the model takes token_type_ids (BERT) and is fed zeros


def resolve_backend(name: str) -> str:
    if name not in BACKENDS:
        raise BackendError(f"embed_backend={name!r} is not one of {', '.join(BACKENDS)}")
    if name == "auto" and torch.cuda.is_available():
        return "cuda-bf16"
    return name  # "auto" on a CPU is measured by ingest.embed_calibrate, which builds the chosen backend


class TorchBackend:
    """A transformers module run eagerly under inference mode (fp32, int8-dynamic or bf16)."""

    batch_tokens: int | None = None

    def __init__(self, name: str, model: torch.nn.Module, device: torch.device) -> None:
        self.name, self.model, self.device = name, model, device

    def hidden_states(self, input_ids, attention_mask, token_type_ids):
        inputs = {"input_ids": input_ids.to(self.device), "attention_mask": attention_mask.to(self.device)}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids.to(self.device)
        with torch.inference_mode():
            return self.model(**inputs).last_hidden_state.float()


class OnnxBackend:
    batch_tokens: int | None = None

    def __init__(self, name: str, path: Path, threads: int) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.name = name
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}

    def hidden_states(self, input_ids, attention_mask, token_type_ids):
        feed = _numpy_feed(input_ids, attention_mask, token_type_ids, self.inputs)
        return torch.from_numpy(self.session.run(None, feed)[0])


class OpenVinoBackend:
    batch_tokens: int | None = None

    def __init__(self, name: str, path: Path, threads: int, precision: str) -> None:
        import openvino as ov

        core = ov.Core()
        # One stream with every thread: the embedder sends one batch at a time, so latency mode. The
        # precision is explicit: on AMX CPUs OpenVINO would silently run bf16 by default.
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads,
                  "INFERENCE_PRECISION_HINT": precision}
        self.name = name
        self.compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        self.inputs = {p.get_any_name() for p in self.compiled.inputs}

    def hidden_states(self, input_ids, attention_mask, token_type_ids):
        feed = _numpy_feed(input_ids, attention_mask, token_type_ids, self.inputs)
        out = self.compiled(feed)[self.compiled.outputs[0]]
        return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))


class CTranslate2Backend:
    """CTranslate2's encoder on the CPU with int8 weights (int8 compute, float32 for the rest)."""

    # Unlike torch, CTranslate2 runs small batches faster: 48 MiniLM windows of 256 tokens took 1.57 s in
    # batches of 1,024 tokens, 1.62 s of 2,048, 2.34 s of 4,096 and 2.50 s of 8,192 (torch: 6.38, 5.94, 4.65,
    # 3.72 s; 2-core AMD EPYC, loaded). The ingest's default budget of 8,192 halved its gain.
    batch_tokens: int | None = 2048

    def __init__(self, name: str, path: Path, threads: int) -> None:
        import ctranslate2

        self.name = name
        self.encoder = ctranslate2.Encoder(str(path), device="cpu", compute_type="int8", intra_threads=threads,
                                           inter_threads=1)

    def hidden_states(self, input_ids, attention_mask, token_type_ids):
        import ctranslate2

        # Dense ids with lengths: CTranslate2 masks what lies past each length, as right padding needs.
        ids = ctranslate2.StorageView.from_array(np.ascontiguousarray(input_ids.numpy(), dtype=np.int32))
        lengths = ctranslate2.StorageView.from_array(attention_mask.sum(dim=1).numpy().astype(np.int32))
        types = token_type_ids.tolist() if token_type_ids is not None else None
        out = self.encoder.forward_batch(ids, lengths, types)
        hidden = torch.from_numpy(np.array(out.last_hidden_state, dtype=np.float32))  # a copy we own
        missing = input_ids.shape[1] - hidden.shape[1]
        return torch.nn.functional.pad(hidden, (0, 0, 0, missing)) if missing > 0 else hidden


def _numpy_feed(input_ids, attention_mask, token_type_ids, names: set[str]) -> dict[str, np.ndarray]:
    feed = {"input_ids": input_ids.numpy().astype(np.int64), "attention_mask": attention_mask.numpy().astype(np.int64)}
    if "token_type_ids" in names:
        ttype = token_type_ids if token_type_ids is not None else torch.zeros_like(input_ids)
        feed["token_type_ids"] = ttype.numpy().astype(np.int64)
    return feed


class _HiddenState(torch.nn.Module):
    """Wrap a transformers encoder so tracing sees plain tensors in and one tensor out."""

    def __init__(self, model: torch.nn.Module, with_types: bool) -> None:
        super().__init__()
        self.model, self.with_types = model, with_types

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        kwargs = {"token_type_ids": token_type_ids} if self.with_types else {}
        return self.model(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state


def build_backend(request: BackendRequest, model: torch.nn.Module) -> EncoderBackend:
    """The backend `request.name` names, for `model` (the fp32 module loaded from transformer_dir)."""
    name = resolve_backend(request.name)
    if name == "auto":
        raise BackendError("embed_backend='auto' on a CPU is chosen by measurement (ingest.embed_calibrate.choose)")
    if name == "torch":
        return TorchBackend(name, model.to(request.device), request.device)
    if name == "torch-int8":
        return TorchBackend(name, _quantize_torch(model), torch.device("cpu"))
    if name == "torch-bf16":
        return TorchBackend(name, model.to(device=request.device, dtype=torch.bfloat16), request.device)
    if name == "cuda-bf16":
        if not torch.cuda.is_available():
            raise BackendError("embed_backend='cuda-bf16' needs a CUDA GPU; none is visible to torch")
        device = request.device if request.device.type == "cuda" else torch.device("cuda")
        return TorchBackend(name, model.to(device=device, dtype=torch.bfloat16), device)
    folder = export_folder(request.transformer_dir, request.cache_dir)
    if name == "ct2-int8":
        return CTranslate2Backend(name, _convert_ct2(request, folder), request.threads)
    onnx_path = _export_onnx(model, request, folder)
    if name == "onnx":
        return OnnxBackend(name, onnx_path, request.threads)
    if name == "onnx-int8":
        return OnnxBackend(name, _quantize_onnx(onnx_path, folder), request.threads)
    precision = "bf16" if name == "openvino-bf16" else "f32"
    return OpenVinoBackend(name, _convert_openvino(onnx_path, folder), request.threads, precision)


def keep_fp32(name: str, first_layers: int = 2) -> bool:
    """Layers int8 leaves in fp32: FFN down projections (BERT `layer.N.output.dense`, fed by GELU
    outputs with outliers) and the whole first two layers (fed by raw embeddings and their first
    mix). Module or ONNX node name.

    The second layer joined in issue #17: with the first alone, all-MiniLM on every xquad-de chunk fell
    to cosine 0.9896 on one of 399 (the check wants 0.99); with both, min 0.9935 (chunks) and 0.9931
    (1,190 questions). Neither the last layer nor the attention outputs mattered (0.9897, 0.9898).
    """
    dotted = name.replace("/", ".").removesuffix(".MatMul")
    ffn_out = dotted.endswith("output.dense") and "attention" not in dotted
    return ffn_out or any(f".layer.{n}." in f".{dotted}." for n in range(first_layers))


def _quantize_torch(model: torch.nn.Module) -> torch.nn.Module:
    # Per-channel weight scales, and `keep_fp32` layers stay fp32: their inputs carry outliers that one
    # per-tensor activation scale flattens (all-MiniLM on German text: cosine 0.78 to fp32 with every
    # Linear quantized, 0.98 like this).
    from torch.ao.quantization import per_channel_dynamic_qconfig

    spec = {name: per_channel_dynamic_qconfig for name, mod in model.named_modules()
            if isinstance(mod, torch.nn.Linear) and not keep_fp32(name)}
    with warnings.catch_warnings():  # torch.ao.quantization warns that it moves to torchao; it works
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model.cpu(), spec, dtype=torch.qint8)


def _export_onnx(model: torch.nn.Module, request: BackendRequest, folder: Path) -> Path:
    path = folder / "model.onnx"
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    ids = torch.full((2, 16), 5, dtype=torch.long)
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0  # a padded row, so the mask path is traced as it runs
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if request.token_type_ids else [])
    args = (ids, mask, torch.zeros_like(ids)) if request.token_type_ids else (ids, mask)
    axes = {n: {0: "batch", 1: "seq"} for n in [*names, "hidden"]}
    tmp = folder / "model.onnx.part"
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about Python conditionals on shapes
            # The wrapper in eval mode: export restores the mode it found, and a fresh module is in training
            # mode, which would switch the model's dropout on for whoever runs it next (a torch backend).
            wrapper = _HiddenState(model.cpu(), request.token_type_ids).eval()
            torch.onnx.export(wrapper, args, str(tmp),
                              input_names=names, output_names=["hidden"], dynamic_axes=axes,
                              opset_version=17, dynamo=False)
    except Exception as exc:
        raise BackendError(f"ONNX export of {request.transformer_dir} failed: {exc}") from exc
    tmp.rename(path)  # a crash mid-export leaves no half file under the cached name
    log.info("exported ONNX model", extra={"path": str(path)})
    return path


def _quantize_onnx(fp32_path: Path, folder: Path) -> Path:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = folder / "model-int8.onnx"
    if not path.exists():
        # Same recipe as torch-int8: per-channel weights, `keep_fp32` layers in fp32 (all-MiniLM on German
        # text in batches of 3: min cosine 0.855 with every MatMul per tensor, 0.979 without the first
        # layer's exception, 0.994 like this).
        graph = onnx.load(str(fp32_path), load_external_data=False).graph
        keep = [n.name for n in graph.node if n.op_type == "MatMul" and keep_fp32(n.name)]
        tmp = folder / "model-int8.part.onnx"
        logging.getLogger().disabled, was = True, logging.getLogger().disabled  # "run pre-processing" advice
        try:
            quantize_dynamic(str(fp32_path), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                             nodes_to_exclude=keep)
        finally:
            logging.getLogger().disabled = was
        tmp.rename(path)
    return path


def _convert_openvino(onnx_path: Path, folder: Path) -> Path:
    try:
        import openvino as ov
    except ImportError as exc:
        raise BackendError("embed_backend='openvino' needs the openvino package (pip install openvino)") from exc
    path = folder / "openvino.xml"
    if not path.exists():
        # From the ONNX file, not the torch module: one traced graph for both runtimes. Weights stay
        # fp32 (save_model would halve them to fp16 by default, which CPUs without fp16 units widen back).
        ov.save_model(ov.convert_model(str(onnx_path)), str(path), compress_to_fp16=False)
    return path


def _convert_ct2(request: BackendRequest, folder: Path) -> Path:
    try:
        import ctranslate2
    except ImportError as exc:
        raise BackendError("embed_backend='ct2-int8' needs the ctranslate2 package (pip install ctranslate2)") from exc
    path = folder / f"ct2-int8-{ctranslate2.__version__}"
    if (path / "model.bin").exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{path.name}.part"
    try:
        # Weights stored as int8 (per output row scales); the embeddings and layer norms stay float32.
        ct2_converter(request.transformer_dir).convert(str(tmp), quantization="int8", force=True)
    except Exception as exc:  # the converter raises plain errors for architectures it does not know
        raise BackendError(f"CTranslate2 conversion of {request.transformer_dir} failed: {exc}") from exc
    tmp.rename(path)  # a crash mid-conversion leaves no half folder under the cached name
    log.info("converted model for CTranslate2", extra={"path": str(path)})
    return path


def ct2_converter(transformer_dir: Path):
    """CTranslate2's converter for a transformers directory, mended for transformers 5: its BertConfig has no
    `position_embedding_type` (absolute is all its BERT runs) and the converter asserts it; a config.json
    that still names another kind keeps its value."""
    from ctranslate2.converters import TransformersConverter

    class Converter(TransformersConverter):
        def load_model(self, model_class, model_name_or_path, **kwargs):
            model = super().load_model(model_class, model_name_or_path, **kwargs)
            if not hasattr(model.config, "position_embedding_type"):
                model.config.position_embedding_type = "absolute"
            return model

    return Converter(str(transformer_dir))
