"""The levers of issue #16 item 6, each measured on every collected study, chosen by cross-validation.

A configuration sets every lever at once (`Config`); `score` replays retrieval with it on one study
(benchmarks.hybrid_study) and returns MRR@5 per query. `cross_validate` chooses, per model, the
configuration of a grid that scores best on one data set and reports it on the other (and the reverse):
a figure is never from parameters tuned on the set it is reported on.

    python -m benchmarks.hybrid_levers /work/levers OUT.json   # folders <set>-<model> from hybrid_collect
"""

from __future__ import annotations

import itertools
import json
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from scipy import sparse

from benchmarks.hybrid_study import DEPTH, Bm25, Study, dbsf_norm, member, mrr_at_5, positions, top_lists


@dataclass(frozen=True)
class Config:
    mode: str = "hybrid"  # dense | bm25 | hybrid
    dense_weight: float = 0.3
    k1: float = 1.2
    b: float = 0.75
    avgdl: float | None = 100.0  # None: the corpus's own mean analyzed chunk length
    strip_bm25: bool = False  # question frame cut from the BM25 query
    strip_dense: bool = False  # ... and from the query the dense leg embeds
    prf_docs: int = 0  # RM3 feedback chunks (0: off)
    prf_terms: int = 20
    prf_weight: float = 0.3
    sentence: float = 0.0  # share of the best sentence cosine in a candidate's dense score
    agree_low: float | None = None  # adaptive fusion: dense weight at no top-10 agreement (None: fixed weight)
    agree_top: int = 10
    depth: int = DEPTH  # hits per leg: eval asks 100 (top_k); a query for 5 passages fuses 50 (fusion_candidates)
    norm: str = "dbsf"  # how each leg's scores are normalised before the weighted sum (hybrid_study.dbsf_norm)


class Replay:
    """Caches the expensive parts of one study (BM25 weights and scores, leg lists) across configurations."""

    def __init__(self, study: Study) -> None:
        self.study = study
        self.bm25 = Bm25(study.texts)
        self.encoded = {False: self.bm25.encode(study.queries), True: self.bm25.encode(study.stripped)}
        self._cache: dict[tuple, np.ndarray] = {}

    def _memo(self, key: tuple, make) -> np.ndarray:  # type: ignore[no-untyped-def]
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def bm25_scores(self, c: Config) -> np.ndarray:
        key = ("bm25", c.k1, c.b, c.avgdl, c.strip_bm25, c.prf_docs, c.prf_terms if c.prf_docs else 0,
               c.prf_weight if c.prf_docs else 0)
        return self._memo(key, lambda: self._bm25(c))

    def _bm25(self, c: Config) -> np.ndarray:
        weights = self._memo(("w", c.k1, c.b, c.avgdl), lambda: self.bm25.weights(c.k1, c.b, c.avgdl))
        queries = self.encoded[c.strip_bm25]
        first = self.bm25.scores(queries, weights) if not c.prf_docs else self.bm25_scores(replace(c, prf_docs=0))
        if not c.prf_docs:
            return first
        return self.bm25.scores(rm3(self.bm25, queries, first, c), weights)

    def dense_scores(self, c: Config) -> np.ndarray:
        s = self.study
        base = s.dense_stripped if c.strip_dense else s.dense
        if c.sentence == 0.0:
            return base
        return (1 - c.sentence) * base + c.sentence * s.sentence_max  # sentences scored against the asked query


def rm3(bm25: Bm25, queries: list[dict[int, float]], first: np.ndarray, c: Config) -> list[dict[int, float]]:
    """RM3 (Abdul-Jaleel et al. 2004): the relevance model of the top `prf_docs` chunks (each chunk's term
    distribution weighed by its share of the feedback scores), its `prf_terms` heaviest terms mixed into the
    query with weight `prf_weight` (the query's own terms share 1 - prf_weight)."""
    tf = bm25.tf.tocsr()
    rel = sparse.diags(1.0 / np.maximum(bm25.lengths, 1.0)) @ tf  # p(t | chunk)
    inverse = {col: tid for tid, col in bm25.vocab.items()}
    out = []
    top = top_lists(first, c.prf_docs, positive=True)
    for q, query in enumerate(queries):
        hits = top[q][top[q] >= 0]
        if len(hits) == 0 or not query:
            out.append(query)
            continue
        w = first[q, hits] / first[q, hits].sum()
        model = np.asarray((sparse.csr_matrix(w) @ rel[hits]).todense()).ravel()
        best = np.argsort(-model)[: c.prf_terms]
        total = model[best].sum()
        mixed = {t: (1 - c.prf_weight) * v / sum(query.values()) for t, v in query.items()}
        for col in best:
            tid = inverse[int(col)]
            mixed[tid] = mixed.get(tid, 0.0) + c.prf_weight * model[col] / total
        out.append(mixed)
    return out


