"""Smoke runs of the benchmark scripts on tiny inputs, and hand-checked helper arithmetic."""

from __future__ import annotations

import json

import pytest

from benchmarks.common import Shape, flops_per_text, machine_slug, percentile


def test_flops_per_text_counts_projections_ffn_and_attention():
    # one layer, h=2, i=4, s=3: per token 8*4 + 4*2*4 = 64, attention 4*3*2 = 24 -> 3 * 88
    assert flops_per_text(Shape(1, 2, 4), 3) == 3 * 88
    # gBERT-large: 0.604 GFLOP per token before attention, +0.025 at 256 tokens
    per_token = flops_per_text(Shape(24, 1024, 4096), 256) / 256 / 1e9
    assert per_token == pytest.approx(0.604 + 0.0252, abs=1e-3)


def test_percentile_and_machine_slug():
    assert percentile([5.0, 1.0, 3.0], 50) == 3.0
    assert percentile(list(range(101)), 99) == 99
    assert machine_slug({"cpu": "Intel(R) Xeon(R) Processor", "cores": 2, "gpu": None}) == "intel-xeon-2c"
    assert machine_slug({"cpu": "x", "cores": 16, "gpu": "NVIDIA H100 80GB HBM3"}) == "nvidia-h100-80gb"


def test_embed_bench_runs_on_the_tiny_model(tiny_model_dir, tmp_path):
    from benchmarks import embed_bench

    out = tmp_path / "embed.json"
    embed_bench.main(["--model-dir", str(tiny_model_dir), "--quick", "--texts", "2", "--backends", "onnx,nonsense",
                      "--query-repeats", "2", "--backend-cache", str(tmp_path / "cache"), "--json", str(out)])
    data = json.loads(out.read_text())
    names = [r["name"] for r in data["results"]]
    assert names == ["ours torch fp32", "sentence-transformers encode", "onnx", "nonsense"]
    ours, st, onnx, bad = data["results"]
    assert ours["tokens_per_s"] > 0 and 0 < ours["fraction_of_matmul_rate"] < 2
    assert st["min_cosine"] > 0.9999  # same model, same texts: the two embedders agree
    assert onnx["min_cosine"] > 0.9999 and onnx["query_p50_ms"] > 0
    assert "is not one of" in bad["error"]
    assert data["tokens"] > 2 and data["machine"]["cores"] >= 1
    assert out.with_suffix(".md").read_text().startswith("# embed benchmark")


def test_query_bench_fills_the_store_and_times_every_mode(tmp_path, shared_data):
    from benchmarks import query_bench

    out = tmp_path / "query.json"
    query_bench.main(["--sizes", "60,150", "--queries", "4", "--dim", "64", "--path", str(tmp_path / "q"),
                      "--json", str(out)])
    data = json.loads(out.read_text())
    assert [r["chunks"] for r in data["results"]] == [60, 150]
    for r in data["results"]:
        for mode in ("dense", "bm25", "hybrid"):
            assert r[mode]["p50_ms"] > 0 and r[mode]["p99_ms"] >= r[mode]["p50_ms"]
        assert r["dense"]["min_hits"] == 10 and r["hybrid"]["min_hits"] == 10
    assert data["model_time"]["bm25_encode_p50_ms"] > 0


@pytest.mark.slow
def test_ingest_bench_compares_pipelines_and_reingest(tmp_path, shared_data):
    from benchmarks import ingest_bench

    out = tmp_path / "ingest.json"
    ingest_bench.main(["--quick", "--laws", "1", "--news", "3", "--work", str(tmp_path / "w"), "--json", str(out)])
    rows = {(r["pipeline"], r["run"]): r for r in json.loads(out.read_text())["results"]}
    first, unchanged, changed = (rows["german-rag", k] for k in ("first", "unchanged", "changed"))
    assert first["chunks"] > 0 and first["points_written"] == first["chunks"]
    assert unchanged["points_written"] == 0 and changed["files_changed"] == 1
    assert changed["chunks_reused"] > 0  # the changed law keeps the vectors of its unchanged chunks
    assert rows["llama-index", "first"]["chunks"] > 0
    assert all(r["peak_rss_mib"] > 50 for r in rows.values())


def test_ingest_bench_corpus_and_changes(tmp_path, shared_data):
    from benchmarks.ingest_bench import change_files, make_corpus

    files = make_corpus(tmp_path / "c", 2, 5)
    assert len(files) == 7 and all(f.stat().st_size > 100 for f in files)
    before = [f.read_text() for f in files]
    changed = change_files(files, 0.34)
    assert len(changed) == 3  # every third file
    assert sum(f.read_text() != b for f, b in zip(files, before, strict=True)) == 3
