"""Find a sentence-transformers model on disk or in the Hugging Face cache and read its own config.

Loading works offline: a local directory is used as it is; a hub id is looked up in the cache first,
and the hub is only contacted when it is reachable, so a machine without network fails in a moment
with a message that says how to provide the model instead of retrying for a minute.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from ingest.schema import ModelUnavailableError

_WEIGHT_PATTERNS = ["*.json", "*.txt", "*.safetensors", "*.model", "1_Pooling/*", "2_Normalize/*"]
_SUPPORTED = {"Transformer", "Pooling", "Normalize"}


@dataclass(frozen=True)
class ModelSpec:
    """What a sentence-transformers directory says about itself."""

    directory: Path
    transformer_dir: Path
    pooling: str = "mean"
    normalize: bool = False
    max_seq_length: int | None = None
    prompts: dict[str, str] = field(default_factory=dict)
    do_lower_case: bool = False


def _how_to_provide(model: str, env: str = "GERMAN_RAG_EMBED_MODEL") -> str:
    return (
        f"Provide the model in one of these ways:\n"
        f"  1. a local directory: set {env}=/path/to/model (a sentence-transformers\n"
        f"     or transformers directory with config.json, tokenizer and weights);\n"
        f"  2. the Hugging Face cache: on a machine with network run\n"
        f"     `hf download {model}` and copy the cache (HF_HOME, default ~/.cache/huggingface) here,\n"
        f"     or set GERMAN_RAG_MODEL_CACHE to the copied folder;\n"
        f"  3. network access to the hub (unset HF_HUB_OFFLINE / GERMAN_RAG_OFFLINE)."
    )


def _hub_reachable(timeout: float = 3.0) -> bool:
    """One TCP connect to the hub endpoint: seconds instead of a minute of HTTP retries offline."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parsed = urlparse(endpoint)
    host, port = parsed.hostname or "huggingface.co", parsed.port or 443
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_model_dir(model: str, cache_dir: str | None = None, offline: bool = False,
                      role: str = "embedding model", env: str = "GERMAN_RAG_EMBED_MODEL") -> Path:
    """Return a local directory holding `model` (a directory path or a hub id); errors name the `role` and
    the `env` variable that sets it."""
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists() and not (path / "modules.json").exists():
            raise ModelUnavailableError(f"model directory {path} has neither config.json nor modules.json")
        return path.resolve()
    if model.startswith((".", "/", "~")):
        raise ModelUnavailableError(f"model directory {path} does not exist.\n{_how_to_provide(model, env)}")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(model, cache_dir=cache_dir, local_files_only=True))
    except Exception:  # not cached (any hub error means the same here)
        pass
    offline = offline or os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False")
    if offline or not _hub_reachable():
        why = "offline mode is set" if offline else "the Hugging Face hub cannot be reached"
        raise ModelUnavailableError(
            f"{role} '{model}' is not in the local cache and {why}.\n{_how_to_provide(model, env)}"
        )
    try:
        return Path(snapshot_download(model, cache_dir=cache_dir, allow_patterns=_WEIGHT_PATTERNS))
    except Exception as exc:
        raise ModelUnavailableError(f"could not download '{model}': {exc}\n{_how_to_provide(model, env)}") from exc


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelUnavailableError(f"cannot read model file {path}: {exc}") from exc


def _pooling_mode(cfg: dict) -> str:
    for key, mode in (
        ("pooling_mode_cls_token", "cls"),
        ("pooling_mode_max_tokens", "max"),
        ("pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len"),
        ("pooling_mode_lasttoken", "lasttoken"),
        ("pooling_mode_mean_tokens", "mean"),
    ):
        if cfg.get(key):
            return mode
    return cfg.get("pooling_mode", "mean")


def read_hidden_size(transformer_dir: Path) -> int:
    """The encoder's output width from its config.json (the names architectures use for it)."""
    config = _read_json(transformer_dir / "config.json")
    for key in ("hidden_size", "d_model", "dim", "n_embd"):
        if isinstance(config.get(key), int):
            return int(config[key])
    raise ModelUnavailableError(f"model {transformer_dir}: config.json missing or without hidden_size")


def read_model_spec(directory: Path) -> ModelSpec:
    """Read modules.json, the pooling config, max_seq_length and prompts from a model directory.

    A plain transformers directory (no modules.json) gets mean pooling, as sentence-transformers does.
    """
    modules = _read_json(directory / "modules.json") if (directory / "modules.json").exists() else []
    transformer_dir, pooling, normalize = directory, "mean", False
    for module in modules:
        kind = module.get("type", "").rsplit(".", 1)[-1]
        if kind not in _SUPPORTED:
            raise ModelUnavailableError(
                f"model {directory}: module type {module.get('type')!r} is not supported "
                f"(supported: {sorted(_SUPPORTED)})"
            )
        sub = directory / module.get("path", "")
        if kind == "Transformer":
            transformer_dir = sub
        elif kind == "Pooling":
            pooling = _pooling_mode(_read_json(sub / "config.json"))
        elif kind == "Normalize":
            normalize = True
    sbert = _read_json(transformer_dir / "sentence_bert_config.json") or _read_json(
        directory / "sentence_bert_config.json"
    )
    st_cfg = _read_json(directory / "config_sentence_transformers.json")
    return ModelSpec(
        directory=directory,
        transformer_dir=transformer_dir,
        pooling=pooling,
        normalize=normalize,
        max_seq_length=sbert.get("max_seq_length"),
        prompts=dict(st_cfg.get("prompts") or {}),
        do_lower_case=bool(sbert.get("do_lower_case", False)),
    )
