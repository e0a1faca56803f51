"""Every embedding backend agrees with fp32 eager torch (cosine >= 0.99 per text), on real tokenization."""

from __future__ import annotations

import numpy as np
import pytest

from ingest.embed import EmbedderOptions, HFEmbedder
from ingest.embed_backends import BACKENDS, BackendError, resolve_backend
from tests.test_embed import GERMAN as EMBED_TEXTS

GERMAN = [
    *EMBED_TEXTS,
    "§ 622 Abs. 2 BGB: Für eine Kündigung durch den Arbeitgeber beträgt die Kündigungsfrist, wenn das "
    "Arbeitsverhältnis in dem Betrieb oder Unternehmen zwei Jahre bestanden hat, einen Monat zum Ende eines "
    "Kalendermonats.",
]
CPU_BACKENDS = ["torch-int8", "torch-bf16", "onnx", "onnx-int8", "ct2-int8", "openvino", "openvino-bf16"]


def cosines(a, b) -> np.ndarray:
    a, b = np.asarray(a), np.asarray(b)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def embedder(model_dir, backend: str, cache) -> HFEmbedder:
    # A small token budget, so the texts run in several padded batches of different widths.
    return HFEmbedder(EmbedderOptions(model=str(model_dir), backend=backend, backend_cache=str(cache),
                                      max_batch_tokens=256, max_batch_size=3))


@pytest.fixture(scope="module")
def backend_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("backends")


# torch dynamic int8 on all-MiniLM (an English model) with German text reaches cosine 0.98, not 0.99,
# even with per-channel weights and fp32 FFN down projections: a measured limit, kept visible here.
_TORCH_INT8_MINILM = pytest.mark.xfail(strict=True, reason="torch-int8 on MiniLM: cosine 0.98 < 0.99")
CASES = [pytest.param(b, m, marks=_TORCH_INT8_MINILM if (b, m) == ("torch-int8", "minilm_dir") else ())
         for b in CPU_BACKENDS for m in ("tiny_model_dir", "minilm_dir")]


@pytest.mark.parametrize(("backend", "model"), CASES)
def test_backend_matches_fp32_eager(backend, model, request, backend_cache):
    if backend.startswith("openvino"):
        pytest.importorskip("openvino")
    model_dir = request.getfixturevalue(model)
    reference = embedder(model_dir, "torch", backend_cache).embed_documents(GERMAN * 2)
    other = embedder(model_dir, backend, backend_cache)
    vectors = other.embed_documents(GERMAN * 2)
    assert other.backend_name == backend
    assert cosines(vectors, reference).min() >= 0.99
    # the query path (batch of one, no padding) agrees too
    assert cosines([other.embed_query(GERMAN[4])], [reference[4]]).min() >= 0.99


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_fp32_exports_are_exact(backend, tiny_model_dir, backend_cache):
    """fp32 runtimes compute the same function: any gap beyond rounding means a bad trace."""
    if backend == "openvino":
        pytest.importorskip("openvino")
    reference = embedder(tiny_model_dir, "torch", backend_cache).embed_documents(GERMAN)
    vectors = embedder(tiny_model_dir, backend, backend_cache).embed_documents(GERMAN)
    assert (1 - cosines(vectors, reference)).max() < 1e-5


def test_export_is_cached(tiny_model_dir, tmp_path):
    embedder(tiny_model_dir, "onnx", tmp_path).load()
    files = sorted(p.name for p in tmp_path.rglob("*.onnx"))
    stamp = next(tmp_path.rglob("model.onnx")).stat().st_mtime_ns
    embedder(tiny_model_dir, "onnx", tmp_path).load()
    assert files == ["model.onnx"] and next(tmp_path.rglob("model.onnx")).stat().st_mtime_ns == stamp


def test_pre_tokenized_ids_give_the_same_vectors(tiny_embedder):
    ids = tiny_embedder.document_ids(GERMAN)
    assert tiny_embedder.embed_documents(GERMAN, token_ids=ids) == tiny_embedder.embed_documents(GERMAN)
    with pytest.raises(ValueError, match="token_ids has 1 rows for 6 texts"):
        tiny_embedder.embed_documents(GERMAN, token_ids=ids[:1])


def test_unknown_backend_and_missing_gpu_are_clear_errors(tiny_model_dir, tmp_path):
    with pytest.raises(BackendError, match="embed_backend='tensorrt' is not one of torch, torch-int8"):
        embedder(tiny_model_dir, "tensorrt", tmp_path).load()
    import torch

    if not torch.cuda.is_available():
        assert resolve_backend("auto") == "auto"  # measured by ingest.embed_calibrate on a CPU
        with pytest.raises(BackendError, match="needs a CUDA GPU"):
            embedder(tiny_model_dir, "cuda-bf16", tmp_path).load()
    assert "auto" in BACKENDS


def test_setting_reaches_the_embedder(tiny_model_dir, tmp_path):
    from pipelines.build import build_embedder
    from pipelines.config import ConfigError, load_settings

    settings = load_settings(embed_model=str(tiny_model_dir), embed_backend="onnx",
                             embed_backend_cache=str(tmp_path))
    emb = build_embedder(settings)
    assert emb.backend_name == "onnx" and list(tmp_path.rglob("model.onnx"))
    with pytest.raises(ConfigError, match="embed_backend"):
        load_settings(embed_backend="tensorrt")


@pytest.mark.slow
def test_backends_on_the_gbert_large_shape(tmp_path_factory, shared_data):
    """The exact gBERT-large shape (random weights, ~1.3 GB, minutes): every CPU backend within 0.99."""
    from tests.support.random_model import GBERT_LARGE, build_random_model, german_sample_texts

    model_dir = build_random_model(tmp_path_factory.mktemp("gbert-large"),
                                   german_sample_texts(shared_data, limit_chars=300_000), GBERT_LARGE)
    cache = tmp_path_factory.mktemp("gbert-backends")
    reference = embedder(model_dir, "torch", cache).embed_documents(GERMAN[:4])
    for backend in CPU_BACKENDS:
        vectors = embedder(model_dir, backend, cache).embed_documents(GERMAN[:4])
        assert cosines(vectors, reference).min() >= 0.99, backend


def test_ct2_runs_batches_of_its_own_size(minilm_dir, backend_cache):
    """CTranslate2 runs small batches faster (CTranslate2Backend.batch_tokens): the embedder's larger budget
    is split for it, and the vectors do not depend on how the texts were batched."""
    emb = HFEmbedder(EmbedderOptions(model=str(minilm_dir), backend="ct2-int8", backend_cache=str(backend_cache)))
    emb.load()
    widths: list[tuple[int, int]] = []
    backend = emb._backend
    run = backend.hidden_states

    def recorded(ids, mask, types):
        widths.append(tuple(ids.shape))
        return run(ids, mask, types)

    backend.hidden_states = recorded
    texts = [" ".join(GERMAN)] * 20  # 20 texts of the same length: one batch under the default 8,192 tokens
    vectors = emb.embed_documents(texts)
    assert emb.options.max_batch_tokens == 8192 and len(widths) > 1
    assert all(rows * width <= backend.batch_tokens for rows, width in widths)
    assert cosines(vectors, [emb.embed_query(texts[0])] * 20).min() > 0.9999