def score(replay: Replay, c: Config) -> np.ndarray:
    """MRR@5 per query of the study under configuration `c`."""
    s = replay.study
    n = len(s.chunk_ids)
    if c.mode in ("bm25", "hybrid"):
        bm = replay.bm25_scores(c)
        bm_lists = top_lists(bm, c.depth, positive=True)
    if c.mode in ("dense", "hybrid"):
        de = replay.dense_scores(c)
        de_lists = top_lists(s.dense_stripped if c.strip_dense else s.dense, c.depth)  # the index finds by chunk vector
        if c.sentence:
            de_lists = _rescored(de, de_lists, bm_lists if c.mode == "hybrid" else de_lists)
    if c.mode == "bm25":
        return mrr_at_5(s, bm, member(bm_lists, n))
    if c.mode == "dense":
        return mrr_at_5(s, de, member(de_lists, n))
    weight = _weights(c, de_lists, bm_lists)
    fused = weight[:, None] * dbsf_norm(de, de_lists, c.norm) + dbsf_norm(bm, bm_lists, c.norm)
    best = np.minimum(positions(de_lists, n), positions(bm_lists, n))
    return mrr_at_5(s, fused, member(de_lists, n) | member(bm_lists, n), best)


def _rescored(scores: np.ndarray, dense: np.ndarray, other: np.ndarray) -> np.ndarray:
    """The dense leg over the fused candidates (both legs' chunks), ranked by the rescored dense value."""
    out = np.full_like(dense, -1)
    for q in range(len(dense)):
        cand = np.unique(np.concatenate([dense[q][dense[q] >= 0], other[q][other[q] >= 0]]))
        order = cand[np.argsort(-scores[q, cand], kind="stable")][: dense.shape[1]]
        out[q, : len(order)] = order
    return out


def _weights(c: Config, dense: np.ndarray, bm: np.ndarray) -> np.ndarray:
    """Dense weight per query: fixed, or from `agree_low` (no overlap of the legs' top chunks) rising linearly
    to `dense_weight` (the same top chunks)."""
    if c.agree_low is None:
        return np.full(len(dense), c.dense_weight)
    k = c.agree_top
    agree = np.asarray([len(set(d[:k]) & set(b[:k][b[:k] >= 0])) / k for d, b in zip(dense, bm, strict=True)])
    return c.agree_low + (c.dense_weight - c.agree_low) * agree


def grid(**axes: list) -> list[Config]:
    keys = list(axes)
    return [Config(**dict(zip(keys, values, strict=True))) for values in itertools.product(*axes.values())]


# The normalisation comes first: it decides how the legs' scores meet, and every later lever is measured on top
# of the unclipped DBSF it picked (docs/eval/hybrid.md), each with the dense weight free.
WEIGHTS = [0.2, 0.3, 0.5, 0.7]
FAMILIES: dict[str, list[Config]] = {
    "normalisation": grid(norm=["dbsf", "open", "minmax", "z"], dense_weight=[0.1, 0.2, 0.3, 0.5, 0.7, 1.0]),
    "dense weight": grid(norm=["open"], dense_weight=[0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0]),
    "bm25 k1/b": grid(norm=["open"], k1=[0.6, 0.9, 1.2, 1.5], b=[0.3, 0.5, 0.75, 0.9], avgdl=[100.0, None],
                      dense_weight=WEIGHTS),
    "question frame": grid(norm=["open"], strip_bm25=[False, True], strip_dense=[False, True], dense_weight=WEIGHTS),
    "prf (bm25 leg)": grid(norm=["open"], prf_docs=[0, 3, 5, 10], prf_terms=[10, 30], prf_weight=[0.2, 0.5],
                           dense_weight=WEIGHTS),
    "sentence dense": grid(norm=["open"], sentence=[0.0, 0.25, 0.5, 0.75, 1.0], dense_weight=WEIGHTS),
    "adaptive fusion": grid(norm=["open"], agree_low=[None, 0.0, 0.1, 0.2], dense_weight=[0.3, 0.5, 0.7, 1.0]),
    # the levers that held up on their own, together (sentence scoring and PRF are left out: see hybrid.md)
    "combined": grid(norm=["open"], dense_weight=[0.3, 0.4, 0.5, 0.6, 0.7], k1=[0.6, 0.9, 1.2], b=[0.3, 0.5, 0.75],
                     strip_bm25=[False, True], strip_dense=[False, True]),
}


