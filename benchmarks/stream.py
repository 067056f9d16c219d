"""Benchmark (not a test): ``create_message_cluster`` over a stream of 10,000 to 1,000,000 tasks.

Each size runs in a fresh process against the latency server (every request answered after
``--latency-ms``; nothing stored, so a million tasks fit), with the tasks given as a
generator. 10,000 tasks are read whole first (below ``Config.stream_tasks_above``); the larger
sizes are fanned out as they are read. Measured per size: wall time and client CPU per task,
AWS requests per task, and the child's peak RSS. The claims checked: peak RSS of the 1,000,000
task create within 1.2x that of the 10,000 task one, and time per task flat.

    .venv/bin/python benchmarks/stream.py --sizes 10000 100000 1000000 --latency-ms 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _common import (
    REGION,
    RESULTS,
    console,
    median,
    peak_rss_mib,
    per_task,
    result_header,
    run_child,
    setup_env,
    write_json,
)

GLOBALS = {"run": "stream-benchmark"}


def tasks(count: int) -> Iterator[dict[str, Any]]:
    """Small JSON tasks, made as they are read: the stream never exists as a list."""
    for i in range(count):
        yield {"item": i, "name": f"task-{i:07d}", "weight": i % 7}


async def create(endpoint: str, count: int, concurrency: int) -> dict[str, Any]:
    from sqs_cluster import Config, MessageClient

    config = Config(
        table="bench-stream",
        bucket="bench-stream",
        region=REGION,
        endpoint_url=endpoint,
        max_concurrency=concurrency,
    )
    queue_url = f"{endpoint}/000000000000/stream-{count}"
    async with MessageClient(config) as client:
        wall, cpu = time.perf_counter(), time.process_time()
        await client.create_message_cluster(queue_url, tasks(count), globals=GLOBALS)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        counts = dict(client.request_counts)
    return {"wall": wall, "cpu": cpu, "requests": counts, "rss_mib": peak_rss_mib()}


def summarise(size: int, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of a size's runs (the largest peak RSS), per task."""
    requests: dict[str, int] = runs[0]["requests"]
    return {
        "runs": len(runs),
        "wall_s": round(median([r["wall"] for r in runs]), 2),
        "wall_us_per_task": round(median([r["wall"] for r in runs]) / size * 1e6, 1),
        "client_cpu_us_per_task": round(median([r["cpu"] for r in runs]) / size * 1e6, 1),
        "requests_per_task": round(sum(requests.values()) / size, 4),
        "requests_per_task_by_op": per_task(requests, size),
        "peak_rss_mib": max(r["rss_mib"] for r in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--latency-ms", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--json", help="result path (default results/stream.json)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        setup_env()
        print(json.dumps(asyncio.run(create(args.endpoint, args.child, args.concurrency))))
        return
    from latency_server import LatencyServer

    started = time.time()
    runs: list[tuple[int, dict[str, Any]]] = []
    with LatencyServer(args.latency_ms) as fake:
        for size in args.sizes:  # a size given twice runs twice: its medians are reported
            argv = [__file__, "--child", str(size), "--endpoint", fake.endpoint]
            argv += ["--concurrency", str(args.concurrency)]
            run = run_child(argv, lambda n: None)
            runs.append((size, run))
            wall_us, cpu_us = run["wall"] / size * 1e6, run["cpu"] / size * 1e6
            console().print(
                f"{size:>9} tasks: {run['wall']:.1f} s wall, {wall_us:.0f} us/task, "
                f"{cpu_us:.0f} us CPU/task, peak RSS {run['rss_mib']} MiB"
            )
    summary = {size: summarise(size, [r for n, r in runs if n == size]) for size, _ in runs}
    smallest, largest = min(summary), max(summary)
    ratios = {
        f"{name} {largest}/{smallest}": round(summary[largest][key] / summary[smallest][key], 3)
        for name, key in (
            ("peak RSS", "peak_rss_mib"),
            ("wall per task", "wall_us_per_task"),
            ("client CPU per task", "client_cpu_us_per_task"),
        )
    }
    for name, value in ratios.items():
        console().print(f"  {name}: {value}x")
    result = {
        **result_header("stream", started),
        "latency_ms": args.latency_ms,
        "concurrency": args.concurrency,
        "summary": summary,
        "ratios": ratios,
    }
    path = args.json or str(RESULTS / "stream.json")
    write_json(Path(path), result)
    console().print(f"results written to {path}")


if __name__ == "__main__":
    main()
