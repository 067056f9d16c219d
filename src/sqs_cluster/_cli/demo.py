"""``sqs-cluster demo``: a message cluster end to end, on the embedded local AWS by default.

Creates a cluster of N tasks with globals, runs local workers over it (every tenth task fails
on its first delivery and succeeds on the retry), shows live progress, and ends with what
``on_cluster_complete`` reported: it adds up the results the tasks stored as they completed
and writes the sum into the cluster's globals.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from .._aws.provision import ensure_resources
from .._client.client import MessageClient
from .._clusters.model import ClusterRecord
from .._config import Config
from .._errors import SQSClusterError
from .._messages.event import ReceivedMessage
from .._records.model import Status
from .status import watch_cluster
from .worker import Worker, WorkerOptions

VISIBILITY = 3  # seconds before a failed task is delivered again
STALL_SECONDS = 120.0
"""The demo gives up, saying where the cluster stood, after this long without progress."""
FLAKY_EVERY = 10
FACTOR = 3


@dataclass
class DemoResult:
    """What the demo observed; the numbers it prints."""

    tasks: int
    seconds: float = 0.0
    fanout_seconds: float = 0.0
    callback_runs: int = 0
    aggregate: int | None = None
    expected: int = 0
    first_attempt_failures: int = 0
    failed_tasks: int = 0
    requests: dict[str, int] = field(default_factory=dict)


@contextlib.asynccontextmanager
async def _config(endpoint_url: str | None) -> AsyncIterator[tuple[Config, str]]:
    suffix = uuid.uuid4().hex[:8]
    if endpoint_url is None and not os.environ.get("SQS_CLUSTER_TABLE"):
        from ..local import LocalAWS

        os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")  # the local server takes any
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
        async with LocalAWS() as aws:
            made = await aws.aprovision(prefix="demo", visibility_timeout=VISIBILITY)
            config = made.config.with_changes(lease_seconds=VISIBILITY - 1)
            assert made.queue_url is not None
            yield config, made.queue_url
        return
    base = Config.from_env(endpoint_url=endpoint_url) if endpoint_url else Config.from_env()
    config = base.with_changes(lease_seconds=VISIBILITY - 1)
    res = await ensure_resources(
        config, queue_name=f"sqs-cluster-demo-{suffix}", visibility_timeout=VISIBILITY
    )
    assert res.queue_url is not None
    yield config, res.queue_url


async def run_demo_async(
    tasks: int = 1000, *, workers: int = 4, endpoint_url: str | None = None, console: Any = None
) -> DemoResult:
    """Run the demo and return what it measured (``console`` is a rich Console or None)."""
    result = DemoResult(tasks=tasks, expected=sum(FACTOR * n * n for n in range(tasks)))
    async with _config(endpoint_url) as (config, queue_url), MessageClient(config) as client:
        started = time.perf_counter()
        key = await client.create_message_cluster(
            queue_url,
            [{"n": n} for n in range(tasks)],
            globals={"factor": FACTOR},
            meta={"demo": "sum of squares"},
        )
        result.fanout_seconds = time.perf_counter() - started
        finished = asyncio.Event()
        handler = _lambda_handler(client, result, finished)
        worker = Worker(
            client, queue_url, handler, WorkerOptions(concurrency=workers, wait_seconds=1)
        )
        running = asyncio.ensure_future(worker.run())
        try:
            try:
                await watch_cluster(
                    client, key, console=console, interval=0.25, stall_seconds=STALL_SECONDS
                )
            except SQSClusterError as exc:
                raise SQSClusterError(f"demo: {exc}") from None
            await asyncio.wait_for(finished.wait(), timeout=60)
        finally:
            worker.stop()
            await asyncio.gather(running, return_exceptions=True)
        result.seconds = time.perf_counter() - started
        result.failed_tasks = (await client.get_message_cluster(key)).failed
        result.requests = dict(client.request_counts)
    return result


def _lambda_handler(client: MessageClient, result: DemoResult, finished: asyncio.Event) -> Any:
    async def square(message: ReceivedMessage[Any]) -> int:
        n = message.task["n"]
        if n % FLAKY_EVERY == 7 and message.receive_count == 1:
            result.first_attempt_failures += 1
            raise RuntimeError(f"task {n} fails on its first delivery")
        factor: int = (await message.get_globals())["factor"]  # any task may read the globals
        value: int = factor * n * n
        return value  # stored on the task's record as it completes, in the same write

    async def report(cluster: ClusterRecord[Any, Any], get_globals: Any) -> None:
        total = sum([task.result async for task in cluster.iter_tasks(status=Status.COMPLETE)])
        await client.update_cluster_globals(cluster.key, lambda g: {**g, "sum_of_squares": total})
        result.aggregate = (await get_globals())["sum_of_squares"]
        result.callback_runs += 1
        finished.set()

    async def handler(event: dict[str, Any], context: Any) -> Any:
        return await client.safe_process_batch(event, square, on_cluster_complete=report)

    return handler


def print_summary(result: DemoResult, out: Any = print) -> None:
    """The demo's closing summary."""
    total = sum(result.requests.values())
    out("")
    out(f"tasks:                {result.tasks} (fan-out in {result.fanout_seconds:.2f} s)")
    out(f"first-try failures:   {result.first_attempt_failures} (each retried and completed)")
    out(f"tasks failed for good: {result.failed_tasks}")
    out(f"on_cluster_complete:  ran {result.callback_runs} time(s)")
    ok = "exact" if result.aggregate == result.expected else "WRONG"
    out(f"sum of {FACTOR}*n*n:        {result.aggregate} (expected {result.expected}: {ok})")
    out(f"duration:             {result.seconds:.2f} s")
    out(f"AWS requests:         {total} ({total / max(1, result.tasks):.2f} per task)")
    for name, value in sorted(result.requests.items()):
        out(f"  {name:<30} {value:>7}  {value / max(1, result.tasks):.3f}/task")


def run_demo(tasks: int = 1000, *, workers: int = 4, endpoint_url: str | None = None) -> DemoResult:
    """Blocking entry point used by the CLI."""
    from rich.console import Console

    console = Console()
    console.print(f"[bold]sqs-cluster demo[/]: a cluster of {tasks} tasks, {workers} workers")
    result = asyncio.run(
        run_demo_async(tasks, workers=workers, endpoint_url=endpoint_url, console=console)
    )
    print_summary(result, console.print)
    return result
