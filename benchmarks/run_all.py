"""Run every benchmark one after the other, then draw the plot (``nox -s bench`` runs this).

``--quick`` runs small sizes (under 2 minutes on an idle 2-core machine) and writes to
``results/quick/`` so it never overwrites full results; without it, the full sizes of the
issue run (hours on a small machine: fan-out N in {1k, 10k, 100k} x C in {1, 8, 32, 64}) and
write to ``results/`` and ``docs/benchmarks.png``. Each step runs in its own process, one at a
time, with its own progress display; a step line with the elapsed time precedes it.

    .venv/bin/python benchmarks/run_all.py --quick
    .venv/bin/python benchmarks/run_all.py --only fanout latency
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from _common import RESULTS

HERE = Path(__file__).resolve().parent
DOCS_PNG = HERE.parent / "docs" / "benchmarks.png"
GROUPS = ("fanout", "latency", "processing", "coldstart", "facade")


def plan(quick: bool, out: Path) -> list[tuple[str, list[str]]]:
    """(group, argv) of every step, in order."""
    steps: list[tuple[str, list[str]]] = []
    if quick:
        fan = [(300, c, 1) for c in (8, 32)]
        lat = [(1000, c, 1) for c in (1, 8, 64)]
        naive_max, proc, rounds, calls = 300, 50, 5, 200
    else:
        fan = [
            (n, c, 3 if n < 100_000 else 1) for n in (1000, 10_000, 100_000) for c in (1, 8, 32, 64)
        ]
        lat = [(10_000, c, 3) for c in (1, 8, 32, 64)] + [(100_000, c, 1) for c in (32, 64)]
        naive_max, proc, rounds, calls = 10_000, 10_000, 15, 1000
    for n, c, repeat in fan:
        argv = ["fanout.py", "--tasks", str(n), "--concurrency", str(c), "--repeat", str(repeat)]
        argv += ["--naive-max-tasks", str(naive_max), "--json", str(out / f"fanout-{n}-{c}.json")]
        steps.append(("fanout", argv + (["--no-warmup"] if quick else [])))
    for n, c, repeat in lat:
        name = f"fanout-latency20ms-{n}-{c}.json"
        argv = ["fanout.py", "--latency-ms", "20", "--tasks", str(n), "--concurrency", str(c)]
        argv += ["--repeat", str(repeat), "--no-naive", "--json", str(out / name)]
        steps.append(("latency", argv + (["--no-warmup"] if quick else [])))
    steps.append(("processing", ["processing.py", "--tasks", str(proc), "--pollers", "4"]))
    steps[-1][1].extend(["--json", str(out / f"processing-{proc}-4.json")])
    steps.append(("coldstart", ["coldstart.py", "--rounds", str(rounds)]))
    steps[-1][1].extend(["--json", str(out / "coldstart.json")])
    steps.append(("facade", ["facade.py", "--calls", str(calls), "--rounds", "3"]))
    steps[-1][1].extend(["--json", str(out / "facade.json")])
    return steps


def main() -> None:
    """Run the chosen steps, stop at the first failure, then plot."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, results/quick/")
    parser.add_argument("--only", nargs="+", choices=GROUPS, help="run only these groups")
    parser.add_argument("--out", type=Path, help="results folder (default by mode)")
    args = parser.parse_args()
    out = args.out or (RESULTS / "quick" if args.quick else RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    steps = [s for s in plan(args.quick, out) if not args.only or s[0] in args.only]
    started = time.monotonic()
    for number, (group, argv) in enumerate(steps, 1):
        elapsed = time.monotonic() - started
        print(
            f"[{number}/{len(steps)} {elapsed:5.0f} s] {group}: {' '.join(argv)}",
            file=sys.stderr,
            flush=True,
        )
        subprocess.run([sys.executable, str(HERE / argv[0]), *argv[1:]], check=True)
    png = out / "benchmarks.png" if args.quick or args.out else DOCS_PNG
    subprocess.run(
        [sys.executable, str(HERE / "plot.py"), "--results", str(out), "--out", str(png)],
        check=True,
    )
    print(f"all done in {time.monotonic() - started:.0f} s; JSON in {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
