"""Clusters on FIFO queues: message groups, deduplication ids, and input refused up front."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from sqs_cluster import (
    ClusterRecord,
    Config,
    MessageClient,
    RecordKey,
    RecordNotFoundError,
    Status,
    ValidationError,
)
from sqs_cluster.testing import FaultInjector, FaultKind

from .conftest import Queue, make_queue, unique
from .drain import drain_queue

pytestmark = pytest.mark.asyncio

WRITES = {"PutItem", "UpdateItem", "BatchWriteItem", "TransactWriteItems", "PutObject"}
SENDS = {"SendMessage", "SendMessageBatch"}


@pytest.fixture
async def fifo(base_config: Config) -> Queue:
    return await make_queue(base_config, unique("q") + ".fifo", visibility_timeout=30)


async def peek(client: MessageClient, url: str, *, delete: bool = False) -> list[dict[str, Any]]:
    """Every message on the queue, with its system attributes: received and left hidden, or
    deleted (a FIFO group holds back its next messages while one is in flight)."""
    out: list[dict[str, Any]] = []
    while True:
        resp: Any = await client._aws.sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            VisibilityTimeout=60,
            WaitTimeSeconds=0,
        )
        got = resp.get("Messages", [])
        if not got:
            return out
        out.extend(got)
        for message in got if delete else ():
            await client._aws.sqs.delete_message(
                QueueUrl=url, ReceiptHandle=message["ReceiptHandle"]
            )


class Callbacks:
    def __init__(self) -> None:
        self.clusters: list[ClusterRecord[Any, Any]] = []

    async def __call__(self, cluster: ClusterRecord[Any, Any], get_globals: Any) -> None:
        self.clusters.append(cluster)


async def test_fifo_cluster_completes_end_to_end_with_its_callback_once(
    client: MessageClient, fifo: Queue
) -> None:
    tasks = [{"i": i} for i in range(23)]
    key = await client.create_message_cluster(
        fifo.url, tasks, globals={"n": 0}, cluster_id=unique("fifo")
    )
    assert (await client.get_message_cluster(key, consistent_read=True)).sent == 23
    seen: list[int] = []
    callbacks = Callbacks()

    async def handler(message: Any) -> None:
        seen.append(message.task["i"])

    await drain_queue(client, fifo.url, handler, on_cluster_complete=callbacks)
    assert sorted(seen) == list(range(23))
    (done,) = callbacks.clusters
    assert done.key == key and done.status is Status.COMPLETE and done.completed == 23


async def test_fifo_tasks_carry_group_and_deduplication_ids(
    base_config: Config, fifo: Queue
) -> None:
    cluster_id = unique("ids")
    async with MessageClient(base_config) as c:
        await c.create_message_cluster(
            fifo.url,
            [{"g": i % 3} for i in range(12)],
            omit_globals=True,
            cluster_id=cluster_id,
            message_group_id=lambda task: f"group-{task['g']}",
        )
        messages = await peek(c, fifo.url, delete=True)
    by_index = {json.loads(m["Body"])["index"]: m["Attributes"] for m in messages}
    assert sorted(by_index) == list(range(12))
    for index, attrs in by_index.items():
        assert attrs["MessageGroupId"] == f"group-{index % 3}"
        assert attrs["MessageDeduplicationId"] == f"{cluster_id}.{index}"


async def test_fifo_default_is_one_group_per_task(base_config: Config, fifo: Queue) -> None:
    async with MessageClient(base_config) as c:
        key = await c.create_message_cluster(fifo.url, list(range(5)), omit_globals=True)
        messages = await peek(c, fifo.url)
    groups = {m["Attributes"]["MessageGroupId"] for m in messages}
    assert groups == {f"{key.id}.{i}" for i in range(5)}


async def test_fifo_lost_send_answer_sends_no_duplicate(base_config: Config, fifo: Queue) -> None:
    """botocore sends a SendMessageBatch again when its answer was lost: the same
    deduplication ids make SQS drop the second copy (a standard queue would hold two)."""
    lose = FaultInjector(
        31, {FaultKind.READ_TIMEOUT: 1.0}, ["sqs.SendMessageBatch"], limit=1, delay_scale=0.01
    )
    async with MessageClient(base_config) as c:
        with lose.attached(c):
            await c.create_message_cluster(fifo.url, list(range(30)), omit_globals=True)
        assert lose.count(FaultKind.READ_TIMEOUT) == 1
        messages = await peek(c, fifo.url)
    assert Counter(json.loads(m["Body"])["index"] for m in messages) == Counter(range(30))


async def test_fifo_resume_sends_no_duplicate(base_config: Config, fifo: Queue) -> None:
    """A create that sent everything is called again after its progress was lost (the
    progress item deleted, as if the producer died before writing it): every task is sent
    again, and SQS drops each copy."""
    cluster_id = unique("again")
    async with MessageClient(base_config) as c:
        key = await c.create_message_cluster(
            fifo.url, list(range(60)), omit_globals=True, cluster_id=cluster_id
        )
        progress = {"pKey": {"S": key.p_key}, "rKey": {"S": "SQSMessage$progress"}}
        await c._aws.ddb.delete_item(TableName=base_config.table, Key=progress)
        await c.create_message_cluster(
            fifo.url, list(range(60)), omit_globals=True, cluster_id=cluster_id
        )
        messages = await peek(c, fifo.url)
    assert Counter(json.loads(m["Body"])["index"] for m in messages) == Counter(range(60))


@pytest.mark.parametrize(
    ("queue_kind", "group", "field"),
    [
        ("standard", "g", "message_group_id"),
        ("standard", lambda task: "g", "message_group_id"),
        ("fifo", 7, "message_group_id"),
        ("fifo", "", "message_group_id"),
        ("fifo", "x" * 129, "message_group_id"),
        ("fifo", "with space", "message_group_id"),
        ("fifo", lambda task: str(task) if task < 3 else 3, "message_group_id(tasks[3])"),
        ("fifo", lambda task: None, "message_group_id(tasks[0])"),
    ],
)
async def test_a_create_that_cannot_succeed_fails_before_its_first_write(
    base_config: Config, fifo: Queue, queue: Queue, queue_kind: str, group: Any, field: str
) -> None:
    url = fifo.url if queue_kind == "fifo" else queue.url
    cluster_id = unique("never")
    calls: list[str] = []
    async with MessageClient(base_config) as c:
        remove = c.add_request_hook(lambda service, op, params: calls.append(op))
        with pytest.raises(ValidationError) as info:
            await c.create_message_cluster(
                url, [0, 1, 2, 3], omit_globals=True, cluster_id=cluster_id, message_group_id=group
            )
        remove()
        assert info.value.field == field
        assert not (WRITES | SENDS) & set(calls), calls
        with pytest.raises(RecordNotFoundError):
            await c.get_message_cluster(RecordKey.for_message(cluster_id, url))
