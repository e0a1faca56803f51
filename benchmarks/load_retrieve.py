"""Bounded load test of POST /v1/retrieve on loopback: throughput and p50/p95/p99 at 1, 8 and 32 clients.

Starts `german-rag serve` as a child process on 127.0.0.1 with the tiny random German BERT and a fresh
embedded store, uploads the bundled examples, then runs each concurrency level for a fixed time, on two
servers in alternation: with query batching across requests and without (GERMAN_RAG_BATCH_MAX=1).
Everything stops by itself: each level ends after --seconds, the whole run after a hard alarm, and the
server is terminated on the way out. Writes docs/bench/load_retrieve.json and .md.

    .venv/bin/python benchmarks/load_retrieve.py --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
HOST = "127.0.0.1"  # loopback only, on purpose: this script never loads a remote server
QUERIES = [
    "Wie viele Werktage Urlaub stehen einem Arbeitnehmer jährlich mindestens zu?",
    "Wie lange darf ein Arbeitnehmer werktäglich höchstens arbeiten?",
    "Wann muss eine Ruhepause gewährt werden?",
    "Wer entscheidet über den Urlaubsantrag?",
    "Nachtarbeit und Ausgleich für Nachtarbeitnehmer",
    "Kann Urlaub auf das nächste Kalenderjahr übertragen werden?",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def level(url: str, clients: int, seconds: float, mode: str) -> dict:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    stop_at = time.perf_counter() + seconds

    async def client(worker: int, http: httpx.AsyncClient) -> None:
        i = worker
        while time.perf_counter() < stop_at:
            body = {"query": QUERIES[i % len(QUERIES)], "top_k": 5, "mode": mode}
            i += 1
            started = time.perf_counter()
            try:
                r = await http.post("/v1/retrieve", json=body)
                key = None if r.status_code == 200 else str(r.status_code)
            except httpx.HTTPError as exc:
                key = type(exc).__name__
            if key is None:
                latencies.append(time.perf_counter() - started)
            else:
                errors[key] = errors.get(key, 0) + 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(w, http) for w in range(clients)))
        elapsed = time.perf_counter() - started
    ms = [v * 1000 for v in latencies]
    return {"clients": clients, "seconds": round(elapsed, 2), "requests": len(ms),
            "throughput_rps": round(len(ms) / elapsed, 1),
            "p50_ms": round(percentile(ms, 50), 1) if ms else None,
            "p95_ms": round(percentile(ms, 95), 1) if ms else None,
            "p99_ms": round(percentile(ms, 99), 1) if ms else None,
            "mean_ms": round(statistics.fmean(ms), 1) if ms else None,
            "errors": sum(errors.values()), "error_kinds": errors}


def embed_batch_mean(url: str) -> float | None:
    text = httpx.get(f"{url}/metrics").text
    values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
              if line.startswith("german_rag_query_embed_batch_size_")}
    count = values.get("german_rag_query_embed_batch_size_count")
    return round(values["german_rag_query_embed_batch_size_sum"] / count, 2) if count else None


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{what} not reached within {timeout} s")


def prepare(work: Path) -> Path:
    from tests.support.random_model import build_random_model, german_sample_texts

    return build_random_model(work / "tiny-model", german_sample_texts(ROOT.parent / "shared" / "data",
                                                                         limit_chars=1_500_000))


def start_server(model: Path, work: Path, port: int, batch_max: int) -> subprocess.Popen:
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GERMAN_RAG_EMBED_MODEL": str(model), "GERMAN_RAG_QDRANT_PATH": str(work / "qdrant"),
           "GERMAN_RAG_OFFLINE": "true", "HF_HUB_OFFLINE": "1", "GERMAN_RAG_QUEUE_SIZE": "256",
           "GERMAN_RAG_LOG_LEVEL": "WARNING", "GERMAN_RAG_BATCH_MAX": str(batch_max)}
    env.pop("GERMAN_RAG_QDRANT_URL", None)
    return subprocess.Popen([sys.executable, "-m", "pipelines.cli", "serve", "--host", HOST, "--port", str(port)],
                            cwd=work, env=env)


def ingest_examples(url: str) -> dict:
    examples = ROOT / "pipelines" / "examples"
    files = [("files", (p.name, p.read_bytes(), "application/octet-stream"))
             for p in sorted(examples.iterdir()) if p.suffix in (".md", ".txt") and p.name != "README.txt"]
    job_id = httpx.post(f"{url}/v1/documents", files=files, timeout=60).json()["job_id"]
    result: dict = {}

    def done() -> bool:
        result.update(httpx.get(f"{url}/v1/jobs/{job_id}").json())
        return result["state"] in ("succeeded", "failed")

    wait_until(done, 300, "ingest job")
    if result["state"] != "succeeded":
        raise RuntimeError(f"ingest failed: {result}")
    return result["counts"]


VARIANTS = {"batched": 32, "unbatched": 1}  # GERMAN_RAG_BATCH_MAX of each server


def markdown(report: dict) -> str:
    lines = [f"# Load test of POST /v1/retrieve ({report['model']}, mode {report['mode']})", "",
             f"`{report['command']}` on {report['machine']}; load average before {report['load_before']}, "
             f"after {report['load_after']}. Server and clients share the machine. Two servers, one with "
             "query batching across requests (batch_max 32) and one without (batch_max 1), measured in "
             "alternation level by level.", "",
             "| server | clients | requests | throughput (req/s) | p50 ms | p95 ms | p99 ms | errors |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report["levels"]:
        lines.append(f"| {r['server']} | {r['clients']} | {r['requests']} | {r['throughput_rps']} | {r['p50_ms']} "
                     f"| {r['p95_ms']} | {r['p99_ms']} | {r['errors']} |")
    lines += ["", "Throughput batched / unbatched: " + ", ".join(
        f"{c} clients {v}" for c, v in report["batching_ratio"].items()) + ".",
        f"Mean queries per model call on the batched server: {report['embed_batch_mean']}.", ""]
    return "\n".join(lines)


def measure(urls: dict[str, str], clients: list[int], seconds: float, mode: str) -> list[dict]:
    levels = []
    for i, c in enumerate(clients):
        order = list(urls) if i % 2 == 0 else list(reversed(urls))  # alternate who goes first
        for name in order:
            levels.append({"server": name, **asyncio.run(level(urls[name], c, seconds, mode))})
    return levels


def ratios(levels: list[dict]) -> dict[int, float]:
    by = {(r["server"], r["clients"]): r["throughput_rps"] for r in levels}
    return {c: round(by[("batched", c)] / by[("unbatched", c)], 2) for _, c in by if by[("unbatched", c)]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each concurrency level")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--mode", choices=["dense", "bm25", "hybrid"], default="hybrid")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "bench")
    args = parser.parse_args()
    if not 1 <= args.seconds <= 120 or max(args.clients) > 256:
        parser.error("--seconds must be 1 to 120 and clients at most 256 (this test is bounded)")
    budget = int(300 + 2 * (args.seconds + 5) * len(args.clients))
    signal.alarm(budget)  # the hard stop: SIGALRM ends the process even if something hangs
    with tempfile.TemporaryDirectory(prefix="load-retrieve-") as tmp:
        work = Path(tmp)
        model = prepare(work)
        ports = {name: free_port() for name in VARIANTS}
        urls = {name: f"http://{HOST}:{port}" for name, port in ports.items()}
        servers = [start_server(model, work / name, ports[name], VARIANTS[name]) for name in VARIANTS]
        try:
            counts = {}
            for name, url in urls.items():
                wait_until(lambda url=url: httpx.get(f"{url}/readyz").status_code == 200, 120, "server ready")
                counts[name] = ingest_examples(url)
                asyncio.run(level(url, 4, 2.0, args.mode))  # warm-up, not reported
            load_before = os.getloadavg()
            levels = measure(urls, args.clients, args.seconds, args.mode)
            report = {"command": "python benchmarks/load_retrieve.py " + " ".join(sys.argv[1:]),
                      "model": "tiny random German BERT (tests/support/random_model.py TINY)", "mode": args.mode,
                      "machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}",
                      "load_before": [round(v, 2) for v in load_before],
                      "load_after": [round(v, 2) for v in os.getloadavg()], "ingest": counts,
                      "embed_batch_mean": embed_batch_mean(urls["batched"]), "levels": levels,
                      "batching_ratio": ratios(levels)}
        finally:
            for server in servers:
                server.send_signal(signal.SIGTERM)
            for server in servers:
                try:
                    server.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    server.kill()
    args.out.mkdir(parents=True, exist_ok=True)
    from benchmarks.common import public, public_text  # after sys.path names the checkout

    (args.out / "load_retrieve.json").write_text(json.dumps(public(report), indent=2, ensure_ascii=False) + "\n")
    (args.out / "load_retrieve.md").write_text(public_text(markdown(report)))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
