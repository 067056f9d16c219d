"""Draw the fan-out results as one PNG: tasks/s by concurrency, library vs floor vs naive.

Left: on the local server (moto), one line per variant and size. Middle: against the latency
server (every request answered after a fixed delay), where concurrency pays. Right: client CPU
per task, library vs floor, in both settings. Reads ``fanout-*.json`` from ``--results``.

    .venv/bin/python benchmarks/plot.py [--results benchmarks/results] [--out docs/benchmarks.png]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from _common import RESULTS

DOCS_PNG = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.png"
COLOURS = {"library": "#1f77b4", "floor": "#2ca02c", "naive": "#d62728"}


def load(results: Path) -> list[dict[str, Any]]:
    """Every fan-out result (with a summary) in ``results``."""
    found = []
    for path in sorted(results.glob("fanout-*.json")):
        data = json.loads(path.read_text())
        if data.get("benchmark") == "fanout" and "summary" in data:
            found.append(data)
    return found


def series(
    runs: list[dict[str, Any]], latency: bool
) -> dict[tuple[str, int], list[tuple[int, float, float]]]:
    """(variant, N) -> sorted [(concurrency, tasks/s, client CPU us/task)]."""
    latest: dict[tuple[str, int, int], tuple[str, float, float]] = {}
    for run in runs:  # a later run of the same variant, N and C replaces an earlier one
        if (run.get("latency_ms") is not None) != latency:
            continue
        for variant, s in run["summary"].items():
            key = (variant, run["tasks"], run["concurrency"])
            value = (run.get("started", ""), s["tasks_per_s"], s["client_cpu_us_per_task"])
            if key not in latest or value[0] >= latest[key][0]:
                latest[key] = value
    out: dict[tuple[str, int], list[tuple[int, float, float]]] = defaultdict(list)
    for (variant, tasks, conc), (_, rate, cpu) in latest.items():
        out[(variant, tasks)].append((conc, rate, cpu))
    return {k: sorted(v) for k, v in out.items()}


def draw(runs: list[dict[str, Any]], out: Path) -> None:
    """Three panels side by side, saved as ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 5.2))
    local, fake = series(runs, latency=False), series(runs, latency=True)
    delays = sorted({r["latency_ms"] for r in runs if r.get("latency_ms") is not None})
    panels: list[tuple[Any, dict[tuple[str, int], list[tuple[int, float, float]]], str]] = [
        (axes[0], local, "Fan-out on the local server (moto)"),
        (axes[1], fake, f"Fan-out, latency server ({', '.join(f'{d:g}' for d in delays)} ms)"),
    ]
    for ax, data, title in panels:
        for (variant, tasks), points in sorted(data.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            style = "-" if tasks >= 10_000 else "--"
            ax.plot(
                [p[0] for p in points],
                [p[1] for p in points],
                style,
                marker="o",
                color=COLOURS.get(variant, "grey"),
                label=f"{variant}, N={tasks:,}",
            )
        ax.set_xscale("log", base=2)
        ticks = sorted({p[0] for points in data.values() for p in points})
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("concurrency (max_concurrency / semaphore slots)")
        ax.set_ylabel("tasks/s (median)")
        ax.set_title(title)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        if data:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no results", ha="center", transform=ax.transAxes)
    ax = axes[2]
    labels, lib_cpu, floor_cpu = [], [], []
    for name, data in (("moto", local), ("latency", fake)):
        for (variant, tasks), points in sorted(data.items()):
            if variant != "library" or ("floor", tasks) not in data:
                continue
            floor = dict((p[0], p[2]) for p in data[("floor", tasks)])
            for conc, _, cpu in points:
                if conc in floor:
                    labels.append(f"{name} {tasks / 1000:g}k C{conc}")
                    lib_cpu.append(cpu)
                    floor_cpu.append(floor[conc])
    xs = range(len(labels))
    ax.bar([x - 0.2 for x in xs], floor_cpu, 0.4, color=COLOURS["floor"], label="floor")
    ax.bar([x + 0.2 for x in xs], lib_cpu, 0.4, color=COLOURS["library"], label="library")
    ax.set_xticks(list(xs), labels, fontsize=8, rotation=45, ha="right")
    ax.set_ylabel("client CPU µs per task (median)")
    ax.set_title("Client CPU per task")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle("sqs-cluster create_message_cluster vs raw aiobotocore floor vs naive boto3")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    """Read the results, draw, report where the PNG went."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of JSON results")
    parser.add_argument("--out", type=Path, default=DOCS_PNG, help="PNG to write")
    args = parser.parse_args()
    runs = load(args.results)
    draw(runs, args.out)
    print(f"{len(runs)} fan-out results plotted to {args.out}")


if __name__ == "__main__":
    main()
