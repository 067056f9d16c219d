"""Benchmark (not a test): exactly-once SQS processing, sqs-cluster next to Powertools.

Both sides run against one embedded local AWS (moto over HTTP, a separate process), on the same
``--messages`` JSON bodies, in Lambda-shaped SQS events of 10 records, ``--concurrency``
invocations at a time, with the same trivial handler work (read the JSON body, return a small
JSON result):

* ``sqs-cluster``: a producer sends the bodies with ``MessageClient.send_message_batch`` (a
  DynamoDB record per message, then the message); each invocation calls
  ``MessageClient.safe_process_batch(event, handler, context=...)`` with an async handler.
* ``powertools``: a producer sends the same bodies as plain messages with boto3; each invocation
  calls Powertools' ``process_partial_response`` with ``BatchProcessor(EventType.SQS)`` and a
  record handler decorated with ``@idempotent_function(data_keyword_argument="record", ...)``,
  keyed on the SQS message id (``IdempotencyConfig(event_key_jmespath="messageId")``), stored
  by ``DynamoDBPersistenceLayer`` through a boto3 client made here, and given the invocation's
  context with ``IdempotencyConfig.register_lambda_context``.

The harness plays Lambda's event source mapping with a client of its own (not counted): it
receives every message (10 a call, all attributes and message attributes), shapes the events,
and deletes the messages at the end. Each side's invocations are timed alone (wall and this
process's CPU; the server's CPU is another process), twice: the first delivery, then every
event again (a duplicate delivery of every message, after the first completed). Requests are
counted by operation with botocore hooks, and DynamoDB write units as DynamoDB bills items under
1 KB (one per written item, two per item of a transaction; a refused conditional write costs
its unit too). ``--rounds`` rounds alternate which side goes first; the report gives medians.

    .venv/bin/python benchmarks/peers_powertools.py --messages 1000 --concurrency 1 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import (
    REGION,
    RESULTS,
    HostLoad,
    console,
    median,
    peak_rss_mib,
    per_task,
    process_cpu_seconds,
    result_header,
    setup_env,
    src_digest,
    write_json,
)
from cluster_e2e import WriteCounter

from sqs_cluster import Config, LambdaContext, MessageClient, ReceivedMessage, ensure_resources
from sqs_cluster.local import LocalAWS

SIDES = ("sqs-cluster", "powertools")
PHASES = ("send", "first", "duplicate")
BATCH = 10
FUNCTION_TIMEOUT_S = 30.0
"""The Lambda timeout the invocations' contexts count down from (both sides' leases use it)."""
VISIBILITY_TIMEOUT_S = 360
"""Both queues' visibility timeout: ``ensure_resources``' default, over six times the function
timeout as AWS advises, and longer than sqs-cluster's default lease (300 s)."""


@dataclass(frozen=True)
class Options:
    """What one run needs."""

    messages: int = 1000
    concurrency: int = 1
    rounds: int = 3
    batch_concurrency: int = 10


def make_bodies(count: int) -> list[str]:
    """The message bodies both sides send: small JSON objects, serialised once."""
    return [
        json.dumps({"item": i, "name": f"order-{i:06d}", "quantity": i % 7 + 1})
        for i in range(count)
    ]


def work(body: Mapping[str, Any]) -> dict[str, Any]:
    """The handler work of both sides: a trivial JSON computation."""
    return {"item": body["item"], "total": body["quantity"] * 3, "name": body["name"].upper()}


def lambda_context(function_name: str) -> LambdaContext:
    """A fresh invocation's context: ``FUNCTION_TIMEOUT_S`` left."""
    return LambdaContext(
        function_name=function_name, deadline=time.monotonic() + FUNCTION_TIMEOUT_S
    )


# -- events, as Lambda's SQS event source mapping shapes them ---------------------------------


def lambda_event(messages: Sequence[Mapping[str, Any]], queue_url: str) -> dict[str, Any]:
    """A Lambda SQS event for messages received with all attributes and message attributes
    (the shape the library's own local worker builds, for both sides)."""
    from sqs_cluster._messages.lambda_shape import lambda_event as shaped

    return shaped(messages, queue_url=queue_url, region=REGION)


