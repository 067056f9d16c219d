"""Benchmark (not a test): cold start, i.e. import time and client construction.

Each measurement runs in a fresh interpreter, and the targets alternate round by round, so
drift on a shared machine hits them alike. Medians over ``--rounds``:

* import: ``import aiobotocore.session`` (the floor), ``import sqs_cluster``,
  ``import sqs_cluster.sync``, timed inside the interpreter (``time.perf_counter`` around the
  import) and as whole-process wall time (``python -c 'import X'``); ``python -c pass`` is the
  interpreter's own start.
* clients: three aiobotocore clients (SQS, DynamoDB, S3) created and entered, against
  ``MessageClient(config)`` created and entered (it creates the same three), both against the
  latency server (no request is made by either).

    .venv/bin/python benchmarks/coldstart.py --rounds 15
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import RESULTS, console, median, result_header, setup_env, write_json
from latency_server import LatencyServer

IMPORTS = {
    "python -c pass": "",
    "aiobotocore.session": "import aiobotocore.session",
    "sqs_cluster": "import sqs_cluster",
    "sqs_cluster.sync": "import sqs_cluster.sync",
}
TIMED = "import time; t = time.perf_counter(); {stmt}; print(time.perf_counter() - t)"

CLIENT_FLOOR = """
import asyncio, time
t0 = time.perf_counter()
from contextlib import AsyncExitStack
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
t1 = time.perf_counter()
async def main():
    conf = AioConfig(max_pool_connections=32, retries={{"mode": "standard", "max_attempts": 5}})
    session = get_session()
    async with AsyncExitStack() as stack:
        t = time.perf_counter()
        for service in ("sqs", "dynamodb", "s3"):
            await stack.enter_async_context(session.create_client(
                service, region_name="us-east-1", endpoint_url="{endpoint}", config=conf))
        return time.perf_counter() - t
print(t1 - t0, asyncio.run(main()))
"""

CLIENT_LIBRARY = """
import asyncio, time
t0 = time.perf_counter()
from sqs_cluster import Config, MessageClient
t1 = time.perf_counter()
async def main():
    config = Config(table="t", bucket="b", region="us-east-1", endpoint_url="{endpoint}",
                     max_concurrency=32)
    t = time.perf_counter()
    async with MessageClient(config):
        return time.perf_counter() - t
print(t1 - t0, asyncio.run(main()))
"""


def fresh(code: str) -> tuple[list[float], float]:
    """Run ``python -c code``; the numbers it printed and the whole process's wall time."""
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    wall = time.perf_counter() - started
    return [float(v) for v in out.split()], wall


def import_times(rounds: int, update: Any) -> dict[str, dict[str, float]]:
    """Median in-process import time and process wall per target, targets interleaved."""
    inner: dict[str, list[float]] = {name: [] for name in IMPORTS}
    whole: dict[str, list[float]] = {name: [] for name in IMPORTS}
    for n in range(rounds):
        for name, stmt in IMPORTS.items():
            values, wall = fresh(TIMED.format(stmt=stmt or "pass"))
            inner[name].append(values[0])
            whole[name].append(wall)
        update(n + 1)
    return {
        name: {
            "import_ms_median": round(median(inner[name]) * 1e3, 1),
            "import_ms_min": round(min(inner[name]) * 1e3, 1),
            "process_ms_median": round(median(whole[name]) * 1e3, 1),
        }
        for name in IMPORTS
    }


def client_times(rounds: int, endpoint: str, update: Any) -> dict[str, dict[str, float]]:
    """Median time to create and enter the clients (after the imports), floor vs library."""
    series: dict[str, list[tuple[float, float]]] = {"floor": [], "library": []}
    for n in range(rounds):
        for name, code in (("floor", CLIENT_FLOOR), ("library", CLIENT_LIBRARY)):
            values, _ = fresh(code.format(endpoint=endpoint))
            series[name].append((values[0], values[1]))
        update(n + 1)
    return {
        name: {
            "import_ms_median": round(median([v[0] for v in vals]) * 1e3, 1),
            "clients_ms_median": round(median([v[1] for v in vals]) * 1e3, 1),
        }
        for name, vals in series.items()
    }


def main() -> None:
    """Measure, print, save JSON."""
    from _common import progress_bar

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="fresh interpreters per target")
    parser.add_argument("--json", help="result path (default results/coldstart.json)")
    args = parser.parse_args()
    setup_env()
    started = time.time()
    with progress_bar("imports", args.rounds) as update:
        imports = import_times(args.rounds, update)
    with LatencyServer(0) as fake, progress_bar("clients", args.rounds) as update:
        clients = client_times(args.rounds, fake.endpoint, update)
    floor = imports["aiobotocore.session"]["import_ms_median"]
    ratios = {
        f"import {name} / aiobotocore.session": round(imports[name]["import_ms_median"] / floor, 3)
        for name in ("sqs_cluster", "sqs_cluster.sync")
    }
    ratios["clients library / floor"] = round(
        clients["library"]["clients_ms_median"] / clients["floor"]["clients_ms_median"], 3
    )
    for row in clients.values():
        row["import_and_clients_ms"] = round(row["import_ms_median"] + row["clients_ms_median"], 1)
    ratios["import + clients library / floor"] = round(
        clients["library"]["import_and_clients_ms"] / clients["floor"]["import_and_clients_ms"], 3
    )
    out = console()
    for name, row in imports.items():
        out.print(
            f"  {name:<22} import {row['import_ms_median']:7.1f} ms "
            f"(min {row['import_ms_min']:.1f}), process {row['process_ms_median']:.1f} ms"
        )
    for name, row in clients.items():
        out.print(
            f"  clients {name:<14} create + enter {row['clients_ms_median']:7.1f} ms, "
            f"with its imports {row['import_and_clients_ms']:7.1f} ms"
        )
    for name, value in ratios.items():
        out.print(f"  {name}: {value:.3f}x")
    path = Path(args.json) if args.json else RESULTS / "coldstart.json"
    write_json(
        path,
        {
            **result_header("coldstart", started),
            "rounds": args.rounds,
            "imports": imports,
            "clients": clients,
            "ratios": ratios,
        },
    )
    out.print(f"results written to {path}")


if __name__ == "__main__":
    main()
