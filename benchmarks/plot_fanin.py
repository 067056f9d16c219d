"""Draw the scaled fan-in ceiling: one cluster's completion rate by consumers, both versions.

Reads ``results/fanin-ceiling.json`` (``fanin.py --mode ceiling``) and writes
``docs/fanin-ceiling.png``; a run that did not end is drawn hollow.

    .venv/bin/python benchmarks/plot_fanin.py [--results benchmarks/results] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _common import RESULTS

DOCS_PNG = Path(__file__).resolve().parent.parent / "docs" / "fanin-ceiling.png"
LABELS = {"earlier": "0.1: one counter item", "this": "counter shards, one transaction a batch"}
COLOURS = {"earlier": "#d62728", "this": "#1f77b4"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--out", type=Path, default=DOCS_PNG)
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads((args.results / "fanin-ceiling.json").read_text())
    budget = data["budget_wcu_per_item_s"]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    for variant in ("earlier", "this"):
        rows = sorted(
            (r for r in data["rows"] if r["variant"] == variant), key=lambda r: r["consumers"]
        )
        xs = [r["consumers"] for r in rows]
        ys = [r["tasks_per_s"] for r in rows]
        ax.plot(xs, ys, color=COLOURS[variant], label=LABELS[variant])
        for r in rows:
            face = COLOURS[variant] if r["ended"] else "white"
            ax.plot(r["consumers"], r["tasks_per_s"], "o", color=COLOURS[variant], mfc=face)
    ax.axhline(budget / 2, color="#d62728", linestyle=":", linewidth=1)
    ax.annotate(
        f"one counter's cap at {budget:g} WCU/s: {budget / 2:g} tasks/s",
        (1, budget / 2),
        textcoords="offset points",
        xytext=(4, 4),
        fontsize=8,
    )
    ax.set_xscale("log", base=2)
    ax.set_xticks([r["consumers"] for r in data["rows"] if r["variant"] == "this"])
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel("consumers (each its own client)")
    ax.set_ylabel("tasks completed per second")
    ax.set_title(
        f"One cluster of {data['rows'][0]['tasks']} tasks, {budget:g} WCU/s per item"
        " (hollow: never ended)",
        fontsize=10,
    )
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, loc="center right")
    fig.tight_layout()
    fig.savefig(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
