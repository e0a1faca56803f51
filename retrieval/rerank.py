"""Cross-encoder reranking through transformers (sequence classification).

The default German-capable choice is `cross-encoder/mmarco-mMiniLMv2-L12-H384-v1`: a multilingual
MiniLM cross-encoder trained on mMARCO (MS MARCO machine-translated into 14 languages, German among
them), 118M parameters, most of them its embedding table, so it is the cheap choice on a CPU. English rerankers
(ms-marco-MiniLM) score German pairs poorly and lower German quality. `BAAI/bge-reranker-v2-m3` is the
stronger, 5x larger multilingual option for a GPU. The model is given as a local directory; finding
it (hub id, cache, offline) happens in pipelines.build with the same code as the embedder.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from retrieval.cross_encoder import CrossEncoder, load_cross_encoder
from retrieval.schema import Passage

if TYPE_CHECKING:  # transformers loads with the model
    from transformers import BatchEncoding

DEFAULT_RERANKER = "cross-encoder/mmarco-mMiniLMv2-L12-H384-v1"


@dataclass(frozen=True)
class RerankerOptions:
    directory: str
    batch_size: int = 16
    max_length: int | None = None  # default: the model's own limit
    device: str = "auto"
    setting: str = "reranker directory"  # where the directory came from, named in load errors


class CrossEncoderReranker:
    """Scores (query, passage) pairs; the pair's length is counted by the model's tokenizer.

    A pair longer than the model's limit keeps the whole query and cuts the passage's end
    (`only_second`): the passage's beginning, where chunks carry their heading, is what counts.
    BERT, ELECTRA and XLM-R checkpoints load alike; their differences live in retrieval.cross_encoder.
    """

    def __init__(self, options: RerankerOptions) -> None:
        self.options = options
        self._loaded: CrossEncoder | None = None
        # A fast tokenizer is not safe to share between threads ("Already borrowed"); the HTTP
        # service calls retrieve from several threads, so one scoring pass runs at a time.
        self._lock = threading.Lock()

    def load(self) -> None:
        self._parts()

    def _parts(self) -> CrossEncoder:
        """The tokenizer, the model and how to feed them, loaded on first use."""
        if self._loaded is None:
            self._loaded = load_cross_encoder(self.options.directory, self.options.setting, self.options.device)
        return self._loaded

    @property
    def max_length(self) -> int:
        """The longest pair scored: the option, the model's positions and the tokenizer's stated limit."""
        parts = self._parts()
        limits = [self.options.max_length, parts.position_limit]
        tok_max = getattr(parts.tokenizer, "model_max_length", None)
        if tok_max and tok_max < 1_000_000:
            limits.append(tok_max)
        return int(min(x for x in limits if x))

    def _encode(self, query: str, texts: Sequence[str], **kwargs: object) -> BatchEncoding:
        parts = self._parts()
        if parts.lowercase:
            query, texts = query.lower(), [t.lower() for t in texts]
        return parts.tokenizer([query] * len(texts), list(texts), return_token_type_ids=parts.token_types,
                               **kwargs)

    def pair_tokens(self, query: str, text: str) -> int:
        """Length of the pair as the model sees it, special tokens included, before any cut."""
        return len(self._encode(query, [text], truncation=False)["input_ids"][0])

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        """One relevance logit per text: a 1-logit head's output, or for a 2-class head the log-odds of the
        relevant class (its sigmoid is the relevant class's softmax probability)."""
        import torch

        parts = self._parts()
        scores: list[float] = []
        with self._lock, torch.inference_mode():
            for i in range(0, len(texts), self.options.batch_size):
                batch = texts[i : i + self.options.batch_size]
                enc = self._encode(query, batch, padding=True, truncation="only_second",
                                   max_length=self.max_length, return_tensors="pt")
                logits = parts.model(**enc.to(parts.device)).logits.float()
                if parts.relevant is None:
                    rel = logits[:, 0]
                else:
                    rel = logits[:, parts.relevant] - logits[:, 1 - parts.relevant]
                scores.extend(rel.cpu().tolist())
        return scores

    def rerank(self, query: str, passages: Sequence[Passage], top_k: int) -> list[Passage]:
        """Passages ordered by cross-encoder score (ties keep their earlier order), cut to top_k."""
        if not passages:
            return []
        scores = self.score(query, [p.text for p in passages])
        order = sorted(range(len(passages)), key=lambda i: (-scores[i], i))
        return [replace(passages[i], score=scores[i], scores={**passages[i].scores, "rerank": scores[i]})
                for i in order[:top_k]]
