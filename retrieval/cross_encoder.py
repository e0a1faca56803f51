"""Loading a cross-encoder checkpoint of any family the reranker supports (BERT, ELECTRA, XLM-RoBERTa, ...).

What differs between the families, read from the checkpoint itself and never from its name:

- the head: one logit (sentence-transformers' CrossEncoder, mmarco-mMiniLMv2, the svalabs ELECTRA) or two
  classes (not relevant / relevant; the relevant one from id2label where it is named, else index 1); a
  directory without a trained classification head (a plain encoder) is refused, not scored by random weights;
- segment ids: BERT and ELECTRA were trained with token_type_ids 0/1 for query/passage (type_vocab_size 2),
  whatever the tokenizer's model_input_names say; XLM-R has one segment type and gets none;
- the input limit: max_position_embeddings, less the padding offset where positions start after the padding
  index (RoBERTa/XLM-R: 514 positions hold 512 tokens);
- case: an uncased vocabulary (the svalabs German ELECTRA) whose saved tokenizer does not lower-case itself
  would map every capitalised German noun to [UNK]; such input is lower-cased before tokenizing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrieval.schema import RerankerUnavailableError

if TYPE_CHECKING:  # torch and transformers load with the model
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

# Names a checkpoint may give its "relevant" class in id2label (lower-cased); otherwise index 1 is relevant.
_RELEVANT_LABELS = {"relevant", "true", "yes", "positive", "match", "entailment"}
# Specials look like [CLS] or <s>; the rest of the vocabulary tells cased from uncased.
_SPECIAL = re.compile(r"^(\[[^\]]+\]|<[^>]+>)$")
_CASE_PROBE = "Urlaub Überstunden ÄRZTE"


@dataclass(frozen=True)
class CrossEncoder:
    """A loaded cross-encoder and how to feed it."""

    tokenizer: PreTrainedTokenizerBase
    model: PreTrainedModel
    device: torch.device
    relevant: int | None  # the relevant class's index in a 2-class head; None for a 1-logit head
    position_limit: int  # the longest input (special tokens included) its position embeddings hold
    token_types: bool  # pass token_type_ids (query 0, passage 1)
    lowercase: bool  # lower-case input the tokenizer would not lower-case for an uncased vocabulary


def load_cross_encoder(directory: str, setting: str, device: str = "auto") -> CrossEncoder:
    """Load tokenizer and sequence-classification model from `directory`; `setting` names where the directory
    came from, in every error. Raises RerankerUnavailableError for a missing directory, a checkpoint that does
    not load, or one that is not a cross-encoder."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = Path(directory)
    where = f"reranker {path} (setting {setting})"
    if not (path / "config.json").is_file():
        raise RerankerUnavailableError(f"{where}: no config.json there; give a cross-encoder directory or hub id")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        model, info = AutoModelForSequenceClassification.from_pretrained(str(path), output_loading_info=True)
    except (OSError, ValueError, KeyError) as exc:
        raise RerankerUnavailableError(f"{where}: cannot load a cross-encoder: {exc}") from exc
    _check_head(model, info, where)
    want = device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    return CrossEncoder(tokenizer, model.to(torch.device(want)).eval(), torch.device(want),
                        _relevant_index(model.config, where), _position_limit(model),
                        _uses_token_types(model), _needs_lowercase(tokenizer))


def _check_head(model: PreTrainedModel, info: dict[str, Any], where: str) -> None:
    """Refuse a checkpoint whose classification head transformers had to initialise at random."""
    missing = sorted(info.get("missing_keys") or ())
    mismatched = sorted(str(k) for k in info.get("mismatched_keys") or ())
    if missing or mismatched:
        archs = ", ".join(getattr(model.config, "architectures", None) or ["unknown"])
        detail = f"missing {', '.join(missing)}" if missing else f"mismatched {', '.join(mismatched)}"
        raise RerankerUnavailableError(
            f"{where} is not a cross-encoder: its checkpoint ({archs}) has no trained classification head "
            f"({detail}); use a *ForSequenceClassification model trained for reranking")


def _relevant_index(config: Any, where: str) -> int | None:
    labels = int(config.num_labels)
    if labels == 1:
        return None
    if labels != 2:
        raise RerankerUnavailableError(
            f"{where}: a head with {labels} labels is not a relevance cross-encoder (1 or 2 labels expected)")
    names = {int(i): str(name).strip().lower() for i, name in (config.id2label or {}).items()}
    named = [i for i, name in names.items() if name in _RELEVANT_LABELS]
    return named[0] if len(named) == 1 else 1


def _position_limit(model: PreTrainedModel) -> int:
    """Tokens the position embeddings hold: positions after a padding index (RoBERTa's scheme) lose that many."""
    limit = int(getattr(model.config, "max_position_embeddings", 0) or 1_000_000)
    embeddings = getattr(model.base_model, "embeddings", None)
    padding_idx = getattr(getattr(embeddings, "position_embeddings", None), "padding_idx", None)
    return limit - (int(padding_idx) + 1) if padding_idx is not None else limit


def _uses_token_types(model: PreTrainedModel) -> bool:
    import inspect

    accepts = "token_type_ids" in inspect.signature(model.forward).parameters
    return accepts and int(getattr(model.config, "type_vocab_size", 0) or 0) > 1


def _needs_lowercase(tokenizer: PreTrainedTokenizerBase) -> bool:
    """True for an uncased vocabulary (no entry with an upper-case letter) whose tokenizer keeps case."""
    words = [t for t in tokenizer.get_vocab() if not _SPECIAL.match(t)]
    if not words or any(ch.isupper() for t in words for ch in t):
        return False
    return bool(tokenizer.tokenize(_CASE_PROBE) != tokenizer.tokenize(_CASE_PROBE.lower()))
