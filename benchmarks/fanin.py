"""Benchmark (not a test): fan-in of one cluster, this version against an earlier one, side by side.

Two measurements, each run by both versions in turn on one local server (the earlier one is
``git archive``d from ``--old-rev`` into a temporary folder and imported from there, in a child
process of its own; both use only the public API and the Lambda event shape):

* ``rtt``: the sequential round trips ``safe_process_batch`` adds to a batch of 10 tasks: the
  longest chain of its DynamoDB requests in which each starts after the one before it ended
  (botocore's ``before-call`` / ``after-call`` events). Also its wall time with every request
  delayed by ``--delay-ms`` (an async ``before-send`` hook) and without.
* ``ceiling``: the completion rate of one cluster of ``--tasks`` tasks with 1, 2, 4 ... consumers
  (``--consumers``), each its own client, on a local server that gives every DynamoDB item a
  write budget of ``--budget`` write units per second (DynamoDB: 1,000), answering throttling
  as DynamoDB does past it. The rate is tasks divided by the time from the first receive to the
  completion callback.

    .venv/bin/python benchmarks/fanin.py --mode rtt
    .venv/bin/python benchmarks/fanin.py --mode ceiling --budget 10 --tasks 600 --consumers 1 2 4 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _common import REGION, RESULTS, console, machine, result_header, setup_env, write_json

ROOT = Path(__file__).resolve().parent.parent
OLD_REV = "cb01f35"
"""The last commit counting every task on one counter item (a transaction per task)."""


@contextmanager
def old_source(rev: str) -> Iterator[Path]:
    """``src/`` of ``rev``, extracted into a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="fanin-old-") as tmp:
        archive = Path(tmp) / "src.tar"
        subprocess.run(
            ["git", "-C", str(ROOT), "archive", "-o", str(archive), rev, "src"], check=True
        )
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        yield Path(tmp) / "src"


