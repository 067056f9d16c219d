"""The demo: tracked messages end to end on the embedded local AWS (or your own endpoint).

Sends messages, processes them in Lambda-shaped batches with ``safe_process_batch`` (one message
fails on its first delivery and succeeds on the retry), then prints what happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ._client import MessageClient
from ._config import Config
from ._event import ReceivedMessage
from ._lambda_shape import lambda_event
from ._provision import ensure_resources

REGION = "us-east-1"


@dataclass
class DemoStats:
    """What the demo observed."""

    sent: int = 0
    handled: int = 0
    failures: int = 0
    batches: int = 0
    failed_once: set[int] = field(default_factory=set)


@contextlib.contextmanager
def _endpoint(endpoint_url: str | None) -> Iterator[str]:
    if endpoint_url:
        yield endpoint_url
        return
    from .local import LocalAWS

    with LocalAWS() as aws:
        yield aws.endpoint_url


def run_demo(*, messages: int = 20, endpoint_url: str | None = None, out: Any = print) -> DemoStats:
    """Run the demo and return its statistics (prints progress through ``out``)."""
    import os

    for var, value in (("AWS_ACCESS_KEY_ID", "demo"), ("AWS_SECRET_ACCESS_KEY", "demo")):
        if endpoint_url is None:
            os.environ.setdefault(var, value)
    with _endpoint(endpoint_url) as endpoint:
        out(f"local AWS at {endpoint}")
        return asyncio.run(_run(endpoint, messages, out))


async def _run(endpoint: str, count: int, out: Any) -> DemoStats:
    suffix = uuid.uuid4().hex[:8]
    config = Config(
        table=f"demo-{suffix}", bucket=f"demo-{suffix}", region=REGION, endpoint_url=endpoint
    )
    resources = await ensure_resources(config, queue_name=f"demo-{suffix}", visibility_timeout=30)
    assert resources.queue_url is not None
    stats = DemoStats()
    started = time.perf_counter()
    async with MessageClient(config) as client:
        keys = await client.send_message_batch(
            resources.queue_url, [{"n": i} for i in range(count)], meta={"demo": True}
        )
        stats.sent = len(keys)
        out(f"sent {len(keys)} tracked messages (records written first)")
        flaky = count // 2

        async def handler(message: ReceivedMessage[Any]) -> None:
            n = message.body["n"]
            if n == flaky and n not in stats.failed_once:
                stats.failed_once.add(n)
                raise RuntimeError(f"message {n} fails on its first delivery")
            stats.handled += 1

        await _drain(client, resources.queue_url, handler, stats, out)
        elapsed = time.perf_counter() - started
        record = await client.get_message_record(keys[flaky], consistent_read=True)
        _report(client, stats, record, elapsed, out)
    return stats


async def _drain(
    client: MessageClient, queue_url: str, handler: Any, stats: DemoStats, out: Any
) -> None:
    sqs = client._aws.sqs
    idle = 0
    while idle < 2:
        resp = await sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=1,
        )
        received = resp.get("Messages", [])
        if not received:
            idle += 1
            continue
        idle = 0
        event = lambda_event(received, queue_url=queue_url, region=REGION)
        response = await client.safe_process_batch(event, handler, delete_succeeded=True)
        stats.batches += 1
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        stats.failures += len(failed)
        for message in received:
            if message["MessageId"] in failed:  # return it at once instead of after the timeout
                await sqs.change_message_visibility(
                    QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
        out(f"batch {stats.batches}: {len(received)} received, {len(failed)} failed")


def _report(client: MessageClient, stats: DemoStats, record: Any, elapsed: float, out: Any) -> None:
    requests = sum(client.request_counts.values())
    out("")
    out(f"messages sent:      {stats.sent}")
    out(f"handled once each:  {stats.handled}")
    out(f"failed deliveries:  {stats.failures} (retried and then succeeded)")
    out(f"duration:           {elapsed:.2f} s")
    out(f"AWS requests:       {requests} ({requests / max(1, stats.sent):.2f} per message)")
    for name, value in sorted(client.request_counts.items()):
        out(f"  {name:<28} {value}")
    out(
        f"flaky message record: status={record.status.value} "
        f"consumptions={record.consumption_count}"
    )
    for entry in record.errors:
        out(
            f"  error kept on the record: {entry.type}: {entry.message} "
            f"(receive {entry.receive_count})"
        )
