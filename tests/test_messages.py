"""Sending tracked messages and reading and updating their records."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiobotocore.session import get_session

from sqs_cluster import (
    Config,
    Message,
    MessageClient,
    PartialSendError,
    RecordKey,
    RecordType,
    Status,
    StatusCode,
    ValidationError,
)

from .conftest import Queue
from .faults import (
    FaultyClient,
    always_fail_entry,
    fail_entries_once,
    unprocessed_keys_once,
    unprocessed_once,
)

pytestmark = pytest.mark.asyncio


def queue_depth(sqs: Any, url: str) -> int:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attrs["Attributes"]["ApproximateNumberOfMessages"])


def drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            VisibilityTimeout=60,
        ).get("Messages", [])
        if not got:
            return out
        out.extend(got)


async def test_record_is_written_before_the_message(client: MessageClient, queue: Queue) -> None:
    order: list[str] = []
    remove = client.add_request_hook(lambda service, op, params: order.append(op))
    key = await client.send_message(queue.url, {"hello": "world"}, meta={"ratio": 1.0})
    await client.send_message(queue.url, "again")
    remove()
    checks, writes = order[:-4], order[-4:]
    assert writes == ["PutItem", "SendMessage"] * 2
    # before the first write, once per process (and queue): the table and the queue exist
    assert sorted(checks) in (["DescribeTable", "GetQueueAttributes"], ["GetQueueAttributes"])
    record = await client.get_message_record(key, consistent_read=True)
    assert record.status is Status.PRE_FLIGHT and record.status_code is StatusCode.PRE_FLIGHT
    assert record.type is RecordType.MESSAGE and record.url == queue.url
    assert record.meta == {"ratio": 1.0} and isinstance(record.meta["ratio"], float)
    assert record.consumption_count == 0 and record.errors == []
    assert isinstance(record.expires_at, int) and record.expires_at > 1_700_000_000
    assert record.started_at is not None and record.started_at.endswith("Z")


async def test_plain_consumers_get_the_body_unchanged(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    await client.send_message(queue.url, "plain text, not JSON")
    await client.send_message(queue.url, {"n": 2.5, "s": "é"})
    bodies = sorted(m["Body"] for m in drain(sqs, queue.url))
    assert bodies == sorted(
        [
            "plain text, not JSON",
            json.dumps({"n": 2.5, "s": "é"}, ensure_ascii=False, separators=(",", ":")),
        ]
    )


async def test_key_travels_in_a_message_attribute(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    key = await client.send_message(queue.url, {"x": 1})
    (message,) = drain(sqs, queue.url)
    attr = message["MessageAttributes"]["sqsClusterKey"]["StringValue"]
    assert RecordKey.coerce(json.loads(attr)) == key


async def test_ten_user_attributes_clash_with_the_key(client: MessageClient, queue: Queue) -> None:
    attrs = {f"a{i}": {"DataType": "String", "StringValue": "v"} for i in range(10)}
    before = dict(client.request_counts)
    with pytest.raises(ValidationError, match=r"message_attributes") as info:
        await client.send_message(queue.url, "x", MessageAttributes=attrs)
    assert "at most 9" in str(info.value)
    assert dict(client.request_counts) == before  # nothing written
    nine = dict(list(attrs.items())[:9])
    await client.send_message(queue.url, "x", MessageAttributes=nine)


async def test_oversized_body_names_the_limit(base_config: Config, queue: Queue) -> None:
    async with MessageClient(base_config.with_changes(bucket=None)) as plain:
        with pytest.raises(ValidationError, match=r"^body: message is \d+ bytes") as info:
            await plain.send_message(queue.url, "x" * 1_048_577)
        assert "the queue's limit is 1048576 bytes (set Config.bucket" in str(info.value)
        assert not sum(plain.request_counts.values())  # refused before any request
    async with MessageClient(base_config.with_changes(offload_payloads=False)) as off:
        with pytest.raises(ValidationError, match=r"Config.offload_payloads is off"):
            await off.send_message(queue.url, "é" * 524_289)  # 1,048,578 bytes in UTF-8


async def test_the_queues_smaller_maximum_message_size_applies(
    base_config: Config, queue: Queue, sqs: Any
) -> None:
    """Without offloading, a message above the queue's own limit is refused, naming it."""
    sqs.set_queue_attributes(QueueUrl=queue.url, Attributes={"MaximumMessageSize": "2048"})
    async with MessageClient(base_config.with_changes(offload_payloads=False)) as client:
        await _refused_above_the_queue_limit(client, queue)


async def _refused_above_the_queue_limit(client: MessageClient, queue: Queue) -> None:
    before = dict(client.request_counts)
    with pytest.raises(ValidationError, match=r"^entries\[1\]: .* the queue's limit is 2048 bytes"):
        await client.send_message_batch(queue.url, ["small", "x" * 3000])
    with pytest.raises(ValidationError, match=r"^body: .* the queue's limit is 2048 bytes"):
        await client.send_message(queue.url, "x" * 3000)
    counts = {k: v - before.get(k, 0) for k, v in client.request_counts.items()}
    assert {k for k, v in counts.items() if v} <= {
        "dynamodb.DescribeTable",
        "sqs.GetQueueAttributes",
    }
    assert counts["sqs.GetQueueAttributes"] == 1  # once per process and queue


async def test_resource_checks_run_once_per_process_not_per_client(
    base_config: Config, queue: Queue
) -> None:
    """A Lambda container that opens a client per invocation checks its resources once."""
    counts = []
    for _ in range(3):
        async with MessageClient(base_config) as fresh:
            await fresh.send_message(queue.url, "x")
            counts.append(dict(fresh.request_counts))
    assert counts[0].get("sqs.GetQueueAttributes") == 1  # this queue is new: checked once
    for later in counts[1:]:
        assert later == {"dynamodb.PutItem": 1, "sqs.SendMessage": 1}


