"""Benchmark (not a test): the blocking facade's cost over the async API.

1,000 sequential ``get_message_record`` calls through ``sqs_cluster.sync.MessageClient`` and
through the async ``MessageClient``, in the same run, against the embedded local AWS. Each side
is warmed up first and measured in alternating rounds, so drift in the server hits both alike.
The goal is a ratio of at most 1.10.

    .venv/bin/python benchmarks/facade.py [--calls 1000] [--rounds 3] [--json PATH]

Writes ``results/facade.json`` (or ``--json``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from pathlib import Path

from _common import RESULTS, result_header, write_json

from sqs_cluster import Config, MessageClient, RecordKey, sync
from sqs_cluster.local import LocalAWS

GOAL = 1.10


async def time_async(config: Config, key: RecordKey, calls: int) -> float:
    """Seconds for ``calls`` awaited reads on one open async client (after a warm-up read)."""
    async with MessageClient(config) as client:
        await client.get_message_record(key)
        start = time.perf_counter()
        for _ in range(calls):
            await client.get_message_record(key)
        return time.perf_counter() - start


def time_sync(client: sync.MessageClient, key: RecordKey, calls: int) -> float:
    """Seconds for ``calls`` blocking reads through a warm facade."""
    client.get_message_record(key)
    start = time.perf_counter()
    for _ in range(calls):
        client.get_message_record(key)
    return time.perf_counter() - start


async def noop() -> None:
    """A coroutine that does nothing: the facade's fixed cost per call, without any I/O."""


async def time_async_noop(calls: int) -> float:
    """Seconds for ``calls`` awaited no-op coroutines."""
    start = time.perf_counter()
    for _ in range(calls):
        await noop()
    return time.perf_counter() - start


def time_sync_noop(client: sync.MessageClient, calls: int) -> float:
    """Seconds for ``calls`` no-op coroutines run through the facade's portal."""
    start = time.perf_counter()
    for _ in range(calls):
        client._call(noop)
    return time.perf_counter() - start


def main() -> None:
    """Alternate async and facade rounds, print the ratio, save JSON."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="result path (default results/facade.json)")
    args = parser.parse_args()
    started = time.time()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    with LocalAWS() as aws:
        name = f"bench-{uuid.uuid4().hex[:8]}"
        config = Config(table=name, region="us-east-1", endpoint_url=aws.endpoint_url)
        queue_url = sync.ensure_resources(config, queue_name=name).queue_url
        assert queue_url is not None
        async_times, sync_times = [], []
        with sync.MessageClient(config) as facade:
            key = facade.send_message(queue_url, {"hello": "world"})
            for _ in range(args.rounds):
                async_times.append(asyncio.run(time_async(config, key, args.calls)))
                sync_times.append(time_sync(facade, key, args.calls))
            hop = time_sync_noop(facade, args.calls) - asyncio.run(time_async_noop(args.calls))
    best_async, best_sync = min(async_times), min(sync_times)
    ratio = best_sync / best_async
    per_call = (best_sync - best_async) / args.calls * 1e6
    print(f"{args.calls} get_message_record calls, best of {args.rounds} rounds")
    print(f"  async API  {best_async:7.3f} s   ({best_async / args.calls * 1e3:.3f} ms/call)")
    print(f"  facade     {best_sync:7.3f} s   ({best_sync / args.calls * 1e3:.3f} ms/call)")
    print(f"  ratio      {ratio:7.3f}x  (goal <= {GOAL}x; facade overhead {per_call:.0f} us/call)")
    print(
        f"  medians    async {statistics.median(async_times):.3f} s, "
        f"facade {statistics.median(sync_times):.3f} s"
    )
    print(f"  floor      {hop / args.calls * 1e6:.0f} us/call through the facade with no I/O")
    path = Path(args.json) if args.json else RESULTS / "facade.json"
    write_json(
        path,
        {
            **result_header("facade", started),
            "calls": args.calls,
            "rounds": args.rounds,
            "server": "LocalAWS()",
            "async_s": [round(t, 4) for t in async_times],
            "facade_s": [round(t, 4) for t in sync_times],
            "async_ms_per_call_best": round(best_async / args.calls * 1e3, 3),
            "facade_ms_per_call_best": round(best_sync / args.calls * 1e3, 3),
            "facade_overhead_us_per_call": round(per_call, 1),
            "portal_hop_us_per_call": round(hop / args.calls * 1e6, 1),
            "ratios": {"facade/async": round(ratio, 3)},
        },
    )
    print(f"results written to {path}")


if __name__ == "__main__":
    main()
