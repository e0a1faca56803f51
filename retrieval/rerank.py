"""Cross-encoder reranking through transformers (sequence classification).

The default German-capable choice is `cross-encoder/mmarco-mMiniLMv2-L12-H384-v1`: a multilingual
MiniLM cross-encoder trained on mMARCO (MS MARCO machine-translated into 14 languages, German among
them), 118M parameters, so 30 candidates rerank in well under a second on a CPU. English rerankers
(ms-marco-MiniLM) score German pairs poorly and lower German quality. `BAAI/bge-reranker-v2-m3` is the
stronger, 5x larger multilingual option for a GPU. The model is given as a local directory; finding
it (hub id, cache, offline) happens in pipelines.build with the same code as the embedder.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from retrieval.schema import Passage, RerankerUnavailableError

DEFAULT_RERANKER = "cross-encoder/mmarco-mMiniLMv2-L12-H384-v1"


@dataclass(frozen=True)
class RerankerOptions:
    directory: str
    batch_size: int = 16
    max_length: int | None = None  # default: the model's own limit
    device: str = "auto"


class CrossEncoderReranker:
    """Scores (query, passage) pairs; the pair's length is counted by the model's tokenizer.

    A pair longer than the model's limit keeps the whole query and cuts the passage's end
    (`only_second`): the passage's beginning, where chunks carry their heading, is what counts.
    """

    def __init__(self, options: RerankerOptions) -> None:
        self.options = options
        self._model = None
        self._tokenizer = None
        self._device = None
        self.seconds_in_model = 0.0
        # A fast tokenizer is not safe to share between threads ("Already borrowed"); the HTTP
        # service calls retrieve from several threads, so one scoring pass runs at a time.
        self._lock = threading.Lock()

    def load(self) -> None:
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = Path(self.options.directory)
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(str(path))
            model = AutoModelForSequenceClassification.from_pretrained(str(path))
        except (OSError, ValueError) as exc:
            raise RerankerUnavailableError(f"cannot load reranker from {path}: {exc}") from exc
        want = self.options.device
        self._device = torch.device("cuda" if want == "auto" and torch.cuda.is_available() else
                                    ("cpu" if want == "auto" else want))
        self._model = model.to(self._device).eval()

    @property
    def max_length(self) -> int:
        self.load()
        limits = [self.options.max_length, getattr(self._model.config, "max_position_embeddings", None)]
        tok_max = getattr(self._tokenizer, "model_max_length", None)
        if tok_max and tok_max < 1_000_000:
            limits.append(tok_max)
        return int(min(x for x in limits if x))

    def pair_tokens(self, query: str, text: str) -> int:
        """Length of the pair as the model sees it, special tokens included, before any cut."""
        self.load()
        return len(self._tokenizer(query, text, truncation=False)["input_ids"])

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        import torch

        self.load()
        scores: list[float] = []
        started = time.perf_counter()
        with self._lock, torch.inference_mode():
            for i in range(0, len(texts), self.options.batch_size):
                batch = list(texts[i : i + self.options.batch_size])
                enc = self._tokenizer([query] * len(batch), batch, padding=True, truncation="only_second",
                                      max_length=self.max_length, return_tensors="pt").to(self._device)
                logits = self._model(**enc).logits.float()
                # one logit: relevance; two: log-odds of the "relevant" class
                rel = logits[:, 0] if logits.shape[1] == 1 else logits[:, 1] - logits[:, 0]
                scores.extend(rel.cpu().tolist())
        self.seconds_in_model += time.perf_counter() - started
        return scores

    def rerank(self, query: str, passages: Sequence[Passage], top_k: int) -> list[Passage]:
        """Passages ordered by cross-encoder score (ties keep their earlier order), cut to top_k."""
        if not passages:
            return []
        scores = self.score(query, [p.text for p in passages])
        order = sorted(range(len(passages)), key=lambda i: (-scores[i], i))
        return [replace(passages[i], score=scores[i], scores={**passages[i].scores, "rerank": scores[i]})
                for i in order[:top_k]]
