"""Idempotent sends: a producer that runs twice with the same ``idempotency_key`` sends its
message once, a send that died between the record and the message is completed by the next
one, and a key reused for another message is an error. Async client and blocking facade."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from sqs_cluster import (
    Config,
    IdempotencyConflictError,
    Message,
    MessageClient,
    PartialSendError,
    ReceivedMessage,
    RecordKey,
    SentKeys,
    Status,
    ValidationError,
    sync,
)
from sqs_cluster.testing import FaultInjector, FaultKind

from .conftest import Queue, make_queue, receive_event, unique
from .sync_api import awaitable_facade


def received(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Every message on the queue, as Lambda event records (hidden for 30 s once received)."""
    records: list[dict[str, Any]] = receive_event(sqs, url, max_messages=100)["Records"]
    return records


def keys_on(records: list[dict[str, Any]]) -> Counter[str]:
    return Counter(r["messageAttributes"]["sqsClusterKey"]["stringValue"] for r in records)


def wire(key: RecordKey) -> str:
    return json.dumps(key.to_dict(), separators=(",", ":"))


class Runs:
    """A handler that counts its runs by body."""

    def __init__(self) -> None:
        self.bodies: Counter[str] = Counter()

    def __call__(self, message: ReceivedMessage[Any]) -> None:
        self.bodies[json.dumps(message.body, sort_keys=True)] += 1


@pytest.fixture(params=["async", "sync"])
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@asynccontextmanager
async def opened(config: Config, flavour: str) -> AsyncIterator[tuple[MessageClient, Any]]:
    """A client of the flavour on ``config``, and what a fault injector attaches to."""
    if flavour == "sync":
        async with awaitable_facade(config) as facade:
            yield facade, facade._target  # the sqs_cluster.sync.MessageClient itself
        return
    async with MessageClient(config) as client:
        yield client, client


# -- one message ------------------------------------------------------------------------------


async def test_same_key_twice_sends_one_message_under_one_key(
    client: MessageClient, queue: Queue, sqs: Any, caplog: pytest.LogCaptureFixture
) -> None:
    first = await client.send_message(queue.url, {"order": 7}, idempotency_key="order-7")
    with caplog.at_level(logging.INFO, logger="sqs_cluster"):
        second = await client.send_message(queue.url, {"order": 7}, idempotency_key="order-7")
    assert second == first == RecordKey.for_idempotency_key("order-7", queue.url)
    assert first.id.startswith("idem-") and len(first.id) == 69
    (line,) = [r for r in caplog.records if "not sent again" in r.getMessage()]
    assert line.levelno == logging.INFO and line.__dict__["record_key"] == first.to_dict()
    records = received(sqs, queue.url)
    assert keys_on(records) == {wire(first): 1}
    record = await client.get_message_record(first, consistent_read=True)
    assert record.sent_at is not None and record.status is Status.PRE_FLIGHT
    assert json.loads(record.body or "") == {"order": 7}
    runs = Runs()
    response = await client.safe_process_batch({"Records": records}, runs)
    assert response == {"batchItemFailures": []} and runs.bodies == {'{"order": 7}': 1}
    done = await client.send_message(queue.url, {"order": 7}, idempotency_key="order-7")
    assert done == first and received(sqs, queue.url) == []  # processed: still not sent again


async def test_the_same_key_on_another_queue_is_another_message(
    client: MessageClient, base_config: Config, queue: Queue, sqs: Any
) -> None:
    other = await make_queue(base_config, visibility_timeout=30)
    here = await client.send_message(queue.url, "x", idempotency_key="k")
    there = await client.send_message(other.url, "x", idempotency_key="k")
    assert here != there and here.id != there.id
    assert keys_on(received(sqs, queue.url)) == {wire(here): 1}
    assert keys_on(received(sqs, other.url)) == {wire(there): 1}