async def test_batch_sends_any_number_in_batches_of_ten(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    before = dict(client.request_counts)
    entries: list[Any] = [{"i": i} for i in range(120)]
    entries[5] = Message(body="delayed", delay_seconds=0)
    keys = await client.send_message_batch(queue.url, entries, meta={"batch": 1})
    counts = {k: v - before.get(k, 0) for k, v in client.request_counts.items()}
    assert len(keys) == 120 and len(set(keys)) == 120
    assert counts["sqs.SendMessageBatch"] == 12
    assert counts["dynamodb.BatchWriteItem"] == 5  # ceil(120 / 25)
    assert queue_depth(sqs, queue.url) == 120
    records = await client.get_message_records(keys)
    assert all(r is not None and r.meta == {"batch": 1} for r in records)
    assert records[7] is not None and json.loads(records[7].body or "") == {"i": 7}


async def test_failed_entries_and_unprocessed_items_are_retried(
    base_config: Config, queue: Queue, sqs: Any, real: dict[str, Any]
) -> None:
    fsqs = FaultyClient(real["sqs"], send_message_batch=fail_entries_once(3))
    fddb = FaultyClient(real["dynamodb"], batch_write_item=unprocessed_once(7))
    clients = {**real, "sqs": fsqs, "dynamodb": fddb}
    async with MessageClient(base_config, clients=clients) as c:
        keys = await c.send_message_batch(queue.url, list(range(30)))
        records = await c.get_message_records(keys)
    assert len(keys) == 30 and all(r is not None for r in records)
    assert fsqs.calls["send_message_batch"] == 4  # 3 batches + 1 retry
    assert fddb.calls["batch_write_item"] == 3  # 2 chunks + 1 retry
    assert queue_depth(sqs, queue.url) == 30  # nothing lost, nothing doubled


async def test_final_failures_list_what_was_and_was_not_sent(
    base_config: Config, queue: Queue, sqs: Any, real: dict[str, Any]
) -> None:
    fsqs = FaultyClient(real["sqs"], send_message_batch=always_fail_entry("13"))
    async with MessageClient(base_config, clients={**real, "sqs": fsqs}) as c:
        with pytest.raises(PartialSendError) as info:
            await c.send_message_batch(queue.url, list(range(20)))
    error = info.value
    assert error.failed_indexes == [13]
    assert sorted(error.sent) == [i for i in range(20) if i != 13]
    assert "19 of 20 entries sent" in str(error)
    assert queue_depth(sqs, queue.url) == 19


async def test_get_records_batches_and_retries_unprocessed_keys(
    base_config: Config, queue: Queue, real: dict[str, Any]
) -> None:
    fddb = FaultyClient(real["dynamodb"], batch_get_item=unprocessed_keys_once(5))
    async with MessageClient(base_config, clients={**real, "dynamodb": fddb}) as c:
        keys = await c.send_message_batch(queue.url, list(range(130)))
        missing = RecordKey.for_message("does-not-exist", queue.url)
        records = await c.get_message_records([*keys, missing])
    assert fddb.calls["batch_get_item"] == 3  # 100 + 31 keys, plus one retry
    assert [json.loads(r.body or "") for r in records[:-1] if r] == list(range(130))
    assert records[-1] is None


async def test_update_record_changes_user_fields_only(client: MessageClient, queue: Queue) -> None:
    key = await client.send_message(queue.url, "x", meta={"n": 1})
    record = await client.update_message_record(key, {"meta": {"n": 2}, "owner": "me"})
    assert record.meta == {"n": 2} and record.user == {"owner": "me"}
    record = await client.update_message_record(
        key, lambda r: {"meta": {"n": (r.meta or {})["n"] + 1}}
    )
    assert record.meta == {"n": 3} and record.user == {"owner": "me"} and record.revision == 2
    for field in ("status", "completedAt", "consumptionCount", "expiresAt"):
        with pytest.raises(ValidationError, match=f"changes.{field}"):
            await client.update_message_record(key, {field: "x"})


class Aioboto3StyleSession:
    """Shaped like aioboto3.Session: ``client(name, **kwargs)`` returns an async context."""

    def __init__(self) -> None:
        self.created: list[str] = []
        self._session: Any = get_session()

    def client(self, service_name: str, **kwargs: Any) -> Any:
        self.created.append(service_name)
        return self._session.create_client(service_name, **kwargs)


@pytest.mark.parametrize("kind", ["aiobotocore", "aioboto3-style"])
async def test_callers_can_bring_their_own_session(
    base_config: Config, queue: Queue, kind: str
) -> None:
    session: Any = get_session() if kind == "aiobotocore" else Aioboto3StyleSession()
    async with MessageClient(base_config, session=session) as c:
        key = await c.send_message(queue.url, {"x": 1})
        assert (await c.get_message_record(key)).body == '{"x":1}'
    if kind != "aiobotocore":
        assert sorted(session.created) == ["dynamodb", "s3", "sqs"]


async def test_ready_clients_are_used_and_left_open(
    base_config: Config, queue: Queue, real: dict[str, Any]
) -> None:
    async with MessageClient(base_config, clients=real) as c:
        await c.send_message(queue.url, "x")
    # still usable: the library did not close clients it did not create
    assert (await real["sqs"].get_queue_url(QueueName=queue.url.rsplit("/", 1)[1]))["QueueUrl"]
