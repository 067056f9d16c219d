"""Benchmark (not a test): one message cluster end to end, fan-out then fan-in.

Creates a cluster of ``--tasks`` tasks with globals, then drains its queue with ``--workers``
concurrent in-process consumers, each with its own ``MessageClient`` (as separate Lambda
containers would have). Each consumer loops: ReceiveMessage (10) -> a Lambda-shaped event ->
``safe_process_batch(event, handler, delete_succeeded=True, on_cluster_complete=callback)``,
until the callback has run. Then it checks that the cluster counted every task once and that
the callback ran exactly once, and reports times, requests and DynamoDB writes per task.

The local server makes every write atomic, as on AWS (the exactly-once checks rely on that),
and lets SQS long polls wait outside its locks. Its Query reads one partition, as DynamoDB's
does (see ``local/ddb_patch.py``).

    .venv/bin/python benchmarks/cluster_e2e.py --tasks 10000 --workers 4
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
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
    src_digest,
    write_json,
)

from sqs_cluster import (
    ClusterRecord,
    Config,
    MessageClient,
    ReceivedMessage,
    Status,
    ensure_resources,
)
from sqs_cluster._messages.lambda_shape import lambda_event
from sqs_cluster.local import LocalAWS

GLOBALS: dict[str, Any] = {"run": "cluster-e2e-benchmark", "factor": 3}
SINGLE_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem"})


class WriteCounter:
    """DynamoDB writes by item: TransactWriteItems and BatchWriteItem count every item.

    ``units`` estimates write capacity units for items under 1 KB: a transactional item
    costs two.
    """

    def __init__(self) -> None:
        self.items: Counter[str] = Counter()
        self.units = 0

    def attach(self, client: MessageClient) -> None:
        """Count the API parameters of every DynamoDB call ``client`` makes."""

        def before_build(params: Mapping[str, Any], model: Any, **_: Any) -> None:
            self.record(model.name, params)

        events = client._aws.ddb.meta.events
        events.register("before-parameter-build.dynamodb", before_build)

    def record(self, operation: str, params: Mapping[str, Any]) -> None:
        """Add the writes of one request."""
        if operation in SINGLE_WRITES:
            self.items[operation] += 1
            self.units += 1
        elif operation == "BatchWriteItem":
            count = sum(len(v) for v in params.get("RequestItems", {}).values())
            self.items[operation] += count
            self.units += count
        elif operation == "TransactWriteItems":
            count = len(params.get("TransactItems", []))
            self.items[operation] += count
            self.units += 2 * count

    def report(self, tasks: int) -> dict[str, Any]:
        """Writes per task, in total and by operation."""
        return {
            "writes_per_task": round(sum(self.items.values()) / tasks, 4),
            "write_units_per_task": round(self.units / tasks, 4),
            "writes_per_task_by_op": per_task(self.items, tasks),
        }


@dataclass
class Drain:
    """Shared state of the consumers."""

    queue_url: str
    handled: int = 0
    failures: int = 0
    batches: int = 0
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    finished_at: float = 0.0

    async def handler(self, message: ReceivedMessage[Any]) -> int:
        """Trivial work: check the task and return a number."""
        task = message.task
        assert isinstance(task, dict) and message.task_index == task["item"]
        self.handled += 1
        return int(task["item"]) * int(GLOBALS["factor"])

    async def on_complete(
        self, cluster: ClusterRecord[Any, Any], get_globals: Callable[[], Any]
    ) -> None:
        """The fan-in callback: read the globals once, record the call, stop the consumers."""
        value = await get_globals()
        self.callbacks.append(
            {
                "completed": cluster.completed,
                "failed": cluster.failed,
                "status": cluster.status.value,
                "globals_ok": value == GLOBALS,
            }
        )
        self.finished_at = time.perf_counter()
        self.done.set()


async def consume(client: MessageClient, drain: Drain, deadline: float) -> None:
    """One consumer: receive 10, process them as a Lambda batch, until the callback ran."""
    sqs = client._aws.sqs
    while not drain.done.is_set() and time.monotonic() < deadline:
        resp = await sqs.receive_message(
            QueueUrl=drain.queue_url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=1,
        )
        received = resp.get("Messages", [])
        if not received:
            continue
        drain.batches += 1
        event = lambda_event(received, queue_url=drain.queue_url, region=REGION)
        response = await client.safe_process_batch(
            event, drain.handler, delete_succeeded=True, on_cluster_complete=drain.on_complete
        )
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        drain.failures += len(failed)
        for message in received:
            if message["MessageId"] in failed:  # back to the queue at once, as drain tests do
                await sqs.change_message_visibility(
                    QueueUrl=drain.queue_url,
                    ReceiptHandle=message["ReceiptHandle"],
                    VisibilityTimeout=0,
                )


@dataclass(frozen=True)
class Options:
    """What one run needs."""

    tasks: int
    workers: int
    concurrency: int
    batch_concurrency: int
    timeout: float


@contextmanager
def local_server(endpoint: str | None) -> Iterator[tuple[str, int | None]]:
    """The endpoint and server PID: a fresh local AWS unless ``endpoint`` is given."""
    if endpoint is not None:
        yield endpoint, None
        return
    with LocalAWS() as aws:
        yield aws.endpoint_url, aws.pid


async def queue_counts(client: MessageClient, url: str) -> int:
    """Visible plus in-flight messages of a queue."""
    names: Any = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    resp = await client._aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)
    return sum(int(resp.get("Attributes", {}).get(n, 0)) for n in names)


def requests_of(clients: list[MessageClient]) -> Counter[str]:
    """Requests of several clients added up."""
    total: Counter[str] = Counter()
    for client in clients:
        total.update(client.request_counts)
    return total


async def run(options: Options, endpoint: str, server_pid: int | None) -> dict[str, Any]:
    """Fan out, drain, verify; returns the measurements."""
    n = options.tasks
    name = f"e2e-{uuid.uuid4().hex[:10]}"
    config = Config(
        table=name,
        bucket=name,
        region=REGION,
        endpoint_url=endpoint,
        max_concurrency=options.concurrency,
    )
    resources = await ensure_resources(config, queue_name=name, visibility_timeout=120)
    assert resources.queue_url is not None and resources.dlq_url is not None
    queue_url = resources.queue_url
    tasks = [{"item": i, "name": f"task-{i:07d}"} for i in range(n)]
    result: dict[str, Any] = {}

    async with AsyncExitStack() as stack:
        creator = await stack.enter_async_context(MessageClient(config))
        fan_writes = WriteCounter()
        fan_writes.attach(creator)
        load = HostLoad()
        load.start()
        server_cpu = process_cpu_seconds(server_pid)
        wall, cpu = time.perf_counter(), time.process_time()
        with progress_bar(f"fan-out {n} tasks", n) as update:
            sent = [0]

            def progress(count: int) -> None:
                sent[0] += count
                update(sent[0])

            key = await creator.create_message_cluster(
                queue_url, tasks, globals=GLOBALS, progress=progress
            )
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        server_after = process_cpu_seconds(server_pid)
        result["fanout"] = {
            "wall_s": round(wall, 3),
            "tasks_per_s": round(n / wall, 1),
            "client_cpu_us_per_task": round(cpu / n * 1e6, 1),
            "server_cpu_us_per_task": _per_task_us(server_cpu, server_after, n),
            "requests_per_task": round(sum(creator.request_counts.values()) / n, 4),
            "requests_per_task_by_op": per_task(creator.request_counts, n),
            **fan_writes.report(n),
            **load.stop(),
        }
        fanout_requests = Counter(creator.request_counts)

        consumers = [
            await stack.enter_async_context(MessageClient(config)) for _ in range(options.workers)
        ]
        drain_writes = WriteCounter()
        for consumer in consumers:
            drain_writes.attach(consumer)
        drain = Drain(queue_url)
        deadline = time.monotonic() + options.timeout
        load.start()
        server_cpu = process_cpu_seconds(server_pid)
        wall, cpu = time.perf_counter(), time.process_time()
        with progress_bar(f"drain with {options.workers} consumers", n) as update:

            async def show() -> None:
                while not drain.done.is_set():
                    update(drain.handled)
                    await asyncio.sleep(0.5)
                update(drain.handled)

            watcher = asyncio.ensure_future(show())
            await asyncio.gather(*(consume(c, drain, deadline) for c in consumers))
            drain.done.set()
            await watcher
        stopped = time.perf_counter()
        cpu = time.process_time() - cpu
        server_after = process_cpu_seconds(server_pid)
        drain_wall = (drain.finished_at or stopped) - wall
        drain_requests = requests_of(consumers)
        result["drain"] = {
            "wall_s": round(drain_wall, 3),
            "tasks_per_s": round(n / drain_wall, 1),
            "client_cpu_us_per_task": round(cpu / n * 1e6, 1),
            "server_cpu_us_per_task": _per_task_us(server_cpu, server_after, n),
            "requests_per_task": round(sum(drain_requests.values()) / n, 4),
            "requests_per_task_by_op": per_task(drain_requests, n),
            "batches": drain.batches,
            "handler_calls": drain.handled,
            "failed_deliveries": drain.failures,
            **drain_writes.report(n),
            **load.stop(),
        }
        all_writes = WriteCounter()
        all_writes.items = fan_writes.items + drain_writes.items
        all_writes.units = fan_writes.units + drain_writes.units
        total_wall = result["fanout"]["wall_s"] + drain_wall
        result["total"] = {
            "wall_s": round(total_wall, 3),
            "tasks_per_s": round(n / total_wall, 1),
            "requests_per_task": round(
                (sum(fanout_requests.values()) + sum(drain_requests.values())) / n, 4
            ),
            **all_writes.report(n),
        }
        cluster = await creator.get_message_cluster(key, consistent_read=True)
        result["verify"] = {
            "cluster_status": cluster.status.value,
            "completed": cluster.completed,
            "failed": cluster.failed,
            "total": cluster.total,
            "callback_state": cluster.callback_state,
            "callback_runs": len(drain.callbacks),
            "callbacks": drain.callbacks,
            "left_in_queue": await queue_counts(creator, queue_url),
            "in_dlq": await queue_counts(creator, resources.dlq_url),
        }
        result["verify"]["ok"] = (
            cluster.completed == n
            and cluster.failed == 0
            and cluster.status is Status.COMPLETE
            and len(drain.callbacks) == 1
            and all(c["globals_ok"] for c in drain.callbacks)
        )
    result["peak_rss_mib"] = peak_rss_mib()
    return result


def _per_task_us(before: float | None, after: float | None, tasks: int) -> float | None:
    if before is None or after is None:
        return None
    return round((after - before) / tasks * 1e6, 1)


def print_report(result: Mapping[str, Any], title: str) -> None:
    """Phases side by side, requests by operation, and the checks."""
    from rich.table import Table

    out = console()
    table = Table(title=title)
    table.add_column("phase")
    for column in (
        "wall s",
        "tasks/s",
        "req/task",
        "DDB writes/task",
        "WCU/task",
        "client CPU us/task",
        "server CPU us/task",
    ):
        table.add_column(column, justify="right")
    for phase in ("fanout", "drain", "total"):
        p = result[phase]
        table.add_row(
            phase,
            f"{p['wall_s']:.2f}",
            f"{p['tasks_per_s']:.0f}",
            f"{p['requests_per_task']:.3f}",
            f"{p['writes_per_task']:.3f}",
            f"{p['write_units_per_task']:.3f}",
            f"{p['client_cpu_us_per_task']:.0f}" if "client_cpu_us_per_task" in p else "",
            f"{p['server_cpu_us_per_task'] or 0:.0f}" if "server_cpu_us_per_task" in p else "",
        )
    out.print(table)
    for phase in ("fanout", "drain"):
        ops = ", ".join(f"{k} {v:.3f}" for k, v in result[phase]["requests_per_task_by_op"].items())
        out.print(f"  {phase} requests/task: {ops}")
        ops = ", ".join(f"{k} {v:.3f}" for k, v in result[phase]["writes_per_task_by_op"].items())
        out.print(f"  {phase} writes/task:   {ops}")
    v = result["verify"]
    out.print(
        f"  verify: {'OK' if v['ok'] else 'FAILED'}: {v['cluster_status']}, completed "
        f"{v['completed']}/{v['total']}, failed {v['failed']}, callback ran {v['callback_runs']}x "
        f"({v['callback_state']}), {v['left_in_queue']} left in queue, {v['in_dlq']} in DLQ"
    )
    out.print(f"  peak RSS {result['peak_rss_mib']:.1f} MiB")


def main() -> None:
    """Run once, print, save JSON; exit 1 if the checks failed."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000, help="tasks in the cluster")
    parser.add_argument("--workers", type=int, default=4, help="concurrent consumers")
    parser.add_argument("--concurrency", type=int, default=32, help="max_concurrency per client")
    parser.add_argument(
        "--batch-concurrency", type=int, default=10, help="safe_process_batch concurrency"
    )
    parser.add_argument("--timeout", type=float, default=6 * 3600, help="give up after seconds")
    parser.add_argument("--endpoint", help="use this AWS endpoint instead of a local server")
    parser.add_argument("--json", help="result path (default results/e2e-<N>-<W>.json)")
    args = parser.parse_args()
    if args.tasks < 1 or args.workers < 1:
        parser.error("--tasks and --workers must be >= 1")
    setup_env()
    options = Options(
        args.tasks, args.workers, args.concurrency, args.batch_concurrency, args.timeout
    )
    started, digest = time.time(), src_digest()
    with local_server(args.endpoint) as (endpoint, pid):
        result = asyncio.run(run(options, endpoint, pid))
    server = "external" if args.endpoint else "LocalAWS()"
    title = f"cluster end to end: {args.tasks} tasks, {args.workers} consumers, {server}"
    print_report(result, title)
    path = Path(args.json) if args.json else RESULTS / f"e2e-{args.tasks}-{args.workers}.json"
    write_json(
        path,
        {
            **result_header("cluster_e2e", started, digest),
            "tasks": args.tasks,
            "workers": args.workers,
            "concurrency": args.concurrency,
            "batch_concurrency": args.batch_concurrency,
            "server": server,
            **result,
        },
    )
    console().print(f"results written to {path}")
    if not result["verify"]["ok"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
