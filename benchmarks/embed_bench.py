"""Embedding throughput: our embedder vs sentence-transformers' `encode`, every backend, batch-1 queries.

    .venv/bin/python benchmarks/embed_bench.py                 # gBERT-large shape, 16 chunks, 2 rounds (~10 min)
    .venv/bin/python benchmarks/embed_bench.py --quick         # 4 chunks, 1 round (~3 min)
    .venv/bin/python benchmarks/embed_bench.py --model-dir DIR --texts 64 --backends onnx,openvino

The model is a random-weight BERT of the exact gBERT-large shape (24 x 1024, 16 heads, FFN 4096, vocab
31102) with a WordPiece tokenizer trained on ../shared/data, built once under --cache (timings do not
depend on the weights). Texts are real German chunks (laws and news) cut by our chunker at 256 tokens.
Ours and sentence-transformers run on the same directory and texts, alternating, so machine load hits
both alike; each other backend is timed next to an fp32 pass of ours and reported as that ratio.
Results are shown against the machine's measured matmul rate and the model's FLOPs per token.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (
    ROOT,
    Shape,
    cpu_flags,
    finish,
    flops_per_text,
    german_documents,
    machine,
    markdown_table,
    matmul_gflops,
    matmul_int8_gops,
    percentile,
    write_outputs,
)

DEFAULT_BACKENDS = "torch-int8,torch-bf16,onnx,onnx-int8,ct2-int8,openvino,openvino-bf16,auto"
QUESTION = ("Wie lange beträgt die gesetzliche Kündigungsfrist für Arbeitnehmer nach zwei Jahren im Betrieb "
            "und wer muss die Kündigung schriftlich erklären?")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", help="sentence-transformers directory to time (default: the random gBERT-large)")
    p.add_argument("--cache", default=str(ROOT / ".cache" / "bench-models"), help="where the random model is built")
    p.add_argument("--texts", type=int, default=16, help="German chunks to embed per pass")
    p.add_argument("--texts-file", help="JSON list of chunks to embed instead of sampling them (--dump-texts)")
    p.add_argument("--dump-texts", help="write the sampled chunks to this JSON file and stop")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds of ours vs sentence-transformers")
    p.add_argument("--quick", action="store_true", help="4 chunks, 1 round, 5 query repeats")
    p.add_argument("--chunk-tokens", type=int, default=256, help="chunk size in model tokens")
    p.add_argument("--batch-tokens", type=int, default=8192, help="our token budget per batch")
    p.add_argument("--st-batch", type=int, default=32, help="sentence-transformers batch_size")
    p.add_argument("--backends", default=DEFAULT_BACKENDS, help="comma list of extra backends ('' for none)")
    p.add_argument("--backend-cache", default=str(ROOT / ".cache" / "bench-backends"), help="exported models")
    p.add_argument("--query-repeats", type=int, default=10, help="batch-1 query timings per contender")
    p.add_argument("--query-tokens", type=int, default=16, help="query length in tokens, special tokens included")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto")
    p.add_argument("--json", help="output JSON path (default docs/bench/embed-<machine>.json)")
    args = p.parse_args(argv)
    if args.quick:
        args.texts, args.rounds, args.query_repeats = min(args.texts, 4), 1, 5
    return args


def ensure_model(args: argparse.Namespace) -> Path:
    if args.model_dir:
        return Path(args.model_dir)
    from tests.support.random_model import GBERT_LARGE, build_random_model, german_sample_texts

    target = Path(args.cache) / "gbert-large-random"
    if not (target / "modules.json").exists():
        print(f"building the random gBERT-large model in {target} (~1.3 GB, once) ...", flush=True)
        tmp = target.with_name(target.name + ".part")
        build_random_model(tmp, german_sample_texts(ROOT.parent / "shared" / "data"), GBERT_LARGE)
        tmp.rename(target)
    return target


def sample_chunks(embedder, n: int, chunk_tokens: int) -> list[str]:
    """`n` chunks spread over laws and news, alternating, so lengths mix like a real corpus."""
    from ingest.chunk import ChunkOptions, TokenChunker
    from ingest.schema import Document, Section, sha256_text

    chunker = TokenChunker(embedder, ChunkOptions(chunk_tokens, 32))
    docs = list(german_documents())
    laws = [d for d in docs if not d[0].startswith("10kgnad")]
    news = [d for d in docs if d[0].startswith("10kgnad")]
    picked: list[str] = []
    for i in range(n):
        name, text = laws[i % len(laws)] if i % 2 == 0 else news[(i * 37) % len(news)]
        text = text[(i * 7919) % max(1, len(text) - 6000):][:6000]  # a window somewhere inside the text
        doc = Document(name, text, (Section(0, len(text), "NarrativeText"),), sha256_text(text))
        chunks = chunker.chunk(doc, name)
        picked.append(chunks[len(chunks) // 2].text if len(chunks) > 2 else chunks[0].text)
    return picked


def question_of(embedder, tokens: int) -> str:
    """A prefix of QUESTION that is exactly `tokens` tokens long with special tokens (or the closest)."""
    words = QUESTION.split()
    best = QUESTION
    for k in range(1, len(words) + 1):
        text = " ".join(words[:k])
        if len(embedder._encode_ids([text])[0]) > tokens:
            break
        best = text
    return best


def time_pass(fn, texts: list[str]) -> tuple[float, list]:
    start = time.perf_counter()
    out = fn(texts)
    return time.perf_counter() - start, out


def query_p50(fn, question: str, repeats: int) -> float:
    fn(question)
    fn(question)  # warm-up: first calls pick kernels and allocate
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(question)
        times.append(time.perf_counter() - start)
    return percentile(times, 50) * 1000


def cosines(a, b) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def our_embedder(model_dir: Path, backend: str, args: argparse.Namespace):
    from ingest.embed import EmbedderOptions, HFEmbedder

    device = "cpu" if backend not in ("cuda-bf16", "auto") and args.device == "auto" else args.device
    emb = HFEmbedder(EmbedderOptions(model=str(model_dir), backend=backend, device=device,
                                     max_batch_tokens=args.batch_tokens, backend_cache=args.backend_cache))
    started = time.perf_counter()
    emb.load()
    return emb, time.perf_counter() - started


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    info = machine()
    model_dir = ensure_model(args)
    config = json.loads((model_dir / "config.json").read_text())
    shape = Shape(config["num_hidden_layers"], config["hidden_size"], config["intermediate_size"])
    ours, load_s = our_embedder(model_dir, "torch", args)
    if args.texts_file:  # chunks made beforehand (a machine without the chunker's dependencies)
        texts = json.loads(Path(args.texts_file).read_text(encoding="utf-8"))[:args.texts]
    else:
        texts = sample_chunks(ours, args.texts, args.chunk_tokens)
        if args.dump_texts:
            Path(args.dump_texts).write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
            return
    ids = ours.document_ids(texts)
    tokens = sum(len(r) for r in ids)
    flops = sum(flops_per_text(shape, len(r)) for r in ids)
    tok_s, _ = time_pass(ours.document_ids, texts)
    rates = {"float32": matmul_gflops("float32"), "int8": matmul_int8_gops()}
    if info["gpu"] or {"amx_bf16", "avx512_bf16"} & cpu_flags():
        rates["bfloat16"] = matmul_gflops("bfloat16", device="cuda" if info["gpu"] else "cpu")
    print(f"{len(texts)} chunks, {tokens} tokens ({tokens / len(texts):.0f} per chunk), "
          f"{flops / tokens / 1e9:.3f} GFLOP/token; matmul {rates}", flush=True)
    rows, reference = compare_with_st(ours, model_dir, texts, args, tokens, flops, rates)
    query = question_of(ours, args.query_tokens)
    rows[0]["query_p50_ms"] = query_p50(ours.embed_query, query, args.query_repeats)
    for backend in [b for b in args.backends.split(",") if b]:
        rows.append(time_backend(backend, model_dir, texts, ours, reference, args, tokens, flops, rates, query))
    result = {
        "model": str(model_dir), "shape": shape.__dict__, "texts": len(texts), "tokens": tokens,
        "gflop_per_token": flops / tokens / 1e9, "matmul_gflops": rates, "tokenize_seconds": tok_s,
        "query": {"text": query, "tokens": len(ours._encode_ids([query])[0])}, "load_seconds_fp32": load_s,
        "rounds": args.rounds, "command": " ".join(sys.argv), "results": rows,
    }
    finish(info)
    path = write_outputs("embed", info, result, render(result), args.json)
    print(render(result))
    print(f"\nwritten {path}")
    return result


def compare_with_st(ours, model_dir, texts, args, tokens, flops, rates):
    from sentence_transformers import SentenceTransformer

    device = "cuda" if args.device in ("auto", "cuda") and _cuda() else "cpu"
    st = SentenceTransformer(str(model_dir), device=device)
    st.encode(texts[:1])
    ours.embed_documents(texts[:1])  # warm-up both
    ours_t, st_t = [], []
    reference = None
    for r in range(args.rounds):
        pair = [("ours", ours.embed_documents), ("st", lambda t: st.encode(t, batch_size=args.st_batch))]
        for name, fn in pair if r % 2 == 0 else pair[::-1]:
            seconds, out = time_pass(fn, texts)
            (ours_t if name == "ours" else st_t).append(seconds)
            if name == "ours":
                reference = out
        print(f"round {r + 1}: ours {ours_t[-1]:.1f} s, sentence-transformers {st_t[-1]:.1f} s", flush=True)
    st_vectors = st.encode(texts, batch_size=args.st_batch)
    q = question_of(ours, args.query_tokens)
    st_query = query_p50(lambda x: st.encode([x]), q, args.query_repeats)
    best_ours, best_st = min(ours_t), min(st_t)
    rows = [row("ours torch fp32", best_ours, ours_t, tokens, flops, rates["float32"], 1.0, None, len(texts)),
            row("sentence-transformers encode", best_st, st_t, tokens, flops, rates["float32"],
                best_ours / best_st, cosines(st_vectors, reference), len(texts))]
    rows[1]["query_p50_ms"] = st_query
    return rows, reference  # the sentence-transformers model is freed with this frame


def time_backend(backend, model_dir, texts, ours, reference, args, tokens, flops, rates, query) -> dict:
    try:
        emb, load_s = our_embedder(model_dir, backend, args)
        emb.embed_documents(texts[:1])
        seconds, vectors = time_pass(emb.embed_documents, texts)
        fp32_seconds, _ = time_pass(ours.embed_documents, texts)  # next to it: same load
    except Exception as exc:  # a backend that cannot run here is reported, not fatal
        print(f"{backend}: failed: {exc}", flush=True)
        return {"name": backend, "error": str(exc)[:500]}
    name = backend if emb.calibration is None else f"auto -> {emb.backend_name}"
    used = emb.backend_name
    rate = (rates.get("bfloat16", rates["float32"]) if "bf16" in used
            else rates["int8"] if "int8" in used else rates["float32"])
    out = row(name, seconds, [seconds], tokens, flops, rate, fp32_seconds / seconds,
              cosines(vectors, reference), len(texts))
    out["fp32_seconds_next_to_it"] = fp32_seconds
    out["load_seconds"] = load_s  # with auto: the measurement, when nothing was stored for this machine yet
    if emb.calibration is not None:
        out["auto"] = emb.calibration.to_dict()
    out["query_p50_ms"] = query_p50(emb.embed_query, query, args.query_repeats)
    print(f"{backend}: {out['tokens_per_s']:.1f} tokens/s, x{out['speedup_vs_fp32']:.2f} vs fp32, "
          f"min cosine {out['min_cosine']:.4f}", flush=True)
    del emb
    gc.collect()
    return out


def row(name, seconds, all_seconds, tokens, flops, rate, speedup, cos, n) -> dict:
    return {
        "name": name, "seconds": seconds, "all_seconds": all_seconds, "tokens_per_s": tokens / seconds,
        "chunks_per_s": n / seconds, "gflops": flops / seconds / 1e9,
        "fraction_of_matmul_rate": flops / seconds / 1e9 / rate, "speedup_vs_fp32": speedup,
        "min_cosine": float(cos.min()) if cos is not None else 1.0,
        "mean_cosine": float(cos.mean()) if cos is not None else 1.0,
    }


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def render(result: dict) -> str:
    rates = ", ".join(f"{k} {v:.0f} {'GOP' if k == 'int8' else 'GFLOP'}/s" for k, v in result["matmul_gflops"].items())
    head = (f"{result['texts']} German chunks, {result['tokens']} tokens; {result['gflop_per_token']:.3f} GFLOP per "
            f"token (attention included); measured matmul: {rates}; one tokenizer pass over all texts: "
            f"{result['tokenize_seconds'] * 1000:.0f} ms; batch-1 query of {result['query']['tokens']} tokens.\n\n")
    rows = []
    for r in result["results"]:
        if "error" in r:
            rows.append([r["name"], "failed", "", "", "", "", "", r["error"][:80]])
            continue
        rows.append([r["name"], r["tokens_per_s"], r["chunks_per_s"], f"{r['fraction_of_matmul_rate']:.0%}",
                     f"x{r['speedup_vs_fp32']:.2f}", f"{r['min_cosine']:.4f}", r.get("query_p50_ms", float("nan")),
                     ""])
    headers = ["contender", "tokens/s", "chunks/s", "of matmul limit", "vs ours fp32", "min cosine",
               "query p50 ms", "note"]
    return head + markdown_table(headers, rows)


if __name__ == "__main__":
    main()
