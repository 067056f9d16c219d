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
import signal
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
from .status import Display, progress_line, snapshot, watch_cluster
from .worker import Worker, WorkerOptions

VISIBILITY = 3  # seconds before a failed task is delivered again
PLAIN_INTERVAL = 2.0
"""Seconds between progress lines when stdout is not a terminal."""
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
    interrupted: bool = False
    last_line: str = ""


@contextlib.asynccontextmanager
async def _config(
    endpoint_url: str | None, use_env: bool, say: Any
) -> AsyncIterator[tuple[Config, str]]:
    """The embedded local AWS, unless ``--endpoint-url`` or ``--use-env`` asks for the
    environment's settings (then it says so: the demo creates resources there)."""
    if endpoint_url is None and not use_env:
        from ..local import LocalAWS

        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):  # the local server takes any
            os.environ[name] = "local"
        os.environ.pop("AWS_SESSION_TOKEN", None)
        say("starting the embedded local AWS ...")
        async with LocalAWS() as aws:
            made = await aws.aprovision(prefix="demo", visibility_timeout=VISIBILITY)
            config = made.config.with_changes(lease_seconds=VISIBILITY - 1)
            assert made.queue_url is not None
            _say_where(say, "embedded local AWS", config, made.queue_url)
            yield config, made.queue_url
        return
    base = Config.from_env(endpoint_url=endpoint_url) if endpoint_url else Config.from_env()
    config = base.with_changes(lease_seconds=VISIBILITY - 1)
    res = await ensure_resources(
        config,
        queue_name=f"sqs-cluster-demo-{uuid.uuid4().hex[:8]}",
        visibility_timeout=VISIBILITY,
    )
    assert res.queue_url is not None
    _say_where(say, "settings from the environment", config, res.queue_url)
    yield config, res.queue_url


def _say_where(say: Any, what: str, config: Config, queue_url: str) -> None:
    endpoint = config.endpoint_url or f"AWS in region {config.region or '(default)'}"
    say(f"using {what}: endpoint {endpoint}")
    say(f"  table {config.table}, bucket {config.bucket or '-'}")
    say(f"  queue {queue_url}")


async def run_demo_async(
    tasks: int = 1000,
    *,
    workers: int = 4,
    endpoint_url: str | None = None,
    use_env: bool = False,
    display: Display | None = None,
) -> DemoResult:
    """Run the demo and return what it measured; SIGINT or SIGTERM ends it at once."""
    display = display or Display.choose()
    result = DemoResult(tasks=tasks, expected=sum(FACTOR * n * n for n in range(tasks)))
    stop = _stop_on_signals()
    async with (
        _config(endpoint_url, use_env, display.say) as (config, queue_url),
        MessageClient(config) as client,
    ):
        started = time.perf_counter()
        display.say(f"sending {tasks} tasks ...")
        key = await client.create_message_cluster(
            queue_url,
            [{"n": n} for n in range(tasks)],
            globals={"factor": FACTOR},
            meta={"demo": "sum of squares"},
        )
        result.fanout_seconds = time.perf_counter() - started
        display.say(f"cluster {key.id}: {tasks} tasks sent in {result.fanout_seconds:.1f} s")
        finished = asyncio.Event()
        handler = _lambda_handler(client, result, finished)
        worker = Worker(
            client, queue_url, handler, WorkerOptions(concurrency=workers, wait_seconds=1)
        )
        running = asyncio.ensure_future(worker.run())
        try:
            await _watch(client, key, display, result, stop)
            if not result.interrupted:
                await _wait_either(finished, stop, timeout=60)
                result.interrupted = stop.is_set() and not finished.is_set()
        finally:
            worker.stop()
            await asyncio.gather(running, return_exceptions=True)
        result.seconds = time.perf_counter() - started
        result.failed_tasks = (await client.get_message_cluster(key)).failed
        result.requests = dict(client.request_counts)
    return result


async def _watch(
    client: MessageClient, key: Any, display: Display, result: DemoResult, stop: asyncio.Event
) -> None:
    try:
        cluster, result.interrupted = await watch_cluster(
            client, key, display=display, interval=0.25, stall_seconds=STALL_SECONDS, stop=stop
        )
    except SQSClusterError as exc:
        raise SQSClusterError(f"demo: {exc}") from None
    result.last_line = progress_line(snapshot(cluster))


async def _wait_either(finished: asyncio.Event, stop: asyncio.Event, timeout: float) -> None:
    waits = [asyncio.ensure_future(finished.wait()), asyncio.ensure_future(stop.wait())]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()


def _stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM (where the loop can take signal handlers)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    return stop


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
    ok = "exact" if result.aggregate == result.expected else "WRONG"
    rows = [
        ("tasks", f"{result.tasks} (fan-out in {result.fanout_seconds:.2f} s)"),
        ("first-try failures", f"{result.first_attempt_failures} (each retried and completed)"),
        ("tasks failed for good", str(result.failed_tasks)),
        ("on_cluster_complete", f"ran {result.callback_runs} time(s)"),
        (f"sum of {FACTOR}*n*n", f"{result.aggregate} (expected {result.expected}: {ok})"),
        ("duration", f"{result.seconds:.2f} s"),
        ("AWS requests", f"{total} ({total / max(1, result.tasks):.2f} per task)"),
    ]
    for label, text in rows:  # one column for every value
        out(f"{label + ':':<23}{text}")
    for name, value in sorted(result.requests.items()):
        out(f"  {name:<30} {value:>7}  {value / max(1, result.tasks):.3f}/task")


def run_demo(
    tasks: int = 1000,
    *,
    workers: int = 4,
    endpoint_url: str | None = None,
    use_env: bool = False,
) -> DemoResult:
    """Blocking entry point used by the CLI: progress, then the summary."""
    display = Display.choose(plain_interval=PLAIN_INTERVAL)
    display.say(f"sqs-cluster demo: a cluster of {tasks} tasks, {workers} workers")
    result = asyncio.run(
        run_demo_async(
            tasks, workers=workers, endpoint_url=endpoint_url, use_env=use_env, display=display
        )
    )
    if result.interrupted:
        display.say(f"interrupted after {result.seconds:.1f} s; the last count:")
        display.say(result.last_line)
    else:
        print_summary(result, display.say)
    return result
