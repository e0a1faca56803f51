"""Markdown tables for docs/eval/variants.md from `benchmarks.variants_eval` reports made before and after a
change: `python -m benchmarks.variants_table BEFORE.json AFTER.json` (one dataset per pair)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

SETS = ("original", "gender", "orthography", "abbreviations", "all")


def table(before: dict, after: dict) -> str:
    """One row per mode and analyzer; MRR@5 of each query set over the report's queries, then the set's
    MRR@5 over only the queries its rule changed (original -> variant)."""
    scope = "queries some rule changes" if after.get("only_changed") else "all queries"
    lines = [f"{after['dataset']}: {after['queries']} queries ({scope}); changed per rule: "
             + ", ".join(f"{k} {v}" for k, v in after["changed"].items()), "",
             "| mode | analyzer | " + " | ".join(SETS) + " | " + " | ".join(f"{s} changed only" for s in SETS[1:])
             + " |", "|" + "---|" * (2 + 2 * len(SETS) - 1)]
    for mode in after["modes"]:
        for label, report in (("before", before), ("after", after)):
            row = report["modes"][mode]
            changed = [f"{row[f'{s} (changed only, original)']:.4f} → {row[f'{s} (changed only, variant)']:.4f}"
                       for s in SETS[1:]]
            lines.append(f"| {mode} | {label} | " + " | ".join(f"{row[s]:.4f}" for s in SETS) + " | "
                         + " | ".join(changed) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    b, a = (json.loads(Path(p).read_text(encoding="utf-8")) for p in sys.argv[1:3])
    print(table(b, a))
