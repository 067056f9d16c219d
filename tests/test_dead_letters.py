"""process_dead_letters: messages whose receives ran out with no outcome recorded are settled."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sqs_cluster import (
    ClusterRecord,
    Config,
    MessageClient,
    RecordNotFoundError,
    Status,
    StatusCode,
    ValidationError,
)

from .conftest import Queue, make_queue, receive_event

pytestmark = pytest.mark.asyncio

EXHAUSTED = "ReceivesExhausted"


class Callbacks:
    """Records every on_cluster_complete call."""

    def __init__(self) -> None:
        self.calls: list[ClusterRecord[Any, Any]] = []

    async def __call__(self, cluster: ClusterRecord[Any, Any], get_globals: Any) -> None:
        self.calls.append(cluster)


def receive_once(sqs: Any, queue: Queue, count: int) -> list[dict[str, Any]]:
    """Receive ``count`` messages (their one allowed receive); they are visible again at once."""
    event = receive_event(sqs, queue.url, max_messages=count, visibility=0)
    records: list[dict[str, Any]] = event["Records"]
    assert len(records) == count
    return records


def dead_letters(sqs: Any, queue: Queue, count: int) -> dict[str, Any]:
    """Receive once more, so SQS moves the messages to the DLQ; the DLQ's Lambda event."""
    assert receive_event(sqs, queue.url, visibility=0)["Records"] == []
    event = receive_event(sqs, queue.dlq_url, max_messages=count)
    assert len(event["Records"]) == count
    return event


def by_index(records: list[dict[str, Any]], client: Any) -> dict[int, dict[str, Any]]:
    return {client.read_sqs_record(r).task_index: r for r in records}


def snapshot(ddb: Any, config: Config, keys: list[Any]) -> list[Any]:
    """Every item of the given records' partitions, as stored."""
    items = []
    for key in keys:
        resp = ddb.query(
            TableName=config.table,
            KeyConditionExpression="pKey = :p",
            ExpressionAttributeValues={":p": {"S": key.p_key}},
            ConsistentRead=True,
        )
        items.append(sorted(resp["Items"], key=lambda i: i["rKey"]["S"]))
    return items


@pytest.mark.parametrize(
    ("died", "tolerated", "status"),
    [("before its claim", None, Status.ERROR), ("holding an expired lease", 1, Status.COMPLETE)],
)
async def test_a_task_whose_worker_died_is_counted_failed_once(
    base_config: Config, ddb: Any, sqs: Any, died: str, tolerated: Any, status: Status
) -> None:
    queue = await make_queue(base_config, max_receive_count=1)
    async with MessageClient(base_config.with_changes(lease_seconds=1)) as client:
        key = await client.create_message_cluster(
            queue.url, ["ok", "dies"], omit_globals=True, tolerated_failures=tolerated
        )
        records = by_index(receive_once(sqs, queue, 2), client)
        assert await client.is_complete(records[0]) is False
        await client.mark_complete(records[0])
        if died == "holding an expired lease":
            assert await client.is_complete(records[1]) is False  # claimed, then the worker dies
            await asyncio.sleep(1.1)
        event = dead_letters(sqs, queue, 2)
        dead = client.read_sqs_record(by_index(event["Records"], client)[1])

        callbacks = Callbacks()
        response = await client.process_dead_letters(event, on_cluster_complete=callbacks)
        assert response == {"batchItemFailures": []}
        cluster = await client.get_message_cluster(key, consistent_read=True)
        assert (cluster.completed, cluster.failed, cluster.status) == (1, 1, status)
        assert [c.status for c in callbacks.calls] == [status]
        assert cluster.callback_state == "DONE" and cluster.callback_attempts == 1
        record = await client.get_message_record(dead.key, consistent_read=True)
        assert (record.status, record.status_code) == (Status.ERROR, StatusCode.STOPPED)
        assert [e.type for e in record.errors] == [EXHAUSTED]
        assert "dead-letter queue" in record.errors[0].message
        assert record.lease_until_ms is None
        failed = [t.task_index async for t in cluster.iter_tasks(status=Status.ERROR)]
        assert failed == [1]
        if died == "holding an expired lease":  # the worker was only slow, and finishes late
            assert await client.mark_complete(records[1]) is False
            cluster = await client.get_message_cluster(key, consistent_read=True)
            assert (cluster.completed, cluster.failed) == (1, 1)

        before = snapshot(ddb, base_config, [key, dead.key])
        again = await client.process_dead_letters(event, on_cluster_complete=callbacks)
        assert again == {"batchItemFailures": []}  # a duplicate of the DLQ batch is harmless
        assert snapshot(ddb, base_config, [key, dead.key]) == before
        assert len(callbacks.calls) == 1


