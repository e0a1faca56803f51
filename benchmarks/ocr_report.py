"""The OCR benchmark's Markdown report (benchmarks/ocr_bench.py): per-variant tables, RapidOCR, retrieval, the
scanned Bundesgesetzblatt page and the issue's targets, met or missed by how much."""

from __future__ import annotations

from benchmarks.common import markdown_table

UMLAUTS = "äöüÄÖÜß§"  # the characters whose error rate is reported apart
TARGETS = {"clean_300_cer": 0.02, "clean_300_umlaut_cer": 0.02, "degraded_300_cer": 0.05,
           "retrieval_mrr5_gap": 0.02, "pages_per_s": 0.5}

def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f} %"


def variant_table(rows: dict[str, dict]) -> str:
    body = [[v, r["pages"], pct(r["cer"]), pct(r["wer"]), pct(r["umlaut_cer"]), f"{r['umlaut_errors']}/{r['umlauts']}",
             pct(r["umlaut_cer_without_section_sign"]),
             pct(r["law"]["cer"]), pct(r["news"]["cer"]), r.get("pages_per_s", "n/a"), r.get("mean_confidence", "n/a")]
            for v, r in rows.items()]
    return markdown_table(["variant", "pages", "CER", "WER", "umlaut CER", "umlaut errors", "umlaut CER without §",
                           "CER law", "CER news",
                           "pages/s", "mean conf."], body)


def targets(result: dict) -> list[list[object]]:
    rows = result["tesseract"]["variants"]

    def worst(prefix: str, key: str) -> float:  # over the fonts
        return max(r[key] or 0.0 for v, r in rows.items() if v.startswith(prefix + " "))

    out: list[list[object]] = []
    for label, got, limit in (("clean 300 dpi CER <= 2 %", worst("300dpi clean", "cer"), 0.02),
                              ("clean 300 dpi umlaut CER <= 2 %", worst("300dpi clean", "umlaut_cer"), 0.02),
                              ("degraded 300 dpi CER <= 5 %", worst("300dpi degraded", "cer"), 0.05)):
        out.append([label, f"{pct(got)} (worse font)", "met" if got <= limit else f"missed by {pct(got - limit)}"])
    retrieval = result.get("retrieval")
    if retrieval:
        born = retrieval["copies"]["born-digital"]["modes"]
        for name, copy in retrieval["copies"].items():
            if name == "born-digital":
                continue
            gap = max(born[m]["mrr_at_5"] - copy["modes"][m]["mrr_at_5"] for m in born)
            out.append([f"{name}: MRR@5 within 0.02 of born-digital", f"largest drop {gap:+.4f}",
                        "met" if gap <= TARGETS["retrieval_mrr5_gap"] else f"missed by {gap - 0.02:.4f}"])
    speed = result["tesseract"]["pages_per_s"]
    out.append([">= 0.5 pages/s on 2 cores (all pages, 300 and 150 dpi)", f"{speed:.3f}",
                "met" if speed >= 0.5 else f"missed by {0.5 - speed:.3f}"])
    speed300 = min(r["pages_per_s"] for v, r in rows.items() if v.startswith("300dpi") and "+" not in v)
    out.append([">= 0.5 pages/s on 2 cores (slowest 300 dpi variant)", f"{speed300:.3f}",
                "met" if speed300 >= 0.5 else f"missed by {0.5 - speed300:.3f}"])
    return out


def markdown(result: dict) -> str:
    tess = result["tesseract"]
    parts = [f"Command: `{result['command']}`", "",
             f"OCR seam: {result['seam']}; tesseract {result['tesseract_version']} `deu`, OSD then `--psm 3`; "
             f"{result['workers']} pages in flight, OMP_THREAD_LIMIT={result['tesseract_threads']} per tesseract. "
             f"{tess['pages']} pages ({result['pages_per_variant']} per variant: law sections and 10kgnad news), "
             f"A4, 11 pt DejaVu, seed {result['seed']}. CER/WER: Levenshtein on whitespace-normalised text; "
             f"umlaut CER: share of {UMLAUTS} in the ground truth that the alignment pairs with another character "
             "or with nothing.", "", "## Tesseract", "", variant_table(tess["variants"]), "",
             f"All pages: {tess['pages_per_s']} pages/s ({tess['wall_s']} s wall).", ""]
    rapid = result.get("rapidocr")
    parts += ["## RapidOCR", ""]
    if rapid is None:
        parts += ["Not run (no `--rapidocr-python`).", ""]
    elif "error" in rapid:
        parts += [f"Could not run: {rapid['error']}", ""]
    else:
        parts += [f"rapidocr {rapid['version']} with its bundled weights (onnxruntime, CPU).", "",
                  variant_table(rapid["variants"]), "", f"All pages: {rapid['pages_per_s']} pages/s.", ""]
    if result.get("retrieval"):
        ret = result["retrieval"]
        rows = []
        for name, copy in ret["copies"].items():
            for mode, m in copy["modes"].items():
                rows.append([name, mode, f"{m['mrr_at_5']:.4f}", f"{m['recall_at_5']:.4f}", f"{m['ndcg_at_10']:.4f}"])
        ocr_rows = [[k, pct(v["cer"]), pct(v["umlaut_cer"]), v["ocr_wall_s"]] for k, v in ret["ocr_scores"].items()]
        parts += ["## Retrieval: OCR'd copy against born-digital", "",
                  f"xquad-de, MiniLM; corpus: all {copy['documents']} contexts, of which the first "
                  f"{ret['ocr_contexts']} are rendered (serif, one page each) and replaced by their OCR text in the "
                  f"OCR'd copies; {copy['queries']} questions (those of the OCR'd contexts). Gold is the question's "
                  "document, whatever text it holds.", "", markdown_table(["copy", "mode", "MRR@5", "recall@5",
                                                                            "nDCG@10"], rows), "",
                  "OCR quality of those contexts:", "", markdown_table(["copy", "CER", "umlaut CER", "OCR s"],
                                                                       ocr_rows), ""]
    if result.get("bgbl"):
        b = result["bgbl"]
        parts += ["## Scanned Bundesgesetzblatt page", "",
                  f"`{b['pdf']}` page 1 at 300 dpi against the manual transcription `{b['truth']}` "
                  f"({b['truth_chars']} characters): the title line and the first rows of the form's text column. "
                  f"Page confidence {b['page_confidence']}, OSD rotation {b['page_rotation']}, {b['page_s']} s.", "",
                  markdown_table(["how", "CER", "WER", "umlaut CER", "umlaut errors"],
                                 [[k, pct(b[k]["cer"]), pct(b[k]["wer"]), pct(b[k]["umlaut_cer"]),
                                   f"{b[k]['umlaut_errors']}/{b[k]['umlauts']}"]
                                  for k in ("crop", "page_best_window")]),
                  "", "crop: the transcribed regions cut out and OCR'd alone; page_best_window: the whole page OCR'd, "
                  "scored on the stretch of its text that best matches the transcription.", ""]
    parts += ["## Targets (issue #14)", "", markdown_table(["target", "measured", "verdict"], targets(result))]
    return "\n".join(parts)