async def test_a_key_reused_for_another_message_is_refused(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    key = await client.send_message(queue.url, {"n": 1}, meta={"m": 1}, idempotency_key="k")
    attrs = {"a": {"DataType": "String", "StringValue": "v"}}
    for changed in (
        {"body": {"n": 2}, "meta": {"m": 1}},
        {"body": {"n": 1}, "meta": {"m": 2}},
        {"body": {"n": 1}, "meta": {"m": 1}, "MessageAttributes": attrs},
    ):
        body = changed.pop("body")
        with pytest.raises(IdempotencyConflictError) as info:
            await client.send_message(queue.url, body, idempotency_key="k", **changed)
        error = info.value
        assert (error.field, error.idempotency_key, error.key) == ("idempotency_key", "k", key)
        assert str(error).startswith("idempotency_key: 'k' was sent to this queue before")
    # not compared: when it is delivered
    assert (
        await client.send_message(
            queue.url, {"n": 1}, meta={"m": 1}, idempotency_key="k", DelaySeconds=5
        )
        == key
    )
    assert keys_on(received(sqs, queue.url)) == {wire(key): 1}


@pytest.mark.parametrize("bad", ["", "x" * 1025, 7])
async def test_the_key_must_be_a_short_non_empty_string(
    client: MessageClient, queue: Queue, sqs: Any, bad: Any
) -> None:
    with pytest.raises(ValidationError) as info:
        await client.send_message(queue.url, "x", idempotency_key=bad)
    assert info.value.field == "idempotency_key"
    with pytest.raises(ValidationError) as info:
        await client.send_message_batch(queue.url, ["a", Message("b", idempotency_key=bad)])
    assert info.value.field == "entries[1].idempotency_key"
    assert received(sqs, queue.url) == []
    longest = "x" * 1024
    assert await client.send_message(queue.url, "x", idempotency_key=longest)


# -- a crash between the record and the message --------------------------------------------------


async def test_a_send_that_failed_after_its_record_is_completed_by_the_retry(
    base_config: Config, queue: Queue, sqs: Any, flavour: str
) -> None:
    """SendMessage refused after the record was written (the producer then died): the retry
    finds the record not marked sent and sends the message, which is processed once."""
    config = base_config.with_changes(max_attempts=1)
    injector = FaultInjector(3, {FaultKind.SERVER_ERROR: 1.0}, ["sqs.SendMessage"])
    async with opened(config, flavour) as (client, target):
        with injector.attached(target), pytest.raises(Exception, match="injected"):
            await client.send_message(queue.url, {"order": 1}, idempotency_key="o1")
        key = RecordKey.for_idempotency_key("o1", queue.url)
        record = await client.get_message_record(key, consistent_read=True)
        assert record.status is Status.PRE_FLIGHT and record.sent_at is None
        assert received(sqs, queue.url) == []
        assert await client.send_message(queue.url, {"order": 1}, idempotency_key="o1") == key
        assert (await client.get_message_record(key, consistent_read=True)).sent_at
        records = received(sqs, queue.url)
        assert keys_on(records) == {wire(key): 1}
        runs = Runs()
        assert await client.safe_process_batch({"Records": records}, runs) == {
            "batchItemFailures": []
        }
        assert runs.bodies == {'{"order": 1}': 1}


async def test_a_send_whose_answer_was_lost_is_processed_once(
    base_config: Config, queue: Queue, sqs: Any, flavour: str
) -> None:
    """SQS took the message but its answer was lost, on every attempt: the call fails, the
    retry sends it again, and of the copies on the queue the handler runs one."""
    config = base_config.with_changes(max_attempts=2)
    injector = FaultInjector(
        4, {FaultKind.READ_TIMEOUT: 1.0}, ["sqs.SendMessage"], delay_scale=0.001
    )
    async with opened(config, flavour) as (client, target):
        with injector.attached(target), pytest.raises(Exception, match="timeout"):
            await client.send_message(queue.url, {"order": 2}, idempotency_key="o2")
        key = await client.send_message(queue.url, {"order": 2}, idempotency_key="o2")
        assert await client.send_message(queue.url, {"order": 2}, idempotency_key="o2") == key
        records = received(sqs, queue.url)
        assert keys_on(records) == {wire(key): 3}  # two lost answers, then the retry
        runs = Runs()
        for delivery in records:  # one delivery after another: the copies find it complete
            response = await client.safe_process_batch({"Records": [delivery]}, runs)
            assert response == {"batchItemFailures": []}
        assert runs.bodies == {'{"order": 2}': 1}
        record = await client.get_message_record(key, consistent_read=True)
        assert record.status is Status.COMPLETE and record.consumption_count == 1


async def test_a_send_whose_sent_mark_failed_still_returns_and_is_processed_once(
    base_config: Config, queue: Queue, sqs: Any, flavour: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The message went out, marking its record failed: the call returns the key (with a
    warning); a retry sends a copy, and the handler runs once."""
    config = base_config.with_changes(max_attempts=1)
    injector = FaultInjector(5, {FaultKind.SERVER_ERROR: 1.0}, ["dynamodb.UpdateItem"])
    async with opened(config, flavour) as (client, target):
        with caplog.at_level(logging.WARNING, logger="sqs_cluster"), injector.attached(target):
            key = await client.send_message(queue.url, "m", idempotency_key="o3")
        assert any("marking it sent failed" in r.getMessage() for r in caplog.records)
        assert (await client.get_message_record(key, consistent_read=True)).sent_at is None
        assert await client.send_message(queue.url, "m", idempotency_key="o3") == key
        records = received(sqs, queue.url)
        assert keys_on(records) == {wire(key): 2}
        runs = Runs()
        for delivery in records:
            response = await client.safe_process_batch({"Records": [delivery]}, runs)
            assert response == {"batchItemFailures": []}
        assert runs.bodies == {'"m"': 1}


async def test_the_idempotent_path_costs_one_more_write_and_the_plain_one_none(
    client: MessageClient, queue: Queue
) -> None:
    await client.send_message(queue.url, "warm-up")  # the once-per-process checks

    async def counted(**kwargs: Any) -> Counter[str]:
        before = Counter(client.request_counts)
        await client.send_message(queue.url, "x", **kwargs)
        return Counter(client.request_counts) - before

    assert await counted() == {"dynamodb.PutItem": 1, "sqs.SendMessage": 1}
    first = {"dynamodb.PutItem": 1, "sqs.SendMessage": 1, "dynamodb.UpdateItem": 1}
    assert await counted(idempotency_key="cost") == first
    assert await counted(idempotency_key="cost") == {"dynamodb.PutItem": 1}


# -- batches ------------------------------------------------------------------------------------


async def test_a_batch_sent_twice_sends_its_keyed_entries_once(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    entries: list[Any] = [
        *(Message({"i": i}, idempotency_key=f"k{i}") for i in range(12)),
        "plain",  # no key: sent by each call
    ]
    first = await client.send_message_batch(queue.url, entries)
    assert isinstance(first, SentKeys) and first.already_sent == frozenset()
    assert first[:12] == [RecordKey.for_idempotency_key(f"k{i}", queue.url) for i in range(12)]
    second = await client.send_message_batch(queue.url, entries)
    assert second[:12] == first[:12] and second[12] != first[12]
    assert second.already_sent == frozenset(range(12))
    records = received(sqs, queue.url)
    assert keys_on(records) == {wire(k): 1 for k in [*first, second[12]]}
    stored = await client.get_message_records(first[:12])
    assert all(r is not None and r.sent_at for r in stored)
    runs = Runs()
    await client.safe_process_batch({"Records": records}, runs)
    assert runs.bodies == {**{json.dumps({"i": i}): 1 for i in range(12)}, '"plain"': 2}


async def test_one_key_twice_in_a_batch_is_refused_up_front(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    entries = [Message("a", idempotency_key="k"), "b", Message("c", idempotency_key="k")]
    with pytest.raises(ValidationError) as info:
        await client.send_message_batch(queue.url, entries)
    assert info.value.field == "entries[2].idempotency_key"
    assert "entries[0]" in str(info.value)
    assert received(sqs, queue.url) == []


async def test_a_batch_with_a_reused_key_sends_nothing(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    await client.send_message_batch(queue.url, [Message("a", idempotency_key="a")])
    received(sqs, queue.url)  # out of the way
    entries = [
        "plain",
        Message("new", idempotency_key="new"),
        Message("A", idempotency_key="a"),
    ]
    with pytest.raises(IdempotencyConflictError) as info:
        await client.send_message_batch(queue.url, entries)
    assert (info.value.field, info.value.indexes) == ("entries[2].idempotency_key", [2])
    assert received(sqs, queue.url) == []
    entries[2] = Message("A", idempotency_key="A")  # fixed: the retry sends all three
    keys = await client.send_message_batch(queue.url, entries)
    assert keys.already_sent == frozenset()
    assert sorted(r["body"] for r in received(sqs, queue.url)) == ["A", "new", "plain"]


async def test_a_batch_retried_after_a_partial_failure_sends_only_what_was_not_sent(
    base_config: Config, queue: Queue, sqs: Any, flavour: str
) -> None:
    """Some entries refused by SQS: the producer's own retry (the same call again) sends
    only those (refused again here), and ``resend_unsent`` of that failure completes it."""
    entries = [Message({"i": i}, idempotency_key=f"p{i}") for i in range(20)]
    refuse = FaultInjector(11, {FaultKind.SQS_SENDER_FAULT: 0.3}, ["sqs.SendMessageBatch"])
    async with opened(base_config, flavour) as (client, target):
        with refuse.attached(target), pytest.raises(PartialSendError) as info:
            await client.send_message_batch(queue.url, entries)
        first = info.value
        assert first.failed and first.sent and first.already_sent == frozenset()
        refuse_all = FaultInjector(12, {FaultKind.SQS_SENDER_FAULT: 1.0}, ["sqs.SendMessageBatch"])
        with refuse_all.attached(target), pytest.raises(PartialSendError) as again:
            await client.send_message_batch(queue.url, entries)
        assert again.value.already_sent == set(first.sent)  # not sent a second time
        assert set(again.value.failed) == set(first.failed)  # records there, messages not
        keys = await client.resend_unsent(again.value)
        assert keys == [RecordKey.for_idempotency_key(f"p{i}", queue.url) for i in range(20)]
        assert keys.already_sent == again.value.already_sent
        records = received(sqs, queue.url)
        assert keys_on(records) == {wire(k): 1 for k in keys}
        assert all(r is not None and r.sent_at for r in await client.get_message_records(keys))
        final = await client.send_message_batch(queue.url, entries)
        assert final == keys and final.already_sent == frozenset(range(20))
        assert received(sqs, queue.url) == []


async def test_a_large_message_is_sent_once_through_s3(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    body = "L" * 1_100_000  # above the queue's 1 MiB: offloaded
    key = await client.send_message(queue.url, body, idempotency_key="big")
    assert await client.send_message(queue.url, body, idempotency_key="big") == key
    with pytest.raises(IdempotencyConflictError):
        await client.send_message(queue.url, body + "!", idempotency_key="big")
    records = received(sqs, queue.url)
    assert keys_on(records) == {wire(key): 1}
    seen: list[int] = []
    await client.safe_process_batch({"Records": records}, lambda m: seen.append(len(m.body)))
    assert seen == [1_100_000]


# -- FIFO -----------------------------------------------------------------------------------------


async def test_a_fifo_send_derives_its_deduplication_id_from_the_key(
    client: MessageClient, base_config: Config, sqs: Any
) -> None:
    fifo = await make_queue(base_config, unique("idem") + ".fifo", visibility_timeout=30)
    key = await client.send_message(fifo.url, "f", idempotency_key="f1", MessageGroupId="g")
    batch = await client.send_message_batch(
        fifo.url,
        [
            Message("b", message_group_id="g", idempotency_key="f2"),
            Message(
                "c", message_group_id="g", idempotency_key="f3", message_deduplication_id="own"
            ),
        ],
    )
    records = received(sqs, fifo.url)
    dedup = {r["body"]: r["attributes"]["MessageDeduplicationId"] for r in records}
    assert dedup == {
        "f": key.id.removeprefix("idem-"),
        "b": batch[0].id.removeprefix("idem-"),
        "c": "own",
    }


def test_the_blocking_facade_sends_once_with_plain_calls(
    base_config: Config, queue: Queue, sqs: Any
) -> None:
    with sync.MessageClient(base_config) as client:
        key = client.send_message(queue.url, "b", idempotency_key="blocking")
        keys = client.send_message_batch(
            queue.url, [sync.Message("b", idempotency_key="blocking"), "plain"]
        )
        assert isinstance(keys, sync.SentKeys) and keys.already_sent == frozenset({0})
        assert keys[0] == key
        with pytest.raises(sync.IdempotencyConflictError):
            client.send_message(queue.url, "other", idempotency_key="blocking")
    assert sorted(r["body"] for r in received(sqs, queue.url)) == ["b", "plain"]
