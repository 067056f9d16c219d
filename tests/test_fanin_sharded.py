"""Fan-in on counter shards: a batch settled in one transaction, shards filled exactly, the
end detected once without reading the shards, duplicates never counted again."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from sqs_cluster import ClusterRecord, Config, MessageClient, ReceivedMessage, Status

from .conftest import Queue, make_queue, receive_event
from .drain import drain_queue

pytestmark = pytest.mark.asyncio


def top_counter(ddb: Any, config: Config, p_key: str) -> dict[str, Any]:
    key = {"pKey": {"S": p_key}, "rKey": {"S": "SQSMessage$counter#0"}}
    item: dict[str, Any] = ddb.get_item(TableName=config.table, Key=key, ConsistentRead=True)[
        "Item"
    ]
    return item


def shard(ddb: Any, config: Config, p_key: str, n: int) -> dict[str, Any]:
    key = {"pKey": {"S": f"{p_key}#{n}"}, "rKey": {"S": "SQSMessage$shard"}}
    item: dict[str, Any] = ddb.get_item(TableName=config.table, Key=key, ConsistentRead=True)[
        "Item"
    ]
    return item


def delta(client: MessageClient, before: dict[str, int]) -> dict[str, int]:
    now = client.request_counts.items()
    return {k: v - before.get(k, 0) for k, v in now if v > before.get(k, 0)}


async def test_a_batch_of_ten_tasks_is_settled_in_one_transaction(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    key = await client.create_message_cluster(
        queue.url, [{"i": i} for i in range(30)], omit_globals=True
    )
    event = receive_event(sqs, queue.url, max_messages=10)
    assert len(event["Records"]) == 10
    await client.safe_process_batch(event, lambda m: m.task["i"])  # warm: the table check
    again = receive_event(sqs, queue.url, max_messages=10)
    before = dict(client.request_counts)
    assert await client.safe_process_batch(again, lambda m: m.task["i"]) == {
        "batchItemFailures": []
    }
    # ten claims, then one transaction completing and counting all ten: no read at all
    assert delta(client, before) == {"dynamodb.UpdateItem": 10, "dynamodb.TransactWriteItems": 1}
    cluster = await client.get_message_cluster(key, consistent_read=True)
    assert (cluster.completed, cluster.failed, cluster.status) == (20, 0, Status.IN_PROGRESS)
    processed = [client.read_sqs_record(r).task["i"] for r in event["Records"] + again["Records"]]
    results = [t.result async for t in cluster.iter_tasks(status=Status.COMPLETE)]
    assert sorted(results) == sorted(processed)  # each result stored in the same transaction


async def test_a_large_cluster_fills_its_shards_exactly_and_ends_once(
    base_config: Config, ddb: Any
) -> None:
    queue = await make_queue(base_config, visibility_timeout=30)
    total = 760  # four shards of 190
    calls: list[ClusterRecord[Any, Any]] = []
    runs: Counter[int] = Counter()

    async def handler(message: ReceivedMessage[Any]) -> None:
        runs[message.task["i"]] += 1
        if message.task["i"] % 100 == 99 and message.receive_count == 1:
            raise RuntimeError("fails once")

    async def callback(cluster: ClusterRecord[Any, Any], get_globals: Any) -> None:
        calls.append(cluster)

    async with MessageClient(base_config) as producer:
        key = await producer.create_message_cluster(
            queue.url, [{"i": i} for i in range(total)], omit_globals=True
        )
    top = top_counter(ddb, base_config, key.p_key)
    assert (top["shards"]["N"], top["shardsLeft"]["N"]) == ("4", "4")

    async def consumer() -> None:  # each its own client, as separate containers would be
        async with MessageClient(base_config) as client:
            await drain_queue(client, queue.url, handler, on_cluster_complete=callback)

    await asyncio.gather(*(consumer() for _ in range(4)))
    assert len(calls) == 1 and (calls[0].completed, calls[0].failed) == (total, 0)
    assert set(runs) == set(range(total))
    assert all(n == (2 if i % 100 == 99 else 1) for i, n in runs.items())
    assert top_counter(ddb, base_config, key.p_key)["shardsLeft"]["N"] == "0"
    shards = [shard(ddb, base_config, key.p_key, n) for n in range(4)]
    assert [s["room"]["N"] for s in shards] == ["0"] * 4
    assert sum(int(s["completed"]["N"]) for s in shards) == total
    async with MessageClient(base_config) as reader:
        cluster = await reader.get_message_cluster(key, consistent_read=True)
    assert (cluster.status, cluster.completed, cluster.failed) == (Status.COMPLETE, total, 0)


async def test_a_duplicate_of_a_counted_task_is_not_counted_again(
    base_config: Config, queue: Queue, sqs: Any
) -> None:
    async with MessageClient(base_config) as client:
        key = await client.create_message_cluster(
            queue.url, [{"i": 0}, {"i": 1}], omit_globals=True
        )
        event = receive_event(sqs, queue.url)
        calls: list[Any] = []

        async def callback(cluster: ClusterRecord[Any, Any], get_globals: Any) -> None:
            calls.append(cluster)

        await client.safe_process_batch(event, lambda m: None, on_cluster_complete=callback)
        for record in event["Records"]:  # duplicate completions, in this process and another
            assert await client.mark_complete(record) is False
    async with MessageClient(base_config) as other:
        for record in event["Records"]:
            assert await other.mark_complete(record) is False
        again = await other.safe_process_batch(event, lambda m: None, on_cluster_complete=callback)
        cluster = await other.get_message_cluster(key, consistent_read=True)
    assert again == {"batchItemFailures": []}
    assert (cluster.completed, cluster.failed, len(calls)) == (2, 0, 1)


async def test_tasks_of_two_clusters_and_plain_messages_share_one_transaction(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    first = await client.create_message_cluster(queue.url, [{"i": 0}, {"i": 1}], omit_globals=True)
    second = await client.create_message_cluster(queue.url, [{"i": 2}], omit_globals=True)
    await client.send_message_batch(queue.url, ["plain-a", "plain-b"])
    event = receive_event(sqs, queue.url, max_messages=10)
    assert len(event["Records"]) == 5
    ended: list[str] = []

    async def callback(cluster: ClusterRecord[Any, Any], get_globals: Any) -> None:
        ended.append(cluster.id)

    await client.get_message_cluster(first)  # the table check, out of the way
    before = dict(client.request_counts)
    response = await client.safe_process_batch(event, lambda m: None, on_cluster_complete=callback)
    assert response == {"batchItemFailures": []}
    counts = delta(client, before)
    assert counts["dynamodb.UpdateItem"] >= 5  # five claims, then the two ends and callbacks
    assert counts["dynamodb.TransactWriteItems"] <= 3  # one, and a refill of each full shard
    assert sorted(ended) == sorted([first.id, second.id])
    for record in event["Records"]:
        message = client.read_sqs_record(record)
        assert (await message.get_message_record(consistent_read=True)).is_complete


async def test_a_fresh_client_hears_from_aws_once_for_a_whole_batch(
    base_config: Config, queue: Queue, sqs: Any
) -> None:
    async with MessageClient(base_config) as producer:
        await producer.send_message_batch(queue.url, list(range(10)))
    event = receive_event(sqs, queue.url, max_messages=10)
    assert len(event["Records"]) == 10
    async with MessageClient(base_config) as fresh:  # as a new Lambda container's first batch
        assert await fresh.safe_process_batch(event, lambda m: None) == {"batchItemFailures": []}
        # the ten claims judge leases on AWS's clock, learnt from one request, not ten
        assert fresh.request_counts["dynamodb.DescribeTable"] <= 1


async def test_concurrent_failures_of_a_fresh_client_read_the_redrive_policy_once(
    base_config: Config, queue: Queue, sqs: Any
) -> None:
    async with MessageClient(base_config) as producer:
        await producer.send_message_batch(queue.url, list(range(10)))
    event = receive_event(sqs, queue.url, max_messages=10)

    def fail(message: ReceivedMessage[Any]) -> None:
        raise RuntimeError("no")

    async with MessageClient(base_config) as fresh:
        response = await fresh.safe_process_batch(event, fail)
        assert len(response["batchItemFailures"]) == 10
        # the visibility timeout (leases) and the redrive policy (last receive?): one each
        assert fresh.request_counts["sqs.GetQueueAttributes"] <= 2