async def receive_all(sqs: Any, queue_url: str, count: int) -> list[dict[str, Any]]:
    """Receive ``count`` messages (10 a call), as the event source mapping would."""
    received: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 120
    while len(received) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"received {len(received)} of {count} messages in 120 s")
        resp = await sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            VisibilityTimeout=VISIBILITY_TIMEOUT_S,
            WaitTimeSeconds=1,
        )
        for message in resp.get("Messages", []):
            received.setdefault(message["MessageId"], message)
    return list(received.values())


def batches(messages: Sequence[dict[str, Any]], queue_url: str) -> list[dict[str, Any]]:
    """Events of ``BATCH`` records each, in the order received."""
    return [
        lambda_event(messages[i : i + BATCH], queue_url) for i in range(0, len(messages), BATCH)
    ]


async def delete_all(sqs: Any, queue_url: str, messages: Sequence[Mapping[str, Any]]) -> None:
    """Delete what was processed, as the event source mapping does after a success."""
    for i in range(0, len(messages), 10):
        entries: Any = [
            {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]}
            for n, m in enumerate(messages[i : i + 10])
        ]
        await sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)


# -- counting -----------------------------------------------------------------------------------


class Tally:
    """Requests by operation and DynamoDB write units of one phase (thread-safe)."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.writes = WriteCounter()
        self._lock = threading.Lock()

    def observe(self, service: str, operation: str, request: Mapping[str, Any]) -> None:
        """One request, as botocore's ``before-call`` sees it (a serialised request dict)."""
        with self._lock:
            self.requests[f"{service}.{operation}"] += 1
            if service == "dynamodb":
                body = request.get("body") or b"{}"
                self.writes.record(operation, json.loads(body))


class Meter:
    """Routes every counted request to the current phase's tally."""

    def __init__(self) -> None:
        self.tally = Tally()

    def start(self) -> Tally:
        """A new phase: a fresh tally from now on."""
        self.tally = Tally()
        return self.tally

    def hook(self, service: str, operation: str, request: Mapping[str, Any]) -> None:
        """``MessageClient.add_request_hook`` shape."""
        self.tally.observe(service, operation, request)

    def attach_boto3(self, client: Any) -> None:
        """Count a boto3 client's requests (once per API call, retries not counted)."""
        service = client.meta.service_model.endpoint_prefix

        def before_call(model: Any, params: Mapping[str, Any], **_: Any) -> None:
            self.hook(service, model.name, params)

        event = client.meta.service_model.service_id.hyphenize()
        client.meta.events.register(f"before-call.{event}", before_call)


@dataclass
class Phase:
    """The measurements of one phase of one side in one round."""

    messages: int
    tally: Tally
    wall_s: float = 0.0
    cpu_s: float = 0.0
    server_cpu_s: float | None = None
    handler_runs: int = 0
    batch_item_failures: int = 0
    host: dict[str, float | None] = field(default_factory=dict)

    def report(self) -> dict[str, Any]:
        """Per-message numbers."""
        n = self.messages
        requests = self.tally.requests
        return {
            "requests_per_message": round(sum(requests.values()) / n, 4),
            "requests_per_message_by_op": per_task(requests, n),
            **_per_message(self.tally.writes.report(n)),
            "client_cpu_us_per_message": round(self.cpu_s / n * 1e6, 1),
            "wall_ms_per_message": round(self.wall_s / n * 1e3, 3),
            "wall_s": round(self.wall_s, 3),
            "messages_per_s": round(n / self.wall_s, 1) if self.wall_s > 0 else None,
            "server_cpu_us_per_message": (
                round(self.server_cpu_s / n * 1e6, 1) if self.server_cpu_s is not None else None
            ),
            "handler_runs": self.handler_runs,
            "batch_item_failures": self.batch_item_failures,
            **self.host,
        }


def _per_message(report: Mapping[str, Any]) -> dict[str, Any]:
    return {k.replace("_per_task", "_per_message"): v for k, v in report.items()}


# -- the two sides ------------------------------------------------------------------------------