async def test_a_live_lease_comes_back_until_it_expires(base_config: Config, sqs: Any) -> None:
    queue = await make_queue(base_config, max_receive_count=1)
    async with MessageClient(base_config.with_changes(lease_seconds=3)) as client:
        key = await client.create_message_cluster(queue.url, ["slow"], omit_globals=True)
        (record,) = receive_once(sqs, queue, 1)
        assert await client.is_complete(record) is False  # a worker may still be running it
        event = dead_letters(sqs, queue, 1)
        callbacks = Callbacks()
        response = await client.process_dead_letters(event, on_cluster_complete=callbacks)
        message_id = event["Records"][0]["messageId"]
        assert response == {"batchItemFailures": [{"itemIdentifier": message_id}]}
        cluster = await client.get_message_cluster(key, consistent_read=True)
        assert (cluster.failed, cluster.status, callbacks.calls) == (0, Status.IN_PROGRESS, [])
        task = await client.read_sqs_record(record).get_message_record(consistent_read=True)
        assert (task.status, task.errors) == (Status.IN_PROGRESS, [])

        await asyncio.sleep(3.1)  # the lease expired: nobody is running it any more
        response = await client.process_dead_letters(event, on_cluster_complete=callbacks)
        assert response == {"batchItemFailures": []}
        cluster = await client.get_message_cluster(key, consistent_read=True)
        assert (cluster.failed, cluster.status, len(callbacks.calls)) == (1, Status.ERROR, 1)


async def test_settled_tasks_change_nothing(
    base_config: Config, client: MessageClient, ddb: Any, sqs: Any
) -> None:
    queue = await make_queue(base_config, max_receive_count=1)
    key = await client.create_message_cluster(queue.url, ["ok", "fails"], omit_globals=True)
    records = by_index(receive_once(sqs, queue, 2), client)
    for index, record in records.items():
        assert await client.is_complete(record) is False
        if index == 0:
            await client.mark_complete(record)
        else:  # the handler raised on the last allowed receive: counted failed already
            await client.mark_failed(record, ValueError("bad task"))
    first = Callbacks()
    assert await client.on_cluster_complete(key, first) is True
    event = dead_letters(sqs, queue, 2)
    task_keys = [client.read_sqs_record(r).key for r in event["Records"]]
    before = snapshot(ddb, base_config, [key, *task_keys])

    later = Callbacks()
    response = await client.process_dead_letters(event, on_cluster_complete=later)
    assert response == {"batchItemFailures": []}
    assert snapshot(ddb, base_config, [key, *task_keys]) == before
    assert later.calls == []


async def test_dead_letters_of_a_counted_last_task_end_its_cluster(
    base_config: Config, client: MessageClient, sqs: Any
) -> None:
    """The worker counted the last task, then died before the callback, on its last receive."""
    queue = await make_queue(base_config, max_receive_count=1)
    key = await client.create_message_cluster(queue.url, ["only"], omit_globals=True)
    (record,) = receive_once(sqs, queue, 1)
    assert await client.is_complete(record) is False
    await client.mark_complete(record)  # counted and ended; the callback never ran
    cluster = await client.get_message_cluster(key, consistent_read=True)
    assert cluster.callback_state == "PENDING"
    callbacks = Callbacks()
    event = dead_letters(sqs, queue, 1)
    assert await client.process_dead_letters(event, on_cluster_complete=callbacks) == {
        "batchItemFailures": []
    }
    assert [c.status for c in callbacks.calls] == [Status.COMPLETE]