def child(variant: str, src: Path, argv: list[str], script: str = __file__) -> dict[str, Any]:
    """Run ``script``'s child part (``--child``) with ``src`` first on the path; its JSON
    answer."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run(
        [sys.executable, script, "--child", *argv],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{variant} child failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return {"variant": variant, **result}


# -- the child: one version, one measurement ---------------------------------------------------


async def open_resources(endpoint: str, visibility: int = 60) -> tuple[Any, str]:
    """A fresh table, bucket and queue on the server; the Config and the queue URL."""
    from sqs_cluster import Config, ensure_resources

    suffix = uuid.uuid4().hex[:10]
    config = Config(
        table=f"fanin-{suffix}", bucket=f"fanin-{suffix}", region=REGION, endpoint_url=endpoint
    )
    made = await ensure_resources(
        config, queue_name=f"fanin-{suffix}", visibility_timeout=visibility
    )
    return config, str(made.queue_url)


async def receive(client: Any, queue_url: str) -> list[dict[str, Any]]:
    resp = await client._aws.sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=10,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
        WaitTimeSeconds=1,
    )
    return list(resp.get("Messages", []))


def event_of(messages: list[dict[str, Any]], queue_url: str) -> dict[str, Any]:
    from sqs_cluster._messages.lambda_shape import lambda_event

    return lambda_event(messages, queue_url=queue_url, region=REGION)


def chain_depth(spans: list[tuple[float, float]]) -> int:
    """The longest chain of requests each started after the one before it ended: the round
    trips on the critical path, whatever ran alongside them."""
    depth: list[int] = []
    ordered = sorted(spans)
    for i, (start, _) in enumerate(ordered):
        before = [depth[j] for j in range(i) if ordered[j][1] <= start]
        depth.append(1 + max(before, default=0))
    return max(depth, default=0)


async def child_rtt(endpoint: str, delay_ms: float, batches: int) -> dict[str, Any]:
    """Round trips on a 10-task batch's critical path, and its wall time with and without
    ``delay_ms`` added to every request."""
    from aiobotocore.session import AioSession

    from sqs_cluster import MessageClient

    delay = {"s": 0.0}
    spans: list[tuple[float, float]] = []

    async def slow(**_: Any) -> None:
        if delay["s"]:
            await asyncio.sleep(delay["s"])

    def started(context: Any, **_: Any) -> None:
        context["bench_started"] = time.perf_counter()

    def ended(context: Any, **_: Any) -> None:
        if "bench_started" in context:
            spans.append((context["bench_started"], time.perf_counter()))

    session = AioSession()
    session.register("before-send", slow)
    session.register("before-call.dynamodb", started)
    session.register("after-call.dynamodb", ended)
    config, queue_url = await open_resources(endpoint)
    async with MessageClient(config, session=session) as client:
        await client.create_message_cluster(
            queue_url, [{"i": i} for i in range(10 * (2 * batches + 1))], omit_globals=True
        )
        times: dict[str, list[float]] = {"plain": [], "delayed": []}
        depths: list[int] = []
        requests: list[int] = []
        for n in range(2 * batches + 1):
            messages: list[dict[str, Any]] = []
            while len(messages) < 10:
                messages += await receive(client, queue_url)
            event = event_of(messages[:10], queue_url)
            name = "delayed" if n % 2 else "plain"
            delay["s"] = delay_ms / 1000 if name == "delayed" else 0.0
            before = sum(client.request_counts.values())
            spans.clear()
            began = time.perf_counter()
            response = await client.safe_process_batch(event, lambda m: None)
            elapsed = time.perf_counter() - began
            delay["s"] = 0.0
            assert response == {"batchItemFailures": []}, response
            if n:  # the first batch warms the client (table check, queue attributes)
                times[name].append(elapsed)
                depths.append(chain_depth(spans))
                requests.append(sum(client.request_counts.values()) - before)
            await client._aws.sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages[:10])
                ],
            )
    return {
        "round_trips": statistics.median(depths),
        "round_trips_max": max(depths),
        "plain_s": round(statistics.median(times["plain"]), 4),
        "delayed_s": round(statistics.median(times["delayed"]), 4),
        "requests_per_batch": statistics.median(requests),
    }


async def child_ceiling(
    endpoint: str, tasks: int, consumers: int, deadline: float
) -> dict[str, Any]:
    """Completion rate of one cluster drained by ``consumers`` clients: all its tasks over the
    time to its callback, or, when it has not ended by ``deadline`` seconds (its tasks were
    dead-lettered, say), the tasks counted by then over that time."""
    from sqs_cluster import MessageClient

    # a short visibility timeout: a delivery that failed (throttled past its retries) is back
    # in seconds, as a Lambda function's would be with a timeout of a few seconds
    config, queue_url = await open_resources(endpoint, visibility=10)
    done = asyncio.Event()
    calls: list[int] = []

    async def callback(cluster: Any, get_globals: Any) -> None:
        calls.append(cluster.completed)
        done.set()

    async with MessageClient(config) as producer:
        key = await producer.create_message_cluster(
            queue_url, [{"i": i} for i in range(tasks)], omit_globals=True
        )
    first: list[float] = []
    failures = [0]
    counts: dict[str, int] = {}

    async def consume() -> None:
        async with MessageClient(config) as client:
            while not done.is_set():
                messages = await receive(client, queue_url)
                if not messages:
                    continue
                first.append(time.perf_counter())
                response = await client.safe_process_batch(
                    event_of(messages, queue_url),
                    lambda m: None,
                    delete_succeeded=True,
                    on_cluster_complete=callback,
                )
                failures[0] += len(response["batchItemFailures"])
            for name, value in client.request_counts.items():
                counts[name] = counts.get(name, 0) + value

    running = asyncio.gather(*(consume() for _ in range(consumers)))
    try:
        await asyncio.wait_for(asyncio.shield(running), deadline)
    except asyncio.TimeoutError:
        done.set()  # the consumers stop after their batch in flight
        await running
    ended = time.perf_counter()
    async with MessageClient(config) as reader:
        cluster = await reader.get_message_cluster(key, consistent_read=True)
        dead = await reader._aws.sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["RedrivePolicy"]
        )
    seconds = ended - min(first)
    counted = cluster.completed + cluster.failed
    return {
        "consumers": consumers,
        "tasks": tasks,
        "ended": bool(calls),
        "counted": counted,
        "seconds": round(seconds, 2),
        "tasks_per_s": round(counted / seconds, 1),
        "redrive": json.loads(dead["Attributes"].get("RedrivePolicy", "{}")),
        "callbacks": len(calls),
        "completed": cluster.completed,
        "failed_deliveries": failures[0],
        "ddb_requests_per_task": round(
            sum(v for k, v in counts.items() if k.startswith("dynamodb.")) / tasks, 3
        ),
    }


def run_child(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--mode", required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--delay-ms", type=float, default=20)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=600)
    parser.add_argument("--consumers", type=int, default=1)
    parser.add_argument("--deadline", type=float, default=120)
    args = parser.parse_args(argv)
    setup_env()
    if args.mode == "rtt":
        result = asyncio.run(child_rtt(args.endpoint, args.delay_ms, args.batches))
    else:
        result = asyncio.run(
            child_ceiling(args.endpoint, args.tasks, args.consumers, args.deadline)
        )
    print(json.dumps(result))


# -- the parent --------------------------------------------------------------------------------


def main() -> None:
    if "--child" in sys.argv:
        run_child(sys.argv[1:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("rtt", "ceiling"), default="rtt")
    parser.add_argument("--old-rev", default=OLD_REV, help="the earlier version's commit")
    parser.add_argument("--delay-ms", type=float, default=20)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=600)
    parser.add_argument("--consumers", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--budget", type=float, default=10, help="WCU/s per item (ceiling)")
    parser.add_argument("--deadline", type=float, default=120, help="seconds per run at most")
    parser.add_argument("--json", help="result path (default results/fanin-<mode>.json)")
    args = parser.parse_args()
    setup_env()
    from sqs_cluster.local import LocalAWS

    started = time.time()
    budget = args.budget if args.mode == "ceiling" else None
    rows: list[dict[str, Any]] = []
    out = console()
    server = LocalAWS(item_write_budget=budget) if budget else LocalAWS()
    with old_source(args.old_rev) as old, server as aws:
        variants = {"earlier": old, "this": ROOT / "src"}
        common = ["--endpoint", aws.endpoint_url, "--mode", args.mode]
        if args.mode == "rtt":
            for name, src in variants.items():
                extra = ["--delay-ms", str(args.delay_ms), "--batches", str(args.batches)]
                rows.append(child(name, src, common + extra))
                out.print(rows[-1])
        else:
            for consumers in args.consumers:
                for name, src in variants.items():
                    extra = ["--tasks", str(args.tasks), "--consumers", str(consumers)]
                    extra += ["--deadline", str(args.deadline)]
                    rows.append(child(name, src, common + extra))
                    out.print(rows[-1])
    path = Path(args.json) if args.json else RESULTS / f"fanin-{args.mode}.json"
    write_json(
        path,
        {
            **result_header("fanin", started),
            "old_rev": args.old_rev,
            "budget_wcu_per_item_s": budget,
            "delay_ms": args.delay_ms if args.mode == "rtt" else None,
            "machine": machine(),
            "rows": rows,
        },
    )
    out.print(f"wrote {path}")


if __name__ == "__main__":
    main()