def cross_validate(replays: dict[tuple[str, str], Replay], configs: list[Config]) -> dict:
    """Each configuration's MRR@5 on every study; per model, the choice on one set reported on the other (held
    out); and the one choice across both sets and both models (the default: a tuning figure on every cell)."""
    table: dict[str, dict] = {}
    for (name, model), replay in replays.items():
        table.setdefault(model, {})[name] = [float(score(replay, c).mean()) for c in configs]
    out: dict = {"models": {}}
    for model, sets in table.items():
        held = {}
        for tune, report in itertools.permutations(sorted(sets), 2):
            best = int(np.argmax(sets[tune]))
            held[report] = {"tuned_on": tune, "config": asdict(configs[best]), "mrr_at_5": sets[report][best]}
        out["models"][model] = {"grid": sets, "held_out": held}
    cells = [values for sets in table.values() for values in sets.values()]
    mean = np.mean(cells, axis=0)
    # The one choice: the best mean over every set and model among the configurations whose hybrid is at least
    # its better leg everywhere (the bm25 leg under the configuration's own BM25 settings); the best mean if none is.
    floors = np.asarray([[max(_leg(r, c, "dense"), _leg(r, c, "bm25")) for c in configs] for r in replays.values()])
    safe = np.all(np.asarray([table[m][n] for n, m in replays]) >= floors, axis=0)
    best = int(np.argmax(np.where(safe, mean, -1.0))) if safe.any() else int(np.argmax(mean))
    out["across"] = {"config": asdict(configs[best]), "never_below_best_leg": bool(safe[best]),
                     "mrr_at_5": {m: {n: v[best] for n, v in sets.items()} for m, sets in table.items()}}
    return out


def _leg(replay: Replay, c: Config, mode: str) -> float:
    if c.mode != "hybrid":
        return -1.0
    leg = replace(c, mode=mode) if mode == "bm25" else Config(mode="dense", strip_dense=c.strip_dense)
    return float(score(replay, leg).mean())


def legs(replays: dict[tuple[str, str], Replay]) -> dict:
    """MRR@5 of each leg alone at the shipped BM25 weights: hybrid must not fall below the better one."""
    return {f"{name} {model}": {mode: float(score(r, Config(mode=mode)).mean()) for mode in ("dense", "bm25")}
            for (name, model), r in replays.items()}


def main(root: Path, out: Path, families: list[str]) -> None:
    replays = {}
    for folder in sorted(p for p in root.iterdir() if (p / "study.npz").exists()):
        study = Study.load(folder)
        replays[(study.name, folder.name.split("-", 1)[1])] = Replay(study)
    report: dict = {"legs": legs(replays)}
    for family in families or list(FAMILIES):
        configs = FAMILIES[family]
        report[family] = {"configs": [asdict(c) for c in configs], **cross_validate(replays, configs)}
        print(family, json.dumps({m: v["held_out"] for m, v in report[family]["models"].items()}),
              json.dumps(report[family]["across"]))
        out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:])


def changed(config: dict) -> str:
    """The settings of `config` that differ from `Config()`'s, as `k=v` (`-` when none)."""
    base = asdict(Config())
    unused = {"prf_terms", "prf_weight"} if not config["prf_docs"] else set()
    unused |= {"agree_top"} if config["agree_low"] is None else set()
    return ", ".join(f"{k}={v}" for k, v in config.items() if k in base and v != base[k] and k not in unused) or "-"


def tables(report: dict) -> str:
    """Markdown: each family's held-out figures per model and its one choice across sets and models."""
    lines = ["| lever | model | set | tuned on | chosen | MRR@5 held out | one choice for all | MRR@5 (tuning) |",
             "|---|---|---|---|---|---|---|---|"]
    for family, rep in report.items():
        if family == "legs":
            continue
        across = rep["across"]
        for model, res in rep["models"].items():
            for name, held in sorted(res["held_out"].items()):
                lines.append(f"| {family} | {model} | {name} | {held['tuned_on']} | {changed(held['config'])} | "
                             f"{held['mrr_at_5']:.4f} | {changed(across['config'])} | "
                             f"{across['mrr_at_5'][model][name]:.4f} |")
    return "\n".join(lines)