@dataclass
class Side:
    """What both sides share: a queue, a meter, handler runs by item, the run's settings."""

    name: str
    endpoint: str
    options: Options
    queue_url: str = ""
    meter: Meter = field(default_factory=Meter)
    runs: Counter[int] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def ran(self, item: int) -> None:
        """The handler ran for ``item``."""
        with self._lock:
            self.runs[item] += 1

    async def setup(self) -> None:
        """Create the side's resources and open its clients (not measured)."""
        raise NotImplementedError

    async def close(self) -> None:
        """Close what ``setup`` opened."""

    async def send(self, bodies: Sequence[str]) -> None:
        """Send the bodies to the side's queue."""
        raise NotImplementedError

    async def process(self, events: Sequence[dict[str, Any]]) -> int:
        """Run every event through ``options.concurrency`` containers; returns the failures."""
        raise NotImplementedError

    def largest_item_bytes(self) -> int:
        """The largest item of the side's table (DynamoDB's size rules, approximately)."""
        raise NotImplementedError


class ClusterSide(Side):
    """sqs-cluster: tracked messages, ``safe_process_batch`` on one client per container."""

    def __init__(self, endpoint: str, options: Options) -> None:
        super().__init__("sqs-cluster", endpoint, options)
        name = f"peers-{uuid.uuid4().hex[:10]}"
        self.config = Config(table=name, bucket=name, region=REGION, endpoint_url=endpoint)
        self.producer = MessageClient(self.config)
        self.containers = [MessageClient(self.config) for _ in range(options.concurrency)]

    async def setup(self) -> None:
        resources = await ensure_resources(
            self.config, queue_name=self.config.table, visibility_timeout=VISIBILITY_TIMEOUT_S
        )
        assert resources.queue_url is not None
        self.queue_url = resources.queue_url
        for client in (self.producer, *self.containers):
            await client.__aenter__()
            client.add_request_hook(self.meter.hook)

    async def close(self) -> None:
        for client in (self.producer, *self.containers):
            await client.aclose()

    async def send(self, bodies: Sequence[str]) -> None:
        await self.producer.send_message_batch(self.queue_url, list(bodies))

    async def handle(self, message: ReceivedMessage[Any]) -> dict[str, Any]:
        """The record handler."""
        self.ran(int(message.body["item"]))
        return work(message.body)

    async def process(self, events: Sequence[dict[str, Any]]) -> int:
        pending = iter(events)
        failures = [0]

        async def container(client: MessageClient) -> None:
            for event in pending:
                response = await client.safe_process_batch(
                    event,
                    self.handle,
                    concurrency=self.options.batch_concurrency,
                    context=lambda_context("peers-sqs-cluster"),
                )
                failures[0] += len(response["batchItemFailures"])

        await asyncio.gather(*(container(c) for c in self.containers))
        return failures[0]

    def largest_item_bytes(self) -> int:
        return largest_item(self.endpoint, self.config.table)