async def test_plain_messages(base_config: Config, client: MessageClient, sqs: Any) -> None:
    queue = await make_queue(base_config, max_receive_count=1)
    await client.send_message_batch(queue.url, ["done", "fails", "dies"])
    sqs.send_message(QueueUrl=queue.url, MessageBody="untracked")
    received = {r["body"]: r for r in receive_once(sqs, queue, 4)}
    assert await client.is_complete(received["done"]) is False
    await client.mark_complete(received["done"])
    assert await client.is_complete(received["fails"]) is False
    await client.mark_failed(received["fails"], ValueError("bad message"))  # final: last receive

    event = dead_letters(sqs, queue, 4)
    response = await client.process_dead_letters(event)
    assert response == {"batchItemFailures": []}
    records = {}
    for r in event["Records"]:
        message = client.read_sqs_record(r)
        if message.tracked:
            records[r["body"]] = await message.get_message_record(consistent_read=True)
        else:
            with pytest.raises(RecordNotFoundError):  # nothing was written for it
                await message.get_message_record(consistent_read=True)
    assert set(records) == {"done", "fails", "dies"}
    assert (records["done"].status, records["done"].errors) == (Status.COMPLETE, [])
    assert [e.type for e in records["fails"].errors] == ["ValueError"]
    dies = records["dies"]
    assert (dies.status, dies.status_code) == (Status.ERROR, StatusCode.STOPPED)
    assert [e.type for e in dies.errors] == [EXHAUSTED]

    assert await client.process_dead_letters(event) == {"batchItemFailures": []}
    assert await client.get_message_record(dies.key, consistent_read=True) == dies


async def test_one_write_per_unsettled_message(base_config: Config, sqs: Any) -> None:
    queue = await make_queue(base_config, max_receive_count=1)
    async with MessageClient(base_config) as client:
        await client.send_message_batch(queue.url, ["a", "b", "c"])
        receive_once(sqs, queue, 3)
        messages = dead_letters(sqs, queue, 3)
        key = await client.create_message_cluster(queue.url, ["t0", "t1"], omit_globals=True)
        receive_once(sqs, queue, 2)
        tasks = dead_letters(sqs, queue, 2)

        def requests(before: dict[str, int]) -> dict[str, int]:
            now = client.request_counts.items()
            return {k: v - before.get(k, 0) for k, v in now if v > before.get(k, 0)}

        before = dict(client.request_counts)
        assert await client.process_dead_letters(messages) == {"batchItemFailures": []}
        assert requests(before) == {"dynamodb.UpdateItem": 3}  # one write each, no read
        before = dict(client.request_counts)
        assert await client.process_dead_letters(tasks, concurrency=1) == {"batchItemFailures": []}
        assert requests(before) == {
            # each task failed and counted in one transaction; the last one first learns the
            # room left on the cluster's one counter shard, then fills it, ending the counting
            "dynamodb.TransactWriteItems": 3,
            "dynamodb.Query": 1,  # that one reads the cluster
            "dynamodb.BatchGetItem": 1,  # and its counter shard
            "dynamodb.UpdateItem": 1,  # and ends it
        }
        cluster = await client.get_message_cluster(key, consistent_read=True)
    assert (cluster.failed, cluster.status) == (2, Status.ERROR)


async def test_records_of_their_own_queue_are_refused(
    base_config: Config, client: MessageClient, sqs: Any
) -> None:
    queue = await make_queue(base_config, max_receive_count=1)
    await client.send_message(queue.url, "live")
    event = receive_event(sqs, queue.url)  # the queue itself: not SQS giving up on it
    with pytest.raises(ValidationError, match=r"event.Records\[0\]: .*dead-letter queue"):
        await client.process_dead_letters(event)
    message = client.read_sqs_record(event["Records"][0])
    record = await message.get_message_record(consistent_read=True)
    assert (record.status, record.errors) == (Status.PRE_FLIGHT, [])
