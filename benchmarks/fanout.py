"""Benchmark (not a test): ``create_message_cluster`` against the raw aiobotocore floor.

Each variant runs in its own fresh process, interleaved (floor, library, floor, library, ...)
against one embedded local AWS (concurrent mode), each run on a fresh queue:

* ``floor``: the minimal calls made directly with aiobotocore under one semaphore of
  ``--concurrency`` slots and the same connection pool: PutItem (cluster record), PutObject
  (globals), then per 50 tasks two BatchWriteItem of 25 followed by five SendMessageBatch of 10,
  with the same items and bodies as the library.
* ``generic``: the same requests as ``floor``, but what a generic application would write:
  a ~300-byte item of 7 attributes and a ~200-byte body per task, no message attribute.
* ``library``: ``MessageClient.create_message_cluster`` with ``max_concurrency=--concurrency``.
* ``naive`` (N <= 1000 only): sequential boto3, one PutItem and one SendMessage per task.

Measured per run: wall time, AWS requests, client CPU (``time.process_time``), the local
server's CPU (read from /proc) and the child's peak RSS.

    .venv/bin/python benchmarks/fanout.py --tasks 10000 --concurrency 32 --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from _common import (
    REGION,
    RESULTS,
    HostLoad,
    ProgressWriter,
    console,
    median,
    peak_rss_mib,
    per_task,
    process_cpu_seconds,
    progress_bar,
    result_header,
    run_child,
    setup_env,
    src_digest,
    write_json,
)

VARIANTS = ("floor", "generic", "library", "naive")
NAIVE_MAX_TASKS = 1000
WARMUP_TASKS = 200
PREFIX = "SQSMessage$"
KEY_ATTRIBUTE = "sqsClusterKey"
TTL_SECONDS = 30 * 24 * 3600
GLOBALS = {"run": "fanout-benchmark", "factor": 3, "labels": ["a", "b", "c"]}


def make_tasks(count: int) -> list[dict[str, Any]]:
    """Small JSON tasks, the same for every variant."""
    return [{"item": i, "name": f"task-{i:06d}", "weight": i % 7} for i in range(count)]


def dumps(value: Any) -> str:
    """Compact JSON, as the library writes it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def now_iso() -> str:
    """UTC timestamp with milliseconds, as the library writes it."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- what the floor writes (the library's attributes, built directly) -----------------------------


@dataclass(frozen=True)
class Cluster:
    """The cluster's keys and where its globals live."""

    table: str
    queue_url: str
    p_key: str
    r_key: str
    bucket: str

    @classmethod
    def new(cls, table: str, bucket: str, queue_url: str) -> Cluster:
        """A fresh cluster id on ``queue_url``."""
        return cls(table, queue_url, PREFIX + uuid.uuid4().hex, PREFIX + queue_url, bucket)

    @property
    def globals_key(self) -> str:
        """S3 key of the globals object."""
        return f"{self.p_key}-globals.json"

    def record(self, total: int) -> dict[str, Any]:
        """The cluster record's item."""
        stamp = now_iso()
        return {
            "pKey": {"S": self.p_key},
            "rKey": {"S": self.r_key},
            "id": {"S": self.p_key.removeprefix(PREFIX)},
            "type": {"S": "cluster"},
            "url": {"S": self.queue_url},
            "status": {"S": "PRE FLIGHT"},
            "statusCode": {"N": "0"},
            "startedAt": {"S": stamp},
            "updatedAt": {"S": stamp},
            "expiresAt": {"N": str(int(time.time()) + TTL_SECONDS)},
            "total": {"N": str(total)},
            "toleratedFailures": {"N": "0"},
            "globals": {"M": {"Bucket": {"S": self.bucket}, "Key": {"S": self.globals_key}}},
        }

    def task(
        self, index: int, task: Any, stamp: str, expires: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The task record's item and the message's batch entry (without ``Id``)."""
        p_key = f"{self.p_key}.{index}"
        body = dumps(
            {
                "pKey": self.p_key,
                "rKey": self.r_key,
                "task": task,
                "type": "task",
                "index": index,
                "globals": {"Bucket": self.bucket, "Key": self.globals_key},
            }
        )
        item = {
            "pKey": {"S": p_key},
            "rKey": {"S": self.r_key},
            "id": {"S": p_key.removeprefix(PREFIX)},
            "type": {"S": "task"},
            "url": {"S": self.queue_url},
            "status": {"S": "PRE FLIGHT"},
            "statusCode": {"N": "0"},
            "startedAt": {"S": stamp},
            "updatedAt": {"S": stamp},
            "expiresAt": {"N": expires},
            "consumptionCount": {"N": "0"},
            "body": {"S": body},
            "clusterKey": {"M": {"pKey": {"S": self.p_key}, "rKey": {"S": self.r_key}}},
            "taskIndex": {"N": str(index)},
        }
        key = dumps({"pKey": p_key, "rKey": self.r_key})
        entry = {
            "MessageBody": body,
            "MessageAttributes": {KEY_ATTRIBUTE: {"DataType": "String", "StringValue": key}},
        }
        return item, entry

    def generic_task(
        self, index: int, task: Any, stamp: str, expires: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """What a generic application writes per task: 7 attributes, a small body."""
        cluster = self.p_key.removeprefix(PREFIX)
        item = {
            "pKey": {"S": f"{self.p_key}.{index}"},
            "rKey": {"S": self.r_key},
            "cluster": {"S": cluster},
            "taskIndex": {"N": str(index)},
            "status": {"S": "PENDING"},
            "startedAt": {"S": stamp},
            "expiresAt": {"N": expires},
        }
        body = dumps(
            {"cluster": cluster, "index": index, "task": task, "globals": self.globals_key}
        )
        return item, {"MessageBody": body}


def count_requests(client: Any, service: str, counts: Counter[str]) -> None:
    """Count requests by ``service.Operation``, the way the library's client does."""

    def before_call(model: Any, **_: Any) -> None:
        counts[f"{service}.{model.name}"] += 1

    client.meta.events.register(
        f"before-call.{client.meta.service_model.service_name}", before_call
    )


# -- the variants (each runs in a child process) --------------------------------------------------


@dataclass(frozen=True)
class Run:
    """What one child run needs."""

    variant: str
    endpoint: str
    table: str
    bucket: str
    queue_url: str
    tasks: int
    concurrency: int


async def floor_fan_out(
    clients: dict[str, Any], run: Run, tasks: list[Any], progress: Callable[[int], None]
) -> None:
    """The minimal fan-out: record, globals, then per 50 tasks 2 x BatchWriteItem, 5 x Send."""
    slot = asyncio.Semaphore(run.concurrency)
    ddb, sqs, s3 = clients["dynamodb"], clients["sqs"], clients["s3"]
    cluster = Cluster.new(run.table, run.bucket, run.queue_url)
    async with slot:
        await ddb.put_item(TableName=run.table, Item=cluster.record(len(tasks)))
    async with slot:
        await s3.put_object(
            Bucket=run.bucket,
            Key=cluster.globals_key,
            Body=dumps(GLOBALS).encode(),
            ContentType="application/json",
            ServerSideEncryption="AES256",
        )

    async def write(items: list[dict[str, Any]]) -> None:
        async with slot:
            resp = await ddb.batch_write_item(
                RequestItems={run.table: [{"PutRequest": {"Item": i}} for i in items]}
            )
        if resp.get("UnprocessedItems"):
            raise RuntimeError("UnprocessedItems: the floor does not retry them")

    async def send(entries: list[dict[str, Any]]) -> None:
        batch = [{"Id": str(n), **e} for n, e in enumerate(entries)]
        async with slot:
            resp = await sqs.send_message_batch(QueueUrl=run.queue_url, Entries=batch)
        if resp.get("Failed"):
            raise RuntimeError(f"SendMessageBatch failed entries: {resp['Failed'][:1]}")

    starts = iter(range(0, len(tasks), 50))

    async def worker() -> None:
        for start in starts:
            stamp, expires = now_iso(), str(int(time.time()) + TTL_SECONDS)
            build = cluster.generic_task if run.variant == "generic" else cluster.task
            built = [
                build(i, tasks[i], stamp, expires)
                for i in range(start, min(start + 50, len(tasks)))
            ]
            items = [item for item, _ in built]
            entries = [entry for _, entry in built]
            await asyncio.gather(*(write(items[n : n + 25]) for n in range(0, len(items), 25)))
            await asyncio.gather(*(send(entries[n : n + 10]) for n in range(0, len(entries), 10)))
            progress(len(entries))

    await asyncio.gather(*(worker() for _ in range(run.concurrency)))


async def run_floor(run: Run) -> dict[str, Any]:
    """Raw aiobotocore, with the library's client settings."""
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    tasks = make_tasks(run.tasks)
    progress = ProgressWriter()
    counts: Counter[str] = Counter()
    conf = AioConfig(
        max_pool_connections=max(10, run.concurrency),
        retries={"mode": "standard", "max_attempts": 5},
        connect_timeout=5.0,
        read_timeout=30.0,
    )
    session = get_session()
    async with AsyncExitStack() as stack:
        clients: dict[str, Any] = {}
        for service in ("sqs", "dynamodb", "s3"):
            client = session.create_client(
                service, region_name=REGION, endpoint_url=run.endpoint, config=conf
            )
            clients[service] = await stack.enter_async_context(client)
            count_requests(clients[service], service, counts)
        wall, cpu = time.perf_counter(), time.process_time()
        await floor_fan_out(clients, run, tasks, progress)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    progress.flush()
    return {"wall": wall, "cpu": cpu, "requests": dict(counts), "rss_mib": peak_rss_mib()}


async def run_library(run: Run) -> dict[str, Any]:
    """``create_message_cluster`` on a fresh ``MessageClient``."""
    from sqs_cluster import Config, MessageClient

    config = Config(
        table=run.table,
        bucket=run.bucket,
        region=REGION,
        endpoint_url=run.endpoint,
        max_concurrency=run.concurrency,
    )
    tasks = make_tasks(run.tasks)
    progress = ProgressWriter()
    async with MessageClient(config) as client:
        wall, cpu = time.perf_counter(), time.process_time()
        await client.create_message_cluster(
            run.queue_url, tasks, globals=GLOBALS, progress=progress
        )
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        counts = dict(client.request_counts)
    progress.flush()
    return {"wall": wall, "cpu": cpu, "requests": counts, "rss_mib": peak_rss_mib()}


def run_naive(run: Run) -> dict[str, Any]:
    """Sequential boto3: one PutItem and one SendMessage per task."""
    import boto3

    tasks = make_tasks(run.tasks)
    progress = ProgressWriter()
    counts: Counter[str] = Counter()
    session = boto3.session.Session()
    clients = {}
    for service in ("sqs", "dynamodb", "s3"):
        clients[service] = session.client(service, region_name=REGION, endpoint_url=run.endpoint)
        count_requests(clients[service], service, counts)
    ddb, sqs, s3 = clients["dynamodb"], clients["sqs"], clients["s3"]
    wall, cpu = time.perf_counter(), time.process_time()
    cluster = Cluster.new(run.table, run.bucket, run.queue_url)
    ddb.put_item(TableName=run.table, Item=cluster.record(len(tasks)))
    s3.put_object(
        Bucket=run.bucket,
        Key=cluster.globals_key,
        Body=dumps(GLOBALS).encode(),
        ContentType="application/json",
        ServerSideEncryption="AES256",
    )
    for index, task in enumerate(tasks):
        item, entry = cluster.task(index, task, now_iso(), str(int(time.time()) + TTL_SECONDS))
        ddb.put_item(TableName=run.table, Item=item)
        sqs.send_message(QueueUrl=run.queue_url, **entry)
        progress(1)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    progress.flush()
    return {"wall": wall, "cpu": cpu, "requests": dict(counts), "rss_mib": peak_rss_mib()}


def child_main(run: Run) -> None:
    """Run one variant and print its result as one JSON line."""
    setup_env()
    if run.variant in {"floor", "generic"}:
        result = asyncio.run(run_floor(run))
    elif run.variant == "library":
        result = asyncio.run(run_library(run))
    else:
        result = run_naive(run)
    print(json.dumps(result))


# -- the parent: server, queues, interleaving, report ---------------------------------------------


class Server:
    """The endpoint (a local AWS, the latency server, or ``--endpoint``) and its resources."""

    def __init__(self, endpoint: str | None, concurrency: int, latency_ms: float | None) -> None:
        self._given = endpoint
        self._concurrency = concurrency
        self._latency_ms = latency_ms
        self._fake: Any = None
        self.pid: int | None = None
        self.endpoint = ""
        self.name = f"bench-{uuid.uuid4().hex[:10]}"

    @property
    def label(self) -> str:
        """What served the run, for the JSON."""
        if self._latency_ms is not None:
            return f"latency server ({self._latency_ms:g} ms per request)"
        return "external" if self._given else "LocalAWS()"

    @contextmanager
    def running(self) -> Iterator[Server]:
        """Start (or use) the server and create the shared table and bucket."""
        if self._latency_ms is not None:  # nothing to provision: it stores nothing
            from latency_server import LatencyServer

            with LatencyServer(self._latency_ms) as fake:
                self._fake, self.endpoint, self.pid = fake, fake.endpoint, fake.pid
                yield self
            return
        if self._given is not None:
            self.endpoint = self._given
            self._provision()
            yield self
            return
        from sqs_cluster.local import LocalAWS

        with LocalAWS() as aws:
            self.endpoint, self.pid = aws.endpoint_url, aws.pid
            self._provision()
            yield self

    def _config(self) -> Any:
        from sqs_cluster import Config

        return Config(
            table=self.name,
            bucket=self.name,
            region=REGION,
            endpoint_url=self.endpoint,
            max_concurrency=self._concurrency,
        )

    def _provision(self) -> None:
        from sqs_cluster import ensure_resources

        asyncio.run(ensure_resources(self._config()))

    def new_queue(self, label: str) -> str:
        """A fresh queue (with its DLQ), so no run sees another run's messages."""
        name = f"{label}-{uuid.uuid4().hex[:8]}"
        if self._fake is not None:
            return f"{self.endpoint}/000000000000/{name}"
        from sqs_cluster import ensure_resources

        url = asyncio.run(ensure_resources(self._config(), queue_name=name)).queue_url
        assert url is not None
        return url

    def drop_queue(self, url: str) -> int:
        """The number of messages in the queue, then delete it and its DLQ."""
        if self._fake is not None:
            return int(self._fake.stats()["messages"].get(url, 0))
        import boto3

        sqs = boto3.client("sqs", region_name=REGION, endpoint_url=self.endpoint)
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        sqs.delete_queue(QueueUrl=url)
        sqs.delete_queue(QueueUrl=f"{url}-dlq")
        return sum(int(attrs.get(n, 0)) for n in names)


def measure(server: Server, variant: str, tasks: int, concurrency: int, label: str) -> Any:
    """One child run of ``variant`` on a fresh queue; checks every message arrived."""
    queue_url = server.new_queue(f"fanout-{variant}")
    argv = [
        str(Path(__file__).resolve()),
        "--child",
        variant,
        "--endpoint",
        server.endpoint,
        "--table",
        server.name,
        "--bucket",
        server.name,
        "--queue-url",
        queue_url,
        "--tasks",
        str(tasks),
        "--concurrency",
        str(concurrency),
    ]
    load = HostLoad()
    load.start()
    before = process_cpu_seconds(server.pid)
    with progress_bar(label, tasks) as update:
        result: dict[str, Any] = run_child(argv, update)
    after = process_cpu_seconds(server.pid)
    result.update(load.stop())
    result["server_cpu"] = None if before is None or after is None else after - before
    in_queue = server.drop_queue(queue_url)
    if in_queue != tasks:
        raise RuntimeError(f"{variant}: {in_queue} messages in the queue, expected {tasks}")
    result["variant"] = variant
    result["src_digest"] = src_digest()
    return result


def summarise(runs: list[dict[str, Any]], variant: str, tasks: int) -> dict[str, Any]:
    """Medians over the rounds of one variant."""
    mine = [r for r in runs if r["variant"] == variant]
    walls = [r["wall"] for r in mine]
    server = [r["server_cpu"] for r in mine if r["server_cpu"] is not None]
    requests: Counter[str] = Counter(mine[0]["requests"])
    return {
        "rounds": len(mine),
        "wall_s_median": round(median(walls), 4),
        "wall_s_min": round(min(walls), 4),
        "wall_s_max": round(max(walls), 4),
        "tasks_per_s": round(tasks / median(walls), 1),
        "requests_per_task": round(sum(requests.values()) / tasks, 4),
        "requests_per_task_by_op": per_task(requests, tasks),
        "client_cpu_us_per_task": round(median([r["cpu"] for r in mine]) / tasks * 1e6, 1),
        "server_cpu_us_per_task": round(median(server) / tasks * 1e6, 1) if server else None,
        "peak_rss_mib": max(r["rss_mib"] for r in mine),
    }


def print_report(summary: dict[str, dict[str, Any]], ratios: dict[str, float], title: str) -> None:
    """The side-by-side table and the ratios."""
    from rich.table import Table

    table = Table(title=title)
    for column in (
        "variant",
        "wall s (median)",
        "min-max",
        "tasks/s",
        "req/task",
        "client CPU us/task",
        "server CPU us/task",
        "peak RSS MiB",
    ):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for variant, s in summary.items():
        table.add_row(
            variant,
            f"{s['wall_s_median']:.3f}",
            f"{s['wall_s_min']:.3f}-{s['wall_s_max']:.3f}",
            f"{s['tasks_per_s']:.0f}",
            f"{s['requests_per_task']:.3f}",
            f"{s['client_cpu_us_per_task']:.0f}",
            "-" if s["server_cpu_us_per_task"] is None else f"{s['server_cpu_us_per_task']:.0f}",
            f"{s['peak_rss_mib']:.1f}",
        )
    out = console()
    out.print(table)
    for name, value in ratios.items():
        out.print(f"  {name}: {value:.3f}x")


def parent_main(args: argparse.Namespace) -> None:
    """Interleave the variants, then print and save the comparison."""
    setup_env()
    variants = ["floor", "generic", "library"] if args.generic else ["floor", "library"]
    if args.naive and args.tasks <= args.naive_max_tasks:
        variants.append("naive")
    runs: list[dict[str, Any]] = []
    started = time.time()
    server_spec = Server(args.endpoint, args.concurrency, args.latency_ms)
    with server_spec.running() as server:
        for variant in variants if args.warmup else []:
            measure(server, variant, WARMUP_TASKS, args.concurrency, f"warm-up {variant}")
        for round_ in range(1, args.repeat + 1):
            for variant in variants:
                label = f"{variant} {round_}/{args.repeat}"
                result = measure(server, variant, args.tasks, args.concurrency, label)
                result["round"] = round_
                runs.append(result)
                console().print(
                    f"{label}: {result['wall']:.3f} s wall, {result['cpu']:.3f} s client CPU, "
                    f"machine busy {result['host_busy_cores']} cores"
                )
    summary = {v: summarise(runs, v, args.tasks) for v in variants}
    lib, floor = summary["library"], summary["floor"]
    ratios = {
        "library/floor wall": round(lib["wall_s_median"] / floor["wall_s_median"], 3),
        "library/floor client CPU per task": round(
            lib["client_cpu_us_per_task"] / floor["client_cpu_us_per_task"], 3
        ),
        "library/floor requests per task": round(
            lib["requests_per_task"] / floor["requests_per_task"], 3
        ),
    }
    if lib["server_cpu_us_per_task"] and floor["server_cpu_us_per_task"]:
        ratios["library/floor server CPU per task"] = round(
            lib["server_cpu_us_per_task"] / floor["server_cpu_us_per_task"], 3
        )
    if "generic" in summary:
        generic = summary["generic"]
        ratios["library/generic wall"] = round(lib["wall_s_median"] / generic["wall_s_median"], 3)
        ratios["library/generic client CPU per task"] = round(
            lib["client_cpu_us_per_task"] / generic["client_cpu_us_per_task"], 3
        )
    if "naive" in summary:
        ratios["naive/floor wall"] = round(
            summary["naive"]["wall_s_median"] / floor["wall_s_median"], 3
        )
    title = (
        f"create_message_cluster: {args.tasks} tasks, concurrency {args.concurrency}, "
        f"{server_spec.label}"
    )
    print_report(summary, ratios, f"{title}, {args.repeat} interleaved rounds")
    stem = "fanout" if args.latency_ms is None else f"fanout-latency{args.latency_ms:g}ms"
    path = (
        Path(args.json) if args.json else RESULTS / f"{stem}-{args.tasks}-{args.concurrency}.json"
    )
    write_json(
        path,
        {
            **result_header("fanout", started),
            "tasks": args.tasks,
            "concurrency": args.concurrency,
            "repeat": args.repeat,
            "server": server_spec.label,
            "latency_ms": args.latency_ms,
            "summary": summary,
            "ratios": ratios,
            "runs": runs,
        },
    )
    console().print(f"results written to {path}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (``--child`` and below are for the measured child processes)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000, help="tasks per cluster")
    parser.add_argument("--concurrency", type=int, default=32, help="max_concurrency / semaphore")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds per variant")
    parser.add_argument("--json", help="result path (default results/fanout-<N>-<C>.json)")
    parser.add_argument(
        "--naive",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="include sequential boto3 when --tasks <= --naive-max-tasks",
    )
    parser.add_argument(
        "--naive-max-tasks",
        type=int,
        default=NAIVE_MAX_TASKS,
        help=f"largest N at which naive runs (default {NAIVE_MAX_TASKS}; it is slow)",
    )
    parser.add_argument(
        "--generic",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="include the generic floor (7-attribute items, small bodies)",
    )
    parser.add_argument(
        "--warmup",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=f"one unrecorded {WARMUP_TASKS}-task run of each variant first",
    )
    parser.add_argument("--endpoint", help="use this AWS endpoint instead of a local server")
    parser.add_argument(
        "--latency-ms",
        type=float,
        help="serve from benchmarks/latency_server.py answering after this delay (no moto)",
    )
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--table", help=argparse.SUPPRESS)
    parser.add_argument("--bucket", help=argparse.SUPPRESS)
    parser.add_argument("--queue-url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tasks < 1 or args.concurrency < 1 or args.repeat < 1:
        parser.error("--tasks, --concurrency and --repeat must be >= 1")
    if args.latency_ms is not None and args.endpoint and not args.child:
        parser.error("--latency-ms starts its own endpoint; drop --endpoint")
    return args


def main() -> None:
    """Entry point: the parent orchestrates; ``--child`` runs one measured variant."""
    args = parse_args()
    if args.child:
        child_main(
            Run(
                args.child,
                args.endpoint,
                args.table,
                args.bucket,
                args.queue_url,
                args.tasks,
                args.concurrency,
            )
        )
    else:
        parent_main(args)


if __name__ == "__main__":
    main()
