"""Token counting for a generator's budget: its own tokenizer when given, else a conservative estimate.

The generator is not our embedding model: its tokenizer is named by the setting `context_tokenizer` (a
`tokenizer.json` file or a folder holding one, read offline with `tokenizers`). Without one, `EstimateCounter`
counts one token per 2.5 UTF-8 bytes, rounded up.

Why 2.5 (benchmarks/token_ratio.py, docs/bench/token_ratio.md; German text: the 240 XQuAD-de paragraphs, the
4,210 § sections of the 16 laws in ../shared/data/gesetze, source headers). Bytes per token over each set:

    tokenizer                          xquad-de  gesetze  headers   lowest of one text (1st percentile)
    cl100k_base (GPT-4, GPT-3.5)        3.64      3.27     2.73      2.07 (2.58)
    o200k_base (GPT-4o)                 4.40      4.01     3.15      2.31 (2.87)
    MiniLM (English WordPiece)          3.06      2.89     2.35      1.85 (2.19)
    German WordPiece 31,102             3.79      5.77     3.44      2.39 (2.61)
    the tests' tiny WordPiece (2,000)   2.86      3.50     2.58      1.85 (2.26)

2.5 is below every generator tokenizer's average and below the 1st percentile of single texts for both
OpenAI encodings. It is still an estimate: the worst single text measured (a law's header block of dates and
gazette numbers) has 1.21x the estimated tokens with cl100k_base and 1.08x with o200k_base, and the English
MiniLM and tiny vocabularies reach 1.32x on such texts. Llama, Mistral and other SentencePiece/BPE tokenizers
were not available offline here and were not measured. When the budget must hold exactly, give the
generator's tokenizer: then the packed context is counted with it and never exceeds the budget.
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

    BYTES_PER_TOKEN = 2.5
    name = "estimate"

    def count(self, text: str) -> int:
        return math.ceil(len(text.encode("utf-8")) / self.BYTES_PER_TOKEN)


class TokenizerCounter:
    """Counts with a Hugging Face `tokenizers` tokenizer (no special tokens: the generator's chat template
    adds its own, outside the context). Padding and truncation saved in the file are switched off: a
    tokenizer.json that pads to 128 (MiniLM's does) would count every short text as 128 and cut long ones."""

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
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        self.name = str(file)

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)


def token_counter(path: str | None) -> TokenCounter:
    """The counter for the `context_tokenizer` setting: a tokenizer when set, else the estimate."""
    return TokenizerCounter(path) if path else EstimateCounter()
