"""Dense embeddings with transformers, computed the way sentence-transformers computes them.

Texts are tokenized once, sorted by length and cut into batches by a token budget, so padding is
small and a text's vector does not depend on its neighbours in the batch (padded positions are
masked out of attention and pooling).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ingest.model_files import ModelSpec, read_hidden_size, read_model_spec, resolve_model_dir
from ingest.schema import ModelUnavailableError, TokenLimitError

if TYPE_CHECKING:  # torch and the backends load with the weights: a run that never embeds never imports them
    import torch
    from transformers import PreTrainedTokenizerBase

    from ingest.embed_backends import BackendRequest, EncoderBackend
    from ingest.embed_choice import Calibration

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbedderOptions:
    """How to load and run the model."""

    model: str
    cache_dir: str | None = None
    offline: bool = False
    device: str = "auto"
    max_batch_tokens: int = 8192
    max_batch_size: int = 64
    threads: int = 0  # 0 = every core
    backend: str = "torch"  # see ingest.embed_backends.BACKENDS
    backend_cache: str | None = None  # folder for exported models (default ~/.cache/german-rag/backends)


def pick_device(requested: str) -> torch.device:
    import torch

    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def _pool(hidden: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    import torch

    m = mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "cls":
        return hidden[:, 0]
    if mode == "max":
        return hidden.masked_fill(m == 0, torch.finfo(hidden.dtype).min).max(dim=1).values
    if mode == "lasttoken":
        last = mask.sum(dim=1) - 1
        return hidden[torch.arange(hidden.shape[0]), last]
    summed = (hidden * m).sum(dim=1)
    counts = m.sum(dim=1).clamp(min=1e-9)
    return summed / (counts.sqrt() if mode == "mean_sqrt_len" else counts)


def _pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id rows into (ids, mask) tensors; cheaper than the tokenizer's generic `pad`."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids, mask


def _truncated(row: list[int], limit: int) -> list[int]:
    """`row` cut to `limit` tokens, its closing special token kept."""
    return row if len(row) <= limit else [*row[: limit - 1], row[-1]]


def token_budget_batches(lengths: Sequence[int], max_tokens: int, max_size: int) -> list[list[int]]:
    """Group text indices, longest first, so each padded batch holds at most `max_tokens` tokens."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        width = lengths[current[0]] if current else lengths[i]  # longest of the batch sets the width
        if current and (width * (len(current) + 1) > max_tokens or len(current) >= max_size):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


