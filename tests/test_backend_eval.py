"""The pure part of benchmarks/backend_eval.py: differences to fp32, the pass rule and the table rows."""

from __future__ import annotations

from benchmarks.backend_eval import compare, cosine_stats, table_rows

REF = {"backend": "torch", "modes": {"dense": {"mrr_at_5": 0.65, "ndcg_at_10": 0.70, "recall_at_10": 0.835}}}
COS_OK = {"passages": {"min": 0.995, "mean": 0.999}, "queries": {"min": 0.993, "mean": 0.998, "below_0.99": 0}}


def test_compare_passes_within_both_bounds_and_fails_outside():
    good = {"backend": "onnx-int8", "cosine": COS_OK,
            "modes": {"dense": {"mrr_at_5": 0.66, "ndcg_at_10": 0.695, "recall_at_10": 0.835}}}
    v = compare(REF, good)
    assert v["pass"] and abs(v["diff"]["dense"]["mrr_at_5"] - 0.01) < 1e-12  # exactly 0.01 still passes
    assert abs(v["max_abs_diff"] - 0.01) < 1e-12 and v["min_cosine"] == 0.993
    far = {**good, "modes": {"dense": {"mrr_at_5": 0.64, "ndcg_at_10": 0.688, "recall_at_10": 0.835}}}
    assert not compare(REF, far)["pass"]  # nDCG@10 off by 0.012
    low_cos = {**good, "cosine": {**COS_OK, "queries": {"min": 0.97, "mean": 0.99}}}
    assert not compare(REF, low_cos)["pass"]
    missing_mode = {**good, "modes": {}}
    assert not compare(REF, missing_mode)["pass"]
    assert not compare(REF, {"backend": "x", "error": "export failed"})["pass"]
    assert not compare(REF, {"backend": "cuda-bf16", "skipped": "no GPU"})["pass"]


def test_table_rows_show_diffs_verdicts_errors_and_skips():
    good = {"backend": "onnx", "cosine": COS_OK,
            "modes": {"dense": {"mrr_at_5": 0.655, "ndcg_at_10": 0.70, "recall_at_10": 0.83}}}
    ref = {**REF, "cosine": {"passages": {"min": 1.0, "mean": 1.0}, "queries": {"min": 1.0, "mean": 1.0}}}
    results = [good, {"backend": "openvino", "error": "RuntimeError: boom"},
               {"backend": "cuda-bf16", "skipped": "no GPU"}]
    for r in results:
        r["verdict"] = compare(ref, r)
    headers, rows = table_rows(ref, results, ["dense"])
    assert headers[-1] == "pass" and len(headers) == 6 + 6 + 1
    assert all(len(row) == len(headers) for row in rows)
    assert rows[0][0] == "torch" and rows[0][-1] == "reference" and rows[0][7] == ""
    assert rows[1][:2] == ["onnx", "0.9950"] and rows[1][5:8] == ["?/0", "0.6550", "+0.0050"] and rows[1][-1] == "pass"
    assert rows[2][1].startswith("failed: RuntimeError") and rows[2][-1] == "FAIL"
    assert rows[3][1] == "skipped: no GPU" and rows[3][-1] == "skip"


def test_cosine_stats():
    s = cosine_stats([[1.0, 0.0], [1.0, 1.0]], [[2.0, 0.0], [1.0, 0.0]])
    assert s["n"] == 2 and s["min"] == 0.7071067811865475 and s["below_0.99"] == 1
