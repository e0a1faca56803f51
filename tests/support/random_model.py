"""Build a random-weight BERT sentence-transformers directory with a WordPiece tokenizer trained on text.

Used by the tests (a tiny model that loads through the real loading code; its tokenizer is trained on
tests/fixtures, so a fresh clone builds it) and by the benchmarks (the exact gBERT-large shape: timings do
not depend on the weights). Never used for quality figures. Not part of the installed package.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BertShape:
    layers: int = 2
    hidden: int = 32
    heads: int = 4
    intermediate: int = 64
    vocab: int = 2000
    max_positions: int = 512


TINY = BertShape()
GBERT_LARGE = BertShape(layers=24, hidden=1024, heads=16, intermediate=4096, vocab=31102, max_positions=512)


# Every character of ordinary German text gets a token, also where a small training text lacks it.
ALPHABET = sorted(set(string.ascii_letters + string.digits + string.punctuation + "ÄÖÜäöüß§€°²³„“‚‘»«–—…·"))


def train_wordpiece(texts: Iterable[str], vocab_size: int, out_dir: Path):
    """Train a cased German WordPiece tokenizer and save it as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=special, min_frequency=1,
                                        initial_alphabet=ALPHABET)
    tok.train_from_iterator(texts, trainer=trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tok.decoder = decoders.WordPiece()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", model_max_length=512,
    )
    fast.save_pretrained(str(out_dir))
    return fast


def build_random_model(out_dir: Path, texts: Iterable[str], shape: BertShape = TINY, seed: int = 0,
                       max_seq_length: int = 512) -> Path:
    """Write a sentence-transformers directory (Transformer + mean Pooling) with random weights."""
    import torch
    from transformers import BertConfig, BertModel

    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = train_wordpiece(texts, shape.vocab, out_dir)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=shape.hidden, num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads, intermediate_size=shape.intermediate,
        max_position_embeddings=shape.max_positions,
    )
    BertModel(config).eval().save_pretrained(str(out_dir))
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    (out_dir / "modules.json").write_text(json.dumps(modules, indent=2))
    (out_dir / "1_Pooling").mkdir(exist_ok=True)
    (out_dir / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": shape.hidden, "pooling_mode_mean_tokens": True}, indent=2))
    (out_dir / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": max_seq_length, "do_lower_case": False}))
    return out_dir


def german_sample_texts(data_dir: Path, limit_chars: int = 2_000_000) -> list[str]:
    """German lines to train a tokenizer on, from a folder laid out like ../shared/data (tests/fixtures is).

    Laws (gesetze/**/*.md) first, then news (10kgnad/test.csv) and XQuAD paragraphs (xquad-de/*.json)
    where the folder has them, until about `limit_chars` characters.
    """
    texts: list[str] = []
    total = 0
    for text in _german_sources(data_dir):
        for line in text.splitlines():
            if line.strip():
                texts.append(line)
                total += len(line)
        if total > limit_chars:
            break
    return texts


def _german_sources(data_dir: Path) -> Iterator[str]:
    """Whole texts in training order: each law file, the news file, each XQuAD paragraph with its questions."""
    for path in sorted((data_dir / "gesetze").rglob("*.md")):
        yield path.read_text(encoding="utf-8", errors="replace")
    news = data_dir / "10kgnad" / "test.csv"
    if news.exists():
        yield news.read_text(encoding="utf-8", errors="replace")
    for path in sorted((data_dir / "xquad-de").glob("*.json")):
        squad = json.loads(path.read_text(encoding="utf-8"))
        for para in (para for article in squad["data"] for para in article["paragraphs"]):
            yield "\n".join([para["context"], *(qa["question"] for qa in para["qas"])])