class PowertoolsSide(Side):
    """Powertools: plain messages, ``BatchProcessor`` and an ``@idempotent_function`` handler."""

    def __init__(self, endpoint: str, options: Options) -> None:
        super().__init__("powertools", endpoint, options)
        self.table = f"peers-pt-{uuid.uuid4().hex[:10]}"
        self.containers: list[Callable[[dict[str, Any]], dict[str, Any]]] = []
        self.producer: Any = None

    def _client(self, service: str) -> Any:
        import boto3

        session = boto3.session.Session(region_name=REGION)
        client = session.client(service, endpoint_url=self.endpoint)
        self.meter.attach_boto3(client)
        return client

    async def setup(self) -> None:
        await asyncio.to_thread(self._setup)

    def _setup(self) -> None:
        import boto3

        admin = boto3.session.Session(region_name=REGION)
        ddb = admin.client("dynamodb", endpoint_url=self.endpoint)
        ddb.create_table(
            TableName=self.table,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        sqs = admin.client("sqs", endpoint_url=self.endpoint)
        self.queue_url = sqs.create_queue(
            QueueName=self.table, Attributes={"VisibilityTimeout": str(VISIBILITY_TIMEOUT_S)}
        )["QueueUrl"]
        self.producer = self._client("sqs")
        self.containers = [self._container() for _ in range(self.options.concurrency)]

    def _container(self) -> Callable[[dict[str, Any]], dict[str, Any]]:
        """One Lambda container: its own client, persistence layer, config and processor."""
        from aws_lambda_powertools.utilities.batch import (
            BatchProcessor,
            EventType,
            process_partial_response,
        )
        from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
        from aws_lambda_powertools.utilities.idempotency import (
            DynamoDBPersistenceLayer,
            IdempotencyConfig,
            idempotent_function,
        )

        store = DynamoDBPersistenceLayer(
            table_name=self.table, boto3_client=self._client("dynamodb")
        )
        config = IdempotencyConfig(event_key_jmespath="messageId")
        processor = BatchProcessor(event_type=EventType.SQS)

        @idempotent_function(  # type: ignore[untyped-decorator]
            data_keyword_argument="record", persistence_store=store, config=config
        )
        def record_handler(record: SQSRecord) -> dict[str, Any]:
            body = record.json_body
            self.ran(int(body["item"]))
            return work(body)

        def invoke(event: dict[str, Any]) -> dict[str, Any]:
            context = lambda_context("peers-powertools")
            config.register_lambda_context(context)  # type: ignore[arg-type]
            response: dict[str, Any] = process_partial_response(  # type: ignore[assignment]
                event=event,
                record_handler=record_handler,
                processor=processor,
                context=context,  # type: ignore[arg-type]
            )
            return response

        return invoke

    async def send(self, bodies: Sequence[str]) -> None:
        def send_all() -> None:
            for i in range(0, len(bodies), 10):
                entries = [
                    {"Id": str(n), "MessageBody": body} for n, body in enumerate(bodies[i : i + 10])
                ]
                resp = self.producer.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
                assert not resp.get("Failed"), resp["Failed"]

        await asyncio.to_thread(send_all)

    async def process(self, events: Sequence[dict[str, Any]]) -> int:
        pending = iter(events)
        lock = threading.Lock()

        def container(invoke: Callable[[dict[str, Any]], dict[str, Any]]) -> int:
            failures = 0
            while True:
                with lock:
                    event = next(pending, None)
                if event is None:
                    return failures
                failures += len(invoke(event)["batchItemFailures"])

        def run_all() -> int:
            if len(self.containers) == 1:
                return container(self.containers[0])
            with ThreadPoolExecutor(len(self.containers)) as pool:
                return sum(pool.map(container, self.containers))

        return await asyncio.to_thread(run_all)

    def largest_item_bytes(self) -> int:
        return largest_item(self.endpoint, self.table)


def largest_item(endpoint: str, table: str) -> int:
    """Scan ``table`` (uncounted) for its largest item's size."""
    import boto3

    ddb = boto3.client("dynamodb", endpoint_url=endpoint, region_name=REGION)
    largest = 0
    for page in ddb.get_paginator("scan").paginate(TableName=table):
        for item in page.get("Items", []):
            largest = max(largest, item_size(item))
    return largest


def item_size(item: Mapping[str, Any]) -> int:
    """An item's size by DynamoDB's rules (names plus values; numbers approximated)."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _value_size(value: Mapping[str, Any]) -> int:
    (kind, v), *_ = value.items()
    if kind == "S":
        return len(v.encode())
    if kind == "N":
        return (len(v.lstrip("-").replace(".", "").strip("0")) + 1) // 2 + 1
    if kind == "B":
        return len(v)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + _value_size(x) + 1 for k, x in v.items())
    if kind == "L":
        return 3 + sum(_value_size(x) + 1 for x in v)
    return sum(_value_size({kind[0]: x}) for x in v)  # SS, NS, BS


# -- one round ----------------------------------------------------------------------------------


async def measure(
    side: Side, step: Callable[[], Awaitable[int]], messages: int, server_pid: int | None
) -> Phase:
    """Run ``step`` (which returns the batch item failures) timed alone, its requests counted."""
    phase = Phase(messages, side.meter.start())
    runs_before = sum(side.runs.values())
    load = HostLoad()
    load.start()
    server_cpu = process_cpu_seconds(server_pid)
    wall, cpu = time.perf_counter(), time.process_time()
    phase.batch_item_failures = await step()
    phase.wall_s, phase.cpu_s = time.perf_counter() - wall, time.process_time() - cpu
    phase.host = load.stop()
    server_after = process_cpu_seconds(server_pid)
    if server_cpu is not None and server_after is not None:
        phase.server_cpu_s = server_after - server_cpu
    phase.handler_runs = sum(side.runs.values()) - runs_before
    side.meter.start()
    return phase


async def one_round(
    side: Side, harness: Any, bodies: Sequence[str], server_pid: int | None
) -> dict[str, Any]:
    """Send, receive, process, deliver again, clean up; returns the per-message reports."""
    n = len(bodies)
    side.runs.clear()

    async def send() -> int:
        await side.send(bodies)
        return 0

    sent = await measure(side, send, n, server_pid)
    received = await receive_all(harness, side.queue_url, n)
    events = batches(received, side.queue_url)
    first = await measure(side, lambda: side.process(events), n, server_pid)
    duplicate = await measure(side, lambda: side.process(events), n, server_pid)
    await delete_all(harness, side.queue_url, received)
    once = len(side.runs) == n and set(side.runs.values()) == {1}
    return {
        "send": sent.report(),
        "first": first.report(),
        "duplicate": duplicate.report(),
        "every_message_handled_once": once,
    }


def summarise(rounds: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Medians over rounds of one side, phase by phase (requests by operation too)."""
    out: dict[str, Any] = {}
    for phase in PHASES:
        reports = [r[phase] for r in rounds]
        summary: dict[str, Any] = {}
        for key, value in reports[0].items():
            if isinstance(value, dict):
                ops = {op for r in reports for op in r[key]}
                medians = {op: median([r[key].get(op, 0.0) for r in reports]) for op in ops}
                summary[key] = {op: round(v, 4) for op, v in _largest_first(medians) if v}
            elif value is None:
                summary[key] = None
            else:
                middle = median([r[key] for r in reports])
                whole = isinstance(value, int) and middle.is_integer()
                summary[key] = int(middle) if whole else round(middle, 4)
        out[phase] = summary
    return out


def _largest_first(values: Mapping[str, float]) -> list[tuple[str, float]]:
    return sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))


