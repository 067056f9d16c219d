"""safe_process_batch: partial batch responses, duplicates, FIFO groups and bad events."""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from typing import Any

import pytest

from sqs_cluster import MessageClient, ReceivedMessage, Status, ValidationError

from .conftest import Queue, make_queue, receive_event, unique

pytestmark = pytest.mark.asyncio


async def event_of(
    client: MessageClient, sqs: Any, queue_url: str, bodies: list[Any]
) -> dict[str, Any]:
    await client.send_message_batch(queue_url, bodies)
    return receive_event(sqs, queue_url, max_messages=len(bodies))


async def test_only_failed_messages_come_back(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    event = await event_of(client, sqs, queue.url, [{"n": i} for i in range(5)])

    async def handler(message: ReceivedMessage[Any]) -> None:
        if message.body["n"] == 3:
            raise ValueError("three is bad")

    response = await client.safe_process_batch(event, handler)
    bad = [r["messageId"] for r in event["Records"] if '"n":3' in r["body"]]
    assert response == {"batchItemFailures": [{"itemIdentifier": bad[0]}]}
    statuses = []
    for r in event["Records"]:
        rec = await client.read_sqs_record(r).get_message_record(consistent_read=True)
        statuses.append((rec.status, len(rec.errors)))
    assert sorted(statuses, key=str) == sorted(
        [(Status.COMPLETE, 0)] * 4 + [(Status.ERROR, 1)], key=str
    )


async def test_duplicate_delivery_runs_handler_once(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    event = await event_of(client, sqs, queue.url, ["a", "b"])
    duplicate = copy.deepcopy(event)  # SQS delivered the same messages to a second invocation
    calls: list[str] = []

    async def handler(message: ReceivedMessage[Any]) -> None:
        calls.append(message.message_id)
        await asyncio.sleep(0.05)

    first, second = await asyncio.gather(
        client.safe_process_batch(event, handler), client.safe_process_batch(duplicate, handler)
    )
    again = await client.safe_process_batch(event, handler)  # a late redelivery
    assert sorted(calls) == sorted(r["messageId"] for r in event["Records"])
    assert again == {"batchItemFailures": []}
    # the concurrent duplicates found a live lease and were handed back, not dropped
    handed_back = first["batchItemFailures"] + second["batchItemFailures"]
    assert sorted(f["itemIdentifier"] for f in handed_back) == sorted(calls)


async def test_sync_handlers_run_concurrently_within_the_bound(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    event = await event_of(client, sqs, queue.url, list(range(10)))
    lock = threading.Lock()
    active = {"now": 0, "max": 0}

    def handler(message: ReceivedMessage[Any]) -> None:
        with lock:
            active["now"] += 1
            active["max"] = max(active["max"], active["now"])
        time.sleep(0.1)
        with lock:
            active["now"] -= 1

    response = await client.safe_process_batch(event, handler, concurrency=4)
    assert response == {"batchItemFailures": []}
    assert 1 < active["max"] <= 4


async def test_track_false_never_touches_dynamodb(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    event = await event_of(client, sqs, queue.url, [1, 2, 3])
    before = {k: v for k, v in client.request_counts.items() if k.startswith("dynamodb")}

    def handler(message: ReceivedMessage[Any]) -> None:
        if message.body == 2:
            raise RuntimeError("no")

    response = await client.safe_process_batch(event, handler, track=False)
    after = {k: v for k, v in client.request_counts.items() if k.startswith("dynamodb")}
    assert after == before
    assert len(response["batchItemFailures"]) == 1


async def test_delete_succeeded_removes_only_successes(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    event = await event_of(client, sqs, queue.url, list(range(12)))

    def handler(message: ReceivedMessage[Any]) -> None:
        if message.body % 4 == 0:
            raise RuntimeError("retry me")

    response = await client.safe_process_batch(event, handler, delete_succeeded=True)
    assert len(response["batchItemFailures"]) == 3
    attrs = sqs.get_queue_attributes(
        QueueUrl=queue.url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    in_queue = int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )
    assert in_queue == 3


async def test_fifo_group_stops_at_first_failure(
    client: MessageClient, base_config: Any, sqs: Any
) -> None:
    fifo = await make_queue(base_config, unique("f") + ".fifo")
    from sqs_cluster import Message

    bodies = [
        Message(body=f"{g}{i}", message_group_id=g, message_deduplication_id=f"{g}{i}")
        for g in ("A", "B")
        for i in range(3)
    ]
    event = await event_of(client, sqs, fifo.url, list(bodies))
    seen: list[str] = []

    async def handler(message: ReceivedMessage[Any]) -> None:
        seen.append(message.body)
        if message.body == "A1":
            raise RuntimeError("A1 fails")

    response = await client.safe_process_batch(event, handler)
    failed_bodies = sorted(
        r["body"]
        for r in event["Records"]
        if r["messageId"] in {f["itemIdentifier"] for f in response["batchItemFailures"]}
    )
    assert failed_bodies == ["A1", "A2"]
    assert "A2" not in seen and sorted(seen) == ["A0", "A1", "B0", "B1", "B2"]


async def test_a_malformed_key_attribute_fails_only_its_record(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    event = await event_of(client, sqs, queue.url, ["good", "forged"])
    (forged,) = [r for r in event["Records"] if r["body"] == "forged"]
    forged["messageAttributes"]["sqsClusterKey"]["stringValue"] = "{not json"
    seen: list[Any] = []
    response = await client.safe_process_batch(event, lambda m: seen.append(m.body))
    assert response == {"batchItemFailures": [{"itemIdentifier": forged["messageId"]}]}
    assert seen == ["good"]


async def test_a_handler_that_is_not_callable_is_rejected_up_front(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    event = await event_of(client, sqs, queue.url, ["x"])
    before = dict(client.request_counts)
    with pytest.raises(ValidationError, match=r"^handler: expected a callable"):
        await client.safe_process_batch(event, "handle")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"^on_cluster_complete: expected a callable"):
        await client.safe_process_batch(event, print, on_cluster_complete=42)  # type: ignore[arg-type]
    assert dict(client.request_counts) == before
