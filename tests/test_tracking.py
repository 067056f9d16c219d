"""Claims, leases, completion and failure of received messages."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sqs_cluster import (
    ClaimOutcome,
    Config,
    MessageClient,
    MessageInProgressError,
    RecordNotFoundError,
    Status,
    StatusCode,
)

from .conftest import Queue, receive_event

pytestmark = pytest.mark.asyncio


async def one_record(
    client: MessageClient, queue: Queue, sqs: Any, body: Any = "x"
) -> dict[str, Any]:
    await client.send_message(queue.url, body)
    (record,) = receive_event(sqs, queue.url)["Records"]
    return record  # type: ignore[no-any-return]


def writes(client: MessageClient, before: dict[str, int]) -> int:
    ops = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")
    return sum(
        v - before.get(k, 0) for k, v in client.request_counts.items() if k.split(".")[1] in ops
    )


async def test_first_delivery_claims_then_completes(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    record = await one_record(client, queue, sqs)
    before = dict(client.request_counts)
    assert await client.is_complete(record) is False
    claimed = await client.get_message_record(
        client.read_sqs_record(record).key, consistent_read=True
    )
    assert claimed.status is Status.IN_PROGRESS and claimed.consumption_count == 1
    assert claimed.lease_until_ms is not None
    assert await client.mark_complete(record) is True
    assert writes(client, before) == 2  # claim + complete
    done = await client.get_message_record(claimed.key, consistent_read=True)
    assert done.status is Status.COMPLETE and done.status_code is StatusCode.COMPLETE
    assert done.completed_at is not None and done.lease_until_ms is None
    assert done.expires_at is not None
    assert await client.is_complete(record) is True  # a late duplicate is recognised
    assert await client.mark_complete(record) is False  # a duplicate completion changes nothing


async def test_duplicate_while_lease_is_live_is_not_processed(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    record = await one_record(client, queue, sqs)
    assert await client.is_complete(record) is False
    with pytest.raises(MessageInProgressError):
        await client.is_complete(record)
    assert (await client.claim(record)).outcome is ClaimOutcome.IN_PROGRESS


async def test_expired_lease_is_taken_over(base_config: Config, queue: Queue, sqs: Any) -> None:
    async with MessageClient(base_config.with_changes(lease_seconds=1)) as client:
        record = await one_record(client, queue, sqs)
        assert (await client.claim(record)).outcome is ClaimOutcome.CLAIMED
        assert (await client.claim(record)).outcome is ClaimOutcome.IN_PROGRESS
        await asyncio.sleep(1.2)
        taken = await client.claim(record)
        assert taken.outcome is ClaimOutcome.CLAIMED
        assert taken.record is not None and taken.record.consumption_count == 2


async def test_message_sent_with_plain_sdk_gets_a_record(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    sqs.send_message(QueueUrl=queue.url, MessageBody='{"plain": true}')
    (record,) = receive_event(sqs, queue.url)["Records"]
    message = client.read_sqs_record(record)
    assert message.tracked is False and message.key.id == record["messageId"]
    with pytest.raises(RecordNotFoundError):
        await client.get_message_record(message.key)
    assert await client.is_complete(record) is False
    created = await message.get_message_record(consistent_read=True)
    assert created.status is Status.IN_PROGRESS and created.body == '{"plain": true}'
    await client.mark_complete(record)
    assert await client.is_complete(record) is True


async def test_failure_is_recorded_and_lease_released(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    record = await one_record(client, queue, sqs)
    await client.is_complete(record)
    assert await client.mark_failed(record, ValueError("bad input")) is True
    failed = await client.get_message_record(
        client.read_sqs_record(record).key, consistent_read=True
    )
    assert failed.status is Status.ERROR and failed.status_code is StatusCode.ERROR
    assert [(e.type, e.message, e.receive_count) for e in failed.errors] == [
        ("ValueError", "bad input", 1)
    ]
    assert failed.lease_until_ms is None
    assert await client.is_complete(record) is False  # the retry may claim at once


async def test_last_receive_failure_is_marked_stopped(
    base_config: Config, queue: Queue, sqs: Any
) -> None:
    async with MessageClient(base_config) as client:
        record = await one_record(client, queue, sqs)
        record["attributes"]["ApproximateReceiveCount"] = "3"  # the queue's maxReceiveCount
        await client.is_complete(record)
        await client.mark_failed(record, RuntimeError("gave up"))
        failed = await client.read_sqs_record(record).get_message_record(consistent_read=True)
        assert failed.status_code is StatusCode.STOPPED


async def test_delete_completed_restores_immediate_delete(
    base_config: Config, queue: Queue, sqs: Any
) -> None:
    async with MessageClient(base_config.with_changes(delete_completed=True)) as client:
        record = await one_record(client, queue, sqs)
        assert await client.is_complete(record) is False
        assert await client.mark_complete(record) is True
        with pytest.raises(RecordNotFoundError):
            await client.read_sqs_record(record).get_message_record(consistent_read=True)