def check(rounds: Sequence[Mapping[str, Any]], messages: int, largest: int) -> dict[str, Any]:
    """Every round: each handler ran once in the first delivery, never in the duplicate one,
    no record failed, and the table's items are under 1 KB (so one write is one unit)."""
    return {
        "first_handler_runs": [r["first"]["handler_runs"] for r in rounds],
        "duplicate_handler_runs": [r["duplicate"]["handler_runs"] for r in rounds],
        "batch_item_failures": [
            r["first"]["batch_item_failures"] + r["duplicate"]["batch_item_failures"]
            for r in rounds
        ],
        "every_message_handled_once": all(r["every_message_handled_once"] for r in rounds),
        "largest_item_bytes": largest,
        "ok": all(
            r["first"]["handler_runs"] == messages
            and r["duplicate"]["handler_runs"] == 0
            and r["first"]["batch_item_failures"] == 0
            and r["duplicate"]["batch_item_failures"] == 0
            and r["every_message_handled_once"]
            for r in rounds
        )
        and largest < 1024,
    }


def round_order(rounds: int) -> Iterator[tuple[int, tuple[str, str]]]:
    """Round ``i`` runs the sides in turn, the first side alternating."""
    for i in range(rounds):
        yield i, (SIDES if i % 2 == 0 else SIDES[::-1])


async def run(options: Options, endpoint: str, server_pid: int | None) -> dict[str, Any]:
    """Every round of both sides on one server; returns the measurements and checks."""
    from aiobotocore.session import get_session

    bodies = make_bodies(options.messages)
    sides: dict[str, Side] = {
        "sqs-cluster": ClusterSide(endpoint, options),
        "powertools": PowertoolsSide(endpoint, options),
    }
    per_round: dict[str, list[dict[str, Any]]] = {name: [] for name in SIDES}
    order: list[list[str]] = []
    out = console()
    session = get_session()
    async with session.create_client("sqs", region_name=REGION, endpoint_url=endpoint) as sqs:
        for side in sides.values():
            await side.setup()
        try:
            for i, names in round_order(options.rounds):
                order.append(list(names))
                for name in names:
                    out.print(f"  round {i + 1}/{options.rounds}: {name} ...")
                    result = await one_round(sides[name], sqs, bodies, server_pid)
                    per_round[name].append(result)
                    first = result["first"]
                    out.print(
                        f"    {first['requests_per_message']:.3f} req/msg, "
                        f"{first['client_cpu_us_per_message']:.0f} us CPU/msg, "
                        f"{first['wall_s']:.2f} s"
                    )
            largest = {
                name: await asyncio.to_thread(s.largest_item_bytes) for name, s in sides.items()
            }
        finally:
            for side in sides.values():
                await side.close()
    summary = {name: summarise(per_round[name]) for name in SIDES}
    for name in SIDES:  # the first delivery on fresh containers, before the median's warm ones
        summary[name]["cold_first"] = per_round[name][0]["first"]
    checks = {name: check(per_round[name], options.messages, largest[name]) for name in SIDES}
    ok = all(c["ok"] for c in checks.values())
    return {"order": order, "summary": summary, "rounds": per_round, "checks": checks, "ok": ok}


