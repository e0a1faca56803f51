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
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from retrieval.schema import Passage, RerankerUnavailableError

if TYPE_CHECKING:  # torch and transformers load with the model
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

DEFAULT_RERANKER = "cross-encoder/mmarco-mMiniLMv2-L12-H384-v1"


@dataclass(frozen=True)
class RerankerOptions:
    directory: str
    batch_size: int = 16
    max_length: int | None = None  # default: the model's own limit
    device: str = "auto"


class _Loaded(NamedTuple):
    tokenizer: PreTrainedTokenizerBase
    model: PreTrainedModel
    device: torch.device


class CrossEncoderReranker:
    """Scores (query, passage) pairs; the pair's length is counted by the model's tokenizer.

    A pair longer than the model's limit keeps the whole query and cuts the passage's end
    (`only_second`): the passage's beginning, where chunks carry their heading, is what counts.
    """

    def __init__(self, options: RerankerOptions) -> None:
        self.options = options
        self._loaded: _Loaded | None = None
        # A fast tokenizer is not safe to share between threads ("Already borrowed"); the HTTP
        # service calls retrieve from several threads, so one scoring pass runs at a time.
        self._lock = threading.Lock()

    def load(self) -> None:
        self._parts()

    def _parts(self) -> _Loaded:
        """The tokenizer, the model and its device, loaded on first use."""
        if self._loaded is not None:
            return self._loaded
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = Path(self.options.directory)
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path))
            model = AutoModelForSequenceClassification.from_pretrained(str(path))
        except (OSError, ValueError) as exc:
            raise RerankerUnavailableError(f"cannot load reranker from {path}: {exc}") from exc
        want = self.options.device
        device = torch.device("cuda" if want == "auto" and torch.cuda.is_available() else
                              ("cpu" if want == "auto" else want))
        self._loaded = _Loaded(tokenizer, model.to(device).eval(), device)
        return self._loaded

    @property
    def max_length(self) -> int:
        tokenizer, model, _ = self._parts()
        limits = [self.options.max_length, getattr(model.config, "max_position_embeddings", None)]
        tok_max = getattr(tokenizer, "model_max_length", None)
        if tok_max and tok_max < 1_000_000:
            limits.append(tok_max)
        return int(min(x for x in limits if x))

    def pair_tokens(self, query: str, text: str) -> int:
        """Length of the pair as the model sees it, special tokens included, before any cut."""
        tokenizer = self._parts().tokenizer
        return len(tokenizer(query, text, truncation=False)["input_ids"])

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        import torch

        tokenizer, model, device = self._parts()
        scores: list[float] = []
        with self._lock, torch.inference_mode():
            for i in range(0, len(texts), self.options.batch_size):
                batch = list(texts[i : i + self.options.batch_size])
                enc = tokenizer([query] * len(batch), batch, padding=True, truncation="only_second",
                                max_length=self.max_length, return_tensors="pt").to(device)
                logits = model(**enc).logits.float()
                # one logit: relevance; two: log-odds of the "relevant" class
                rel = logits[:, 0] if logits.shape[1] == 1 else logits[:, 1] - logits[:, 0]
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
