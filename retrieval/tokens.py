"""Token counting for a generator's budget: its own tokenizer when given, else a conservative estimate.

The generator is not our embedding model: its tokenizer is named by a setting (a `tokenizer.json` file or a
tokenizer directory, read offline). Without one, `EstimateCounter` over-counts on purpose, so a context packed
by the estimate fits the budget of every common tokenizer on German text.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Protocol

from ingest.errors import ConfigError
from retrieval.schema import RetrievalError


class TokenizerError(ConfigError, RetrievalError):
    """The configured generator tokenizer cannot be read (missing, not a tokenizer, unreadable)."""


class TokenCounter(Protocol):
    name: str

    def count(self, text: str) -> int: ...


class EstimateCounter:
    """Tokens estimated from UTF-8 bytes: one token per `BYTES_PER_TOKEN` bytes, rounded up."""

    BYTES_PER_TOKEN = 3.0
    name = "estimate"

    def count(self, text: str) -> int:
        return math.ceil(len(text.encode("utf-8")) / self.BYTES_PER_TOKEN)


class TokenizerCounter:
    """Counts with a Hugging Face `tokenizers` tokenizer (no special tokens: the generator's chat template
    adds its own, outside the context)."""

    def __init__(self, path: str | Path) -> None:
        from tokenizers import Tokenizer

        file = Path(path).expanduser()
        if file.is_dir():
            file = file / "tokenizer.json"
        if not file.is_file():
            raise TokenizerError(f"context_tokenizer: {path}: no tokenizer.json there (give the file or the "
                                 "folder that holds it)")
        try:
            self._tokenizer = Tokenizer.from_file(str(file))
        except Exception as exc:  # tokenizers raises a bare Exception for a file it cannot read
            raise TokenizerError(f"context_tokenizer: {file}: not a readable tokenizer.json ({exc})") from exc
        self.name = str(file)

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)


def token_counter(path: str | None) -> TokenCounter:
    """The counter for the `context_tokenizer` setting: a tokenizer when set, else the estimate."""
    return TokenizerCounter(path) if path else EstimateCounter()
