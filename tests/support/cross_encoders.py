"""Tiny random cross-encoders of the three families the reranker loads: BERT, ELECTRA and XLM-RoBERTa.

Each is a `*ForSequenceClassification` checkpoint with its own tokenizer, saved with save_pretrained the way
the hub's cross-encoders are (config.json names the architecture; the tokenizer files and config sit beside
it), so the reranker's real loading code reads them. The tokenizers are trained on German text:

- BERT (cased, like deepset/gbert-base): WordPiece, token_type_ids 0/1 for the two segments;
- ELECTRA (uncased, like svalabs/cross-electra-ms-marco-german-uncased): a lower-case WordPiece vocabulary
  with umlauts kept, and a tokenizer that lower-cases (`keep_case_copy` makes the trap: the same checkpoint
  whose tokenizer config says do_lower_case false);
- XLM-RoBERTa (like cross-encoder/mmarco-mMiniLMv2-L12-H384-v1): a SentencePiece-style Unigram tokenizer,
  no token_type_ids, positions offset by the padding index (max_position_embeddings = limit + 2).

Random weights: never used for a quality figure.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from tests.support.random_model import ALPHABET, train_wordpiece

HIDDEN = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
          "initializer_range": 0.3}  # wide enough that random scores differ well beyond float noise
XLMR_SPECIAL = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def _save(model, tokenizer, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    model.eval().save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    return out_dir


def build_bert(out_dir: Path, texts: Sequence[str], num_labels: int = 1, max_positions: int = 128,
               seed: int = 1) -> Path:
    """A cased BERT cross-encoder (BertForSequenceClassification)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    tokenizer = train_wordpiece(texts, 1500, out_dir)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(tokenizer), max_position_embeddings=max_positions, num_labels=num_labels,
                        **HIDDEN)
    return _save(BertForSequenceClassification(config), tokenizer, out_dir)


def build_electra(out_dir: Path, texts: Sequence[str], num_labels: int = 1, max_positions: int = 128,
                  seed: int = 2) -> Path:
    """An uncased ELECTRA cross-encoder (ElectraForSequenceClassification) with a lower-case vocabulary."""
    import torch
    from transformers import ElectraConfig, ElectraForSequenceClassification

    tokenizer = _uncased_wordpiece([t.lower() for t in texts])
    torch.manual_seed(seed)
    config = ElectraConfig(vocab_size=len(tokenizer), embedding_size=16, max_position_embeddings=max_positions,
                           num_labels=num_labels, **HIDDEN)
    return _save(ElectraForSequenceClassification(config), tokenizer, out_dir)


def keep_case_copy(model_dir: Path, out_dir: Path) -> Path:
    """A copy of an uncased checkpoint whose tokenizer config says do_lower_case false: the weights and the
    vocabulary are the same, but the saved tokenizer no longer lower-cases."""
    import shutil

    shutil.copytree(model_dir, out_dir)
    config_path = out_dir / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["do_lower_case"] = False
    config_path.write_text(json.dumps(config), encoding="utf-8")
    return out_dir


def _uncased_wordpiece(texts: Sequence[str]):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertTokenizer

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=1500, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
                                        min_frequency=1, initial_alphabet=sorted({c.lower() for c in ALPHABET}))
    tok.train_from_iterator(texts, trainer=trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    tok.decoder = decoders.WordPiece()
    # transformers' BertTokenizer rebuilds the normalizer from these; German uncased models keep umlauts
    return BertTokenizer(tokenizer_object=tok, do_lower_case=True, strip_accents=False, model_max_length=512)


def build_xlmr(out_dir: Path, texts: Sequence[str], num_labels: int = 1, limit: int = 64, seed: int = 3) -> Path:
    """An XLM-RoBERTa cross-encoder (XLMRobertaForSequenceClassification) with a Unigram tokenizer.

    `limit` is the longest input the positions allow (max_position_embeddings = limit + 2, as XLM-R's 514 for
    512); the tokenizer states no model_max_length, so the positions are the only limit.
    """
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    tokenizer = _unigram(texts)
    torch.manual_seed(seed)
    config = XLMRobertaConfig(vocab_size=len(tokenizer), max_position_embeddings=limit + 2, type_vocab_size=1,
                              pad_token_id=1, bos_token_id=0, eos_token_id=2, num_labels=num_labels, **HIDDEN)
    return _save(XLMRobertaForSequenceClassification(config), tokenizer, out_dir)


def _unigram(texts: Sequence[str]):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import XLMRobertaTokenizer

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=1500, special_tokens=XLMR_SPECIAL, unk_token="<unk>",
                                      initial_alphabet=ALPHABET)
    tok.train_from_iterator(texts, trainer=trainer)
    ids = {t: tok.token_to_id(t) for t in ("<s>", "</s>")}
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=list(ids.items()))
    tok.decoder = decoders.Metaspace()
    return XLMRobertaTokenizer(tokenizer_object=tok)


def build_plain_bert(out_dir: Path, texts: Sequence[str]) -> Path:
    """A BERT encoder without a classification head (BertModel): not a cross-encoder."""
    import torch
    from transformers import BertConfig, BertModel

    tokenizer = train_wordpiece(texts, 1500, out_dir)
    torch.manual_seed(4)
    return _save(BertModel(BertConfig(vocab_size=len(tokenizer), **HIDDEN)), tokenizer, out_dir)