# -- report -------------------------------------------------------------------------------------


def build_result(
    options: Options, result: Mapping[str, Any], started: float, digest: str
) -> dict[str, Any]:
    """The JSON document: header, settings, medians, every round, checks."""
    return {
        **result_header("peers_powertools", started, digest),
        "messages": options.messages,
        "batch_size": BATCH,
        "concurrency": options.concurrency,
        "rounds": options.rounds,
        "sqs_cluster_batch_concurrency": options.batch_concurrency,
        "function_timeout_s": FUNCTION_TIMEOUT_S,
        "visibility_timeout_s": VISIBILITY_TIMEOUT_S,
        "server": "LocalAWS()",
        "versions": {"aws-lambda-powertools": _powertools_version()},
        "order": result["order"],
        "summary": result["summary"],
        "checks": result["checks"],
        "per_round": result["rounds"],
        "peak_rss_mib": peak_rss_mib(),
        "ok": result["ok"],
    }


def _powertools_version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("aws-lambda-powertools")
    except metadata.PackageNotFoundError:
        return None


def print_report(options: Options, result: Mapping[str, Any]) -> None:
    """The medians side by side, requests by operation, and the checks."""
    from rich.table import Table

    out = console()
    table = Table(
        title=(
            f"{options.messages} messages, batches of {BATCH}, concurrency {options.concurrency}, "
            f"median of {options.rounds} round(s), local AWS"
        )
    )
    table.add_column("side")
    table.add_column("phase")
    for column in (
        "req/msg",
        "WCU/msg",
        "client CPU us/msg",
        "server CPU us/msg",
        "wall ms/msg",
        "msg/s",
        "handler runs",
    ):
        table.add_column(column, justify="right")
    for name in SIDES:
        for phase in PHASES:
            p = result["summary"][name][phase]
            table.add_row(
                name,
                phase,
                f"{p['requests_per_message']:.3f}",
                f"{p['write_units_per_message']:.3f}",
                f"{p['client_cpu_us_per_message']:.0f}",
                f"{p['server_cpu_us_per_message'] or 0:.0f}",
                f"{p['wall_ms_per_message']:.2f}",
                f"{p['messages_per_s'] or 0:.0f}",
                "" if phase == "send" else str(p["handler_runs"]),
            )
    out.print(table)
    for name in SIDES:
        for phase in PHASES:
            ops = result["summary"][name][phase]["requests_per_message_by_op"]
            shown = ", ".join(f"{k} {v:.3f}" for k, v in ops.items())
            out.print(f"  {name} {phase} requests/msg: {shown}")
    for name, c in result["checks"].items():
        out.print(f"  {name} checks: {c}")
    out.print(f"  checks {'OK' if result['ok'] else 'FAILED'}")


def main() -> None:
    """Run, print the table, save JSON; exit 1 if a check failed."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000, help="messages per side and round")
    parser.add_argument("--concurrency", type=int, default=1, help="invocations at a time")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (sides alternate first)")
    parser.add_argument(
        "--batch-concurrency",
        type=int,
        default=10,
        help="records of a batch sqs-cluster runs at once (its default; Powertools runs one)",
    )
    parser.add_argument("--json", help="result path (default results/peers-powertools-<N>.json)")
    args = parser.parse_args()
    if min(args.messages, args.concurrency, args.rounds, args.batch_concurrency) < 1:
        parser.error("--messages, --concurrency, --rounds and --batch-concurrency must be >= 1")
    setup_env()
    options = Options(args.messages, args.concurrency, args.rounds, args.batch_concurrency)
    started, digest = time.time(), src_digest()
    with LocalAWS() as aws:
        result = asyncio.run(run(options, aws.endpoint_url, aws.pid))
    print_report(options, result)
    path = Path(args.json) if args.json else RESULTS / f"peers-powertools-{args.messages}.json"
    write_json(path, build_result(options, result, started, digest))
    console().print(f"results written to {path}")
    if not result["ok"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