class HFEmbedder:
    """Sentence embedder over a transformers encoder, configured from the model's own files."""

    def __init__(self, options: EmbedderOptions) -> None:
        self.options = options
        self._spec: ModelSpec | None = None
        self._tokenizer: PreTrainedTokenizerBase | None = None
        self._backend: EncoderBackend | None = None
        self._dimension = 0
        self._max_tokens = 0
        self._directory: Path | None = None
        self.calibration: Calibration | None = None  # what `auto` measured (or found cached), after `load`

    # -- loading -------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Find the model (directory, cache or hub) and read its own config files; no transformers import.

        Enough to know the dimension and recognise unchanged files: a re-ingest of unchanged files never
        pays for the tokenizer or the weights. Idempotent; a missing model raises ModelUnavailableError.
        """
        if self._spec is not None:
            return
        directory = resolve_model_dir(self.options.model, self.options.cache_dir, self.options.offline)
        spec = read_model_spec(directory)
        self._dimension = read_hidden_size(spec.transformer_dir)
        self._spec, self._directory = spec, directory

    def _ensure_tokenizer(self) -> PreTrainedTokenizerBase:
        """The fast tokenizer and the token limit (transformers is imported here, on first use)."""
        if self._tokenizer is not None:
            return self._tokenizer
        self.prepare()
        from transformers import AutoConfig, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a per-load weight bar is noise in CLI output
        assert self._spec is not None
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(self._spec.transformer_dir))
            config = AutoConfig.from_pretrained(str(self._spec.transformer_dir))
        except (OSError, ValueError) as exc:
            raise ModelUnavailableError(f"cannot load model from {self._spec.transformer_dir}: {exc}") from exc
        if not getattr(tokenizer, "is_fast", False):
            raise ModelUnavailableError(f"model {self._directory} has no fast tokenizer (tokenizer.json needed)")
        self._max_tokens = self._limit(self._spec, tokenizer, config)
        self._tokenizer = tokenizer
        return tokenizer

    def load(self) -> None:
        """`prepare`, the tokenizer, then the weights and the backend; idempotent."""
        if self._backend is not None:
            return
        tokenizer = self._ensure_tokenizer()
        import torch
        from transformers import AutoModel

        from ingest.embed_backends import build_backend

        assert self._spec is not None
        try:
            model = AutoModel.from_pretrained(str(self._spec.transformer_dir))
        except (OSError, ValueError) as exc:
            raise ModelUnavailableError(f"cannot load model from {self._spec.transformer_dir}: {exc}") from exc
        threads = self.options.threads or os.cpu_count() or 1
        torch.set_num_threads(threads)
        device = pick_device(self.options.device)
        request = self._backend_request(self._spec, tokenizer, device, threads)
        if request.name == "auto":
            self._backend, self.calibration = self._calibrated(request, model.eval())
        else:
            self._backend = build_backend(request, model.eval())
        log.info("embedding model loaded", extra={"model": str(self._directory), "device": str(device),
                                                   "backend": self._backend.name})

    def cached_calibration(self) -> Calibration | None:
        """What `auto` measured for this model on this CPU before (None: nothing stored, or another backend);
        reads a file, imports neither torch nor a runtime. On a GPU `auto` runs cuda-bf16 whatever is stored."""
        from ingest.embed_choice import cached_calibration

        if self.calibration is not None or self.options.backend != "auto":
            return self.calibration
        return cached_calibration(self.spec.transformer_dir, Path(self._cache_dir()),
                                  self.options.threads or os.cpu_count() or 1)

    def _cache_dir(self) -> str:
        return self.options.backend_cache or os.path.join(os.path.expanduser("~"), ".cache", "german-rag", "backends")

    def _calibrated(self, request: BackendRequest, model) -> tuple[EncoderBackend, Calibration]:
        """`auto` on a CPU: the cached choice for this model and machine, or the bundled texts measured now."""
        from ingest.embed_calibrate import TIMED_ROWS, TIMED_TOKENS, calibration_texts, choose

        passages, queries = calibration_texts()
        limit = self._max_tokens
        query_ids = self._encode_ids([self._prompt("query") + q for q in queries])
        return choose(request, model, self._vectors_with, [_truncated(r, limit) for r in self.document_ids(passages)],
                      [_truncated(r, limit) for r in query_ids],
                      self._windows(" ".join(passages * 4), min(limit, TIMED_TOKENS), TIMED_ROWS))

    def _windows(self, text: str, width: int, count: int) -> list[list[int]]:
        """Up to `count` rows of exactly `width` tokens (special tokens included) cut from `text`."""
        full = self._encode_ids([text])[0]
        core = self._ensure_tokenizer()(text.lower() if self.spec.do_lower_case else text,
                                        add_special_tokens=False, verbose=False)["input_ids"]
        start = next(k for k in range(len(full) - len(core) + 1) if full[k: k + len(core)] == core)
        head, tail = full[:start], full[start + len(core):]  # the model's special tokens around a text
        inner = width - len(head) - len(tail)
        return [[*head, *core[i: i + inner], *tail] for i in range(0, len(core) - inner + 1, inner)][:count]

    def _vectors_with(self, backend: EncoderBackend, ids: list[list[int]]):
        """`ids` embedded as `_embed_ids` does, by `backend` (the calibration's candidates)."""
        import numpy as np

        return np.asarray(self._embed_ids(ids, backend), dtype=np.float32)

    def _backend_request(self, spec: ModelSpec, tokenizer: PreTrainedTokenizerBase, device: torch.device,
                         threads: int) -> BackendRequest:
        from ingest.embed_backends import BackendRequest, resolve_backend

        cache = self._cache_dir()
        return BackendRequest(
            name=resolve_backend(self.options.backend), transformer_dir=spec.transformer_dir,
            device=device, threads=threads, cache_dir=Path(cache),
            token_type_ids="token_type_ids" in tokenizer.model_input_names,
        )

    @property
    def backend_name(self) -> str:
        self.load()
        assert self._backend is not None
        return self._backend.name

    @staticmethod
    def _limit(spec: ModelSpec, tokenizer, config) -> int:
        limits = [getattr(config, "max_position_embeddings", None), spec.max_seq_length]
        tok_max = getattr(tokenizer, "model_max_length", None)
        if tok_max and tok_max < 1_000_000:  # transformers uses a huge sentinel for "unset"
            limits.append(tok_max)
        return int(min(x for x in limits if x))

    # -- properties ----------------------------------------------------------------------------
    @property
    def model_name(self) -> str:
        return self.options.model

    @property
    def dimension(self) -> int:
        self.prepare()
        return self._dimension

    @property
    def max_tokens(self) -> int:
        self._ensure_tokenizer()
        return self._max_tokens

    @property
    def symmetric(self) -> bool:
        """Queries and documents share a prompt (none, for most models), so both tokenize alike."""
        prompts = self.spec.prompts
        return prompts.get("query", "") == prompts.get("document", "")

    @property
    def spec(self) -> ModelSpec:
        self.prepare()
        assert self._spec is not None
        return self._spec

    # -- tokens --------------------------------------------------------------------------------
    def _prompt(self, kind: str) -> str:
        return self.spec.prompts.get(kind, "")

    def _encode_ids(self, texts: Sequence[str]) -> list[list[int]]:
        tokenizer = self._ensure_tokenizer()
        if self.spec.do_lower_case:
            texts = [t.lower() for t in texts]
        return tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)[
            "input_ids"
        ]

    def count_tokens(self, text: str) -> int:
        return len(self._encode_ids([self._prompt("document") + text])[0])

    def count_tokens_many(self, texts: Sequence[str]) -> list[int]:
        prompt = self._prompt("document")
        return [len(ids) for ids in self._encode_ids([prompt + t for t in texts])]

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        enc = self._ensure_tokenizer()(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return [tuple(o) for o in enc["offset_mapping"]]

    # -- embedding -----------------------------------------------------------------------------
    def document_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of document texts as `embed_documents` feeds them (prompt and special tokens included)."""
        prompt = self._prompt("document")
        return self._encode_ids([prompt + t for t in texts])

    def embed_documents(self, texts: Sequence[str], token_ids: Sequence[Sequence[int]] | None = None
                        ) -> list[list[float]]:
        """Vectors for document texts; a text over the token limit is an error, never cut.

        `token_ids` (from `document_ids`) skips the second tokenizer pass when the caller already
        tokenized the texts, e.g. to count or cache them; it must hold one row per text.
        """
        if token_ids is not None and len(token_ids) != len(texts):
            raise ValueError(f"token_ids has {len(token_ids)} rows for {len(texts)} texts")
        ids = [list(r) for r in token_ids] if token_ids is not None else self.document_ids(texts)
        for i, row in enumerate(ids):
            if len(row) > self.max_tokens:
                raise TokenLimitError(
                    f"text {i} has {len(row)} tokens, over the model's limit of {self.max_tokens}"
                )
        return self._embed_ids(ids)

    def embed_query(self, text: str, truncate: bool = False) -> list[float]:
        """Vector for a query; over the token limit it is an error unless `truncate` is set."""
        ids = self._encode_ids([self._prompt("query") + text])[0]
        if len(ids) > self.max_tokens:
            if not truncate:
                raise TokenLimitError(
                    f"query has {len(ids)} tokens, over the model's limit of {self.max_tokens}; "
                    "shorten it or pass truncate"
                )
            ids = _truncated(ids, self.max_tokens)
        return self._embed_ids([ids])[0]

    def _embed_ids(self, ids: list[list[int]], backend: EncoderBackend | None = None) -> list[list[float]]:
        if not ids:
            return []
        if backend is None:
            self.load()
            backend = self._backend
        assert backend is not None
        import torch

        budget = min(self.options.max_batch_tokens, backend.batch_tokens or self.options.max_batch_tokens)
        batches = token_budget_batches([len(r) for r in ids], budget, self.options.max_batch_size)
        out: list[list[float]] = [[] for _ in ids]  # every row is filled: the batches cover every index
        with torch.inference_mode():
            for batch in batches:
                vectors = self._forward([ids[i] for i in batch], backend)
                for i, vec in zip(batch, vectors.tolist(), strict=True):
                    out[i] = vec
        return out

    def _forward(self, rows: list[list[int]], backend: EncoderBackend | None) -> torch.Tensor:
        import torch

        tokenizer = self._ensure_tokenizer()
        input_ids, mask = _pad(rows, tokenizer.pad_token_id or 0)
        types = torch.zeros_like(input_ids) if "token_type_ids" in tokenizer.model_input_names else None
        assert backend is not None
        hidden = backend.hidden_states(input_ids, mask, types)
        pooled = _pool(hidden, mask.to(hidden.device), self.spec.pooling)
        if self.spec.normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled.float().cpu()
