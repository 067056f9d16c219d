"""Edge cases of records: late duplicates after expiry, oversized results, long error lists,
skewed clocks. Each goes through the public client on the local server."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from sqs_cluster import ClusterRecord, Config, MessageClient, ReceivedMessage, Status
from sqs_cluster._records.codec import key_item

from .conftest import Queue, receive_event

pytestmark = pytest.mark.asyncio


class Runs:
    """A handler that counts its runs per task index (or body) and returns a fixed result."""

    def __init__(self, result: Any = None) -> None:
        self.runs: Counter[Any] = Counter()
        self.result = result

    async def __call__(self, message: ReceivedMessage[Any]) -> Any:
        self.runs[message.task["i"] if message.is_task else message.body] += 1
        return self.result


class Callbacks:
    def __init__(self) -> None:
        self.calls: list[ClusterRecord[Any, Any]] = []

    async def __call__(self, cluster: ClusterRecord[Any, Any], get_globals: Any) -> None:
        self.calls.append(cluster)


def expire(ddb: Any, config: Config, message: ReceivedMessage[Any]) -> None:
    """What DynamoDB's TTL does once a record expired (the local server runs no TTL)."""
    ddb.delete_item(TableName=config.table, Key=key_item(message.key))


def by_task(client: MessageClient, event: dict[str, Any]) -> dict[int, dict[str, Any]]:
    records = {}
    for record in event["Records"]:
        records[client.read_sqs_record(record).task["i"]] = record
    return records


def event_of(event: dict[str, Any], *records: dict[str, Any]) -> dict[str, Any]:
    return {**event, "Records": list(records)}


# -- 1. late duplicates ----------------------------------------------------------------------


async def test_a_late_duplicate_of_an_expired_task_is_neither_run_nor_counted_again(
    base_config: Config, queue: Queue, sqs: Any, ddb: Any
) -> None:
    config = base_config.with_changes(completed_retention_seconds=1)
    async with MessageClient(config) as client:
        key = await client.create_message_cluster(
            queue.url, [{"i": 0}, {"i": 1}], omit_globals=True
        )
        event = receive_event(sqs, queue.url)
        tasks = by_task(client, event)
        handler, callbacks = Runs(), Callbacks()
        first = event_of(event, tasks[0])
        assert await client.safe_process_batch(first, handler, on_cluster_complete=callbacks) == {
            "batchItemFailures": []
        }
        expire(ddb, config, client.read_sqs_record(tasks[0]))

        # SQS delivers a copy of task 0 late: it is skipped, not run and not counted again
        late = await client.safe_process_batch(first, handler, on_cluster_complete=callbacks)
        assert late == {"batchItemFailures": []}
        assert handler.runs == {0: 1}
        cluster = await client.get_message_cluster(key, consistent_read=True)
        assert (cluster.status, cluster.completed, cluster.failed) == (Status.IN_PROGRESS, 1, 0)
        assert callbacks.calls == []

        await client.safe_process_batch(
            event_of(event, tasks[1]), handler, on_cluster_complete=callbacks
        )
        assert handler.runs == {0: 1, 1: 1}
        assert [(c.status, c.completed) for c in callbacks.calls] == [(Status.COMPLETE, 2)]


async def test_a_completed_task_record_lives_as_long_as_its_cluster(
    base_config: Config, queue: Queue, sqs: Any
) -> None:
    config = base_config.with_changes(completed_retention_seconds=1)
    async with MessageClient(config) as client:
        key = await client.create_message_cluster(queue.url, [{"i": 0}], omit_globals=True)
        event = receive_event(sqs, queue.url)
        await client.safe_process_batch(event, Runs())
        cluster = await client.get_message_cluster(key, consistent_read=True)
        task = await client.get_message_record(
            client.read_sqs_record(event["Records"][0]).key, consistent_read=True
        )
        assert task.status is Status.COMPLETE and cluster.status is Status.COMPLETE
        assert task.expires_at is not None and cluster.expires_at is not None
        assert task.expires_at >= cluster.expires_at


async def test_a_late_duplicate_of_an_expired_message_is_not_run_again(
    client: MessageClient, queue: Queue, sqs: Any, ddb: Any
) -> None:
    await client.send_message(queue.url, "once")
    event = receive_event(sqs, queue.url)
    handler = Runs()
    assert await client.safe_process_batch(event, handler) == {"batchItemFailures": []}
    expire(ddb, client.config, client.read_sqs_record(event["Records"][0]))
    assert await client.safe_process_batch(event, handler) == {"batchItemFailures": []}
    assert await client.is_complete(event["Records"][0]) is True
    assert handler.runs == {"once": 1}
