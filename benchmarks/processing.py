"""Benchmark (not a test): draining a cluster with local workers against a raw consumer.

Both sides run against one embedded local AWS (every write atomic, as on AWS), each on a
fresh queue holding ``--tasks`` messages (filled before the clock starts):

* ``library``: a cluster made by ``create_message_cluster``, drained by ``sqs_cluster.Worker``
  with ``--pollers`` pollers and a Lambda-style ``handler(event, context)`` that calls
  ``safe_process_batch`` (claim, run, complete and count each task, fan-in callback); the worker
  deletes what succeeded. The clock stops when the cluster's callback has run.
* ``raw``: the same number of pollers calling ReceiveMessage (10) and DeleteMessageBatch with
  aiobotocore directly, no DynamoDB at all: the floor of any SQS consumer on this server.

Reported: drain wall time, tasks/s, requests and DynamoDB writes per task, client CPU per task.

    .venv/bin/python benchmarks/processing.py --tasks 2000 --pollers 4
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import (
    REGION,
    RESULTS,
    HostLoad,
    console,
    peak_rss_mib,
    per_task,
    process_cpu_seconds,
    progress_bar,
    result_header,
    setup_env,
    write_json,
)
from cluster_e2e import WriteCounter

from sqs_cluster import (
    ClusterRecord,
    Config,
    MessageClient,
    Worker,
    WorkerOptions,
    ensure_resources,
)
from sqs_cluster.local import LocalAWS

GLOBALS: dict[str, Any] = {"run": "processing-benchmark"}


def make_tasks(count: int) -> list[dict[str, Any]]:
    """Small JSON tasks."""
    return [{"item": i, "name": f"task-{i:06d}"} for i in range(count)]


async def watch(
    done: asyncio.Event, count: Callable[[], int], update: Callable[[int], None]
) -> None:
    """Refresh the progress bar until ``done``."""
    while not done.is_set():
        update(count())
        await asyncio.sleep(0.5)
    update(count())


async def drain_library(
    config: Config, tasks: int, pollers: int, server_pid: int | None
) -> dict[str, Any]:
    """Fan out a cluster (untimed), then drain it with a Worker until the callback has run."""
    queue = (await ensure_resources(config, queue_name=f"lib-{uuid.uuid4().hex[:8]}")).queue_url
    assert queue is not None
    async with MessageClient(config) as creator:
        await creator.create_message_cluster(queue, make_tasks(tasks), globals=GLOBALS)
    done = asyncio.Event()
    handled = [0]
    callbacks: list[int] = []

    async with MessageClient(config) as client:
        writes = WriteCounter()
        writes.attach(client)

        async def work(message: Any) -> int:
            handled[0] += 1
            return int(message.task["item"])

        async def on_complete(cluster: ClusterRecord[Any, Any], get_globals: Any) -> None:
            callbacks.append(cluster.completed)
            done.set()

        async def handler(event: dict[str, Any], context: Any) -> Any:
            """What a Lambda function would do."""
            return await client.safe_process_batch(event, work, on_cluster_complete=on_complete)

        options = WorkerOptions(batch_size=10, concurrency=pollers, wait_seconds=1)
        worker = Worker(client, queue, handler, options)
        load = HostLoad()
        load.start()
        server_cpu = process_cpu_seconds(server_pid)
        wall, cpu = time.perf_counter(), time.process_time()
        with progress_bar(f"library: drain {tasks}", tasks) as update:
            watcher = asyncio.ensure_future(watch(done, lambda: handled[0], update))
            running = asyncio.ensure_future(worker.run())
            await done.wait()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            worker.stop()
            stats = await running
            await watcher
        server_after = process_cpu_seconds(server_pid)
        requests = Counter(client.request_counts)
    return {
        "variant": "library",
        "wall_s": round(wall, 3),
        "tasks_per_s": round(tasks / wall, 1),
        "client_cpu_us_per_task": round(cpu / tasks * 1e6, 1),
        "server_cpu_us_per_task": _us(server_cpu, server_after, tasks),
        "requests_per_task": round(sum(requests.values()) / tasks, 4),
        "requests_per_task_by_op": per_task(requests, tasks),
        **writes.report(tasks),
        "handler_calls": handled[0],
        "callback_runs": len(callbacks),
        "worker": {"batches": stats.batches, "received": stats.received, "failed": stats.failed},
        **load.stop(),
    }


async def drain_raw(
    config: Config, tasks: int, pollers: int, server_pid: int | None
) -> dict[str, Any]:
    """Fill a queue with plain messages (untimed), then receive + delete them all."""
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    queue = (await ensure_resources(config, queue_name=f"raw-{uuid.uuid4().hex[:8]}")).queue_url
    assert queue is not None
    counts: Counter[str] = Counter()
    conf = AioConfig(max_pool_connections=max(10, config.max_concurrency))
    session = get_session()
    async with session.create_client(
        "sqs", region_name=REGION, endpoint_url=config.endpoint_url, config=conf
    ) as sqs:
        body = '{"item":0,"name":"task-000000"}'
        for start in range(0, tasks, 10):
            entries: Any = [
                {"Id": str(n), "MessageBody": body} for n in range(min(10, tasks - start))
            ]
            await sqs.send_message_batch(QueueUrl=queue, Entries=entries)

        def before_call(model: Any, **_: Any) -> None:
            counts[f"sqs.{model.name}"] += 1

        sqs.meta.events.register("before-call.sqs", before_call)
        deleted = [0]
        done = asyncio.Event()

        async def poll() -> None:
            while not done.is_set():
                resp = await sqs.receive_message(
                    QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1
                )
                got = resp.get("Messages", [])
                if not got:
                    continue
                batch: Any = [
                    {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(got)
                ]
                await sqs.delete_message_batch(QueueUrl=queue, Entries=batch)
                deleted[0] += len(got)
                if deleted[0] >= tasks:
                    done.set()

        load = HostLoad()
        load.start()
        server_cpu = process_cpu_seconds(server_pid)
        wall, cpu = time.perf_counter(), time.process_time()
        with progress_bar(f"raw: drain {tasks}", tasks) as update:
            watcher = asyncio.ensure_future(watch(done, lambda: deleted[0], update))
            await asyncio.gather(*(poll() for _ in range(pollers)))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            await watcher
        server_after = process_cpu_seconds(server_pid)
    return {
        "variant": "raw",
        "wall_s": round(wall, 3),
        "tasks_per_s": round(tasks / wall, 1),
        "client_cpu_us_per_task": round(cpu / tasks * 1e6, 1),
        "server_cpu_us_per_task": _us(server_cpu, server_after, tasks),
        "requests_per_task": round(sum(counts.values()) / tasks, 4),
        "requests_per_task_by_op": per_task(counts, tasks),
        "writes_per_task": 0.0,
        "write_units_per_task": 0.0,
        "deleted": deleted[0],
        **load.stop(),
    }


def _us(before: float | None, after: float | None, tasks: int) -> float | None:
    if before is None or after is None:
        return None
    return round((after - before) / tasks * 1e6, 1)


async def run(args: argparse.Namespace, endpoint: str, pid: int | None) -> list[dict[str, Any]]:
    """Raw first, then the library, on one server."""
    name = f"proc-{uuid.uuid4().hex[:10]}"
    config = Config(
        table=name, bucket=name, region=REGION, endpoint_url=endpoint, max_concurrency=32
    )
    await ensure_resources(config)
    raw = await drain_raw(config, args.tasks, args.pollers, pid)
    lib = await drain_library(config, args.tasks, args.pollers, pid)
    return [raw, lib]


def main() -> None:
    """Drain with both, print the table, save JSON."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000, help="messages to drain (target 10k)")
    parser.add_argument("--pollers", type=int, default=4, help="concurrent receive loops")
    parser.add_argument("--json", help="result path (default results/processing-<N>-<P>.json)")
    args = parser.parse_args()
    if args.tasks < 1 or args.pollers < 1:
        parser.error("--tasks and --pollers must be >= 1")
    setup_env()
    started = time.time()
    with LocalAWS() as aws:
        results = asyncio.run(run(args, aws.endpoint_url, aws.pid))
    raw, lib = results
    ok = lib["callback_runs"] == 1 and raw["deleted"] >= args.tasks
    ratio = round(lib["wall_s"] / raw["wall_s"], 3)
    from rich.table import Table

    table = Table(title=f"drain {args.tasks} tasks, {args.pollers} pollers, local AWS")
    for column in ("variant", "wall s", "tasks/s", "req/task", "DDB writes/task", "WCU/task"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    table.add_column("client CPU us/task", justify="right")
    table.add_column("server CPU us/task", justify="right")
    for r in results:
        table.add_row(
            r["variant"],
            f"{r['wall_s']:.2f}",
            f"{r['tasks_per_s']:.1f}",
            f"{r['requests_per_task']:.3f}",
            f"{r['writes_per_task']:.3f}",
            f"{r['write_units_per_task']:.3f}",
            f"{r['client_cpu_us_per_task']:.0f}",
            f"{r['server_cpu_us_per_task'] or 0:.0f}",
        )
    out = console()
    out.print(table)
    out.print(f"  library/raw wall: {ratio:.2f}x; checks {'OK' if ok else 'FAILED'}")
    path = (
        Path(args.json) if args.json else RESULTS / f"processing-{args.tasks}-{args.pollers}.json"
    )
    write_json(
        path,
        {
            **result_header("processing", started),
            "tasks": args.tasks,
            "pollers": args.pollers,
            "server": "LocalAWS()",
            "summary": {r["variant"]: r for r in results},
            "ratios": {"library/raw wall": ratio},
            "peak_rss_mib": peak_rss_mib(),
            "ok": ok,
        },
    )
    out.print(f"results written to {path}")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
