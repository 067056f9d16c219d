"""safe_process_batch's deadline margin, whole-batch failure and per-message hooks."""

from __future__ import annotations

import asyncio
import copy
import logging
import threading
from typing import Any

import pytest

from sqs_cluster import (
    Backoff,
    BatchFailedError,
    MessageClient,
    ReceivedMessage,
    RetryAfter,
    Status,
)

from .conftest import Queue, receive_event
from .test_batch_retry import event_of, id_of, record_of, visibility_requests


class FakeContext:
    """Lambda's context, with a clock the test moves."""

    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def failed_ids(response: Any) -> list[str]:
    return [f["itemIdentifier"] for f in response["batchItemFailures"]]


# -- the deadline --------------------------------------------------------------------------------


async def test_no_message_starts_once_the_time_left_is_under_the_margin(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    event = await event_of(client, sqs, queue.url, list(range(6)))
    context = FakeContext(60_000)
    started: list[int] = []
    failures: list[Any] = []

    async def handler(message: ReceivedMessage[Any]) -> None:
        started.append(message.body)
        if len(started) == 2:
            context.remaining_ms = 4_000  # the invocation's end is near: below the 5 s margin
            await asyncio.sleep(0.2)  # the running message still finishes

    response = await client.safe_process_batch(
        event,
        handler,
        context=context,
        concurrency=1,
        deadline_margin_seconds=5,
        retry=Backoff(base_seconds=3, jitter=False),
        on_failure=lambda m, e: failures.append(m.body),
    )
    assert len(started) == 2
    not_started = [r["messageId"] for r in event["Records"] if int(r["body"]) not in started]
    assert sorted(failed_ids(response)) == sorted(not_started)
    for body in started:  # finished and recorded, not cut off
        record = await client.read_sqs_record(record_of(event, body)).get_message_record(
            consistent_read=True
        )
        assert record.status is Status.COMPLETE
    assert failures == []  # not started is not a failure of the message


async def test_messages_not_started_get_no_delay_and_the_margin_defaults_to_the_time_left(
    client: MessageClient, queue: Queue, sqs: Any, caplog: pytest.LogCaptureFixture
) -> None:
    event = await event_of(client, sqs, queue.url, ["fails", "late"])
    context = FakeContext(3_000)  # Lambda's default timeout: the default margin is 0.3 s

    def handler(message: ReceivedMessage[Any]) -> None:
        context.remaining_ms = 200
        raise ValueError("fails")

    with (
        visibility_requests(client) as requests,
        caplog.at_level(logging.WARNING, logger="sqs_cluster"),
    ):
        response = await client.safe_process_batch(
            {"Records": [record_of(event, "fails"), record_of(event, "late")]},
            handler,
            context=context,
            concurrency=1,
            retry=Backoff(base_seconds=9, jitter=False),
        )
    assert failed_ids(response) == [id_of(event, "fails"), id_of(event, "late")]
    assert requests == [[(record_of(event, "fails")["receiptHandle"], 9)]]
    assert "1 messages not started" in caplog.text


async def test_without_a_context_or_with_a_zero_margin_every_message_runs(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    event = await event_of(client, sqs, queue.url, [1, 2, 3])
    runs: list[Any] = []
    response = await client.safe_process_batch(
        copy.deepcopy(event), lambda m: runs.append(m.body), deadline_margin_seconds=60
    )
    assert response == {"batchItemFailures": []} and sorted(runs) == [1, 2, 3]
    event = await event_of(client, sqs, queue.url, [4, 5])
    response = await client.safe_process_batch(
        event, lambda m: runs.append(m.body), context=FakeContext(0), deadline_margin_seconds=0
    )
    assert response == {"batchItemFailures": []} and sorted(runs) == [1, 2, 3, 4, 5]


# -- whole-batch failure ---------------------------------------------------------------------------


async def test_raise_on_entire_batch_failure_raises_only_when_every_message_failed(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    event = await event_of(client, sqs, queue.url, ["a", "b", "c"])

    def handler(message: ReceivedMessage[Any]) -> None:
        if message.body == "c":
            raise RetryAfter(4)
        raise ValueError(f"{message.body} fails")

    by_default = await client.safe_process_batch(copy.deepcopy(event), handler)
    assert len(by_default["batchItemFailures"]) == 3  # reported, not raised
    with (
        visibility_requests(client) as requests,
        pytest.raises(BatchFailedError, match="all 3 messages of the batch failed") as info,
    ):
        await client.safe_process_batch(
            copy.deepcopy(event), handler, raise_on_entire_batch_failure=True
        )
    error = info.value
    assert error.message_ids == [r["messageId"] for r in event["Records"]]
    assert {i: type(e) for i, e in error.errors.items()} == {
        id_of(event, "a"): ValueError,
        id_of(event, "b"): ValueError,
        id_of(event, "c"): RetryAfter,
    }
    assert error.response == by_default
    assert requests == [[(record_of(event, "c")["receiptHandle"], 4)]]  # delays set first

    def only_c_fails(message: ReceivedMessage[Any]) -> None:
        if message.body == "c":
            raise ValueError("c fails")

    mixed = await client.safe_process_batch(
        copy.deepcopy(event), only_c_fails, raise_on_entire_batch_failure=True
    )
    assert failed_ids(mixed) == [id_of(event, "c")]
    empty = await client.safe_process_batch(
        {"Records": []}, only_c_fails, raise_on_entire_batch_failure=True
    )
    assert empty == {"batchItemFailures": []}


# -- hooks ---------------------------------------------------------------------------------------


async def test_hooks_see_each_outcome_and_cannot_change_it(
    client: MessageClient, queue: Queue, sqs: Any, caplog: pytest.LogCaptureFixture
) -> None:
    event = await event_of(client, sqs, queue.url, ["ok", "boom", "done"])
    await client.safe_process_batch({"Records": [record_of(event, "done")]}, lambda m: "first")
    successes: list[tuple[Any, Any]] = []
    failures: list[tuple[Any, str]] = []
    lock = threading.Lock()

    def handler(message: ReceivedMessage[Any]) -> Any:
        if message.body == "boom":
            raise ValueError("boom")
        return {"seen": message.body}

    def on_success(message: ReceivedMessage[Any], result: Any) -> None:  # a plain function
        with lock:
            successes.append((message.body, result))
        raise RuntimeError("a broken success hook")

    async def on_failure(message: ReceivedMessage[Any], error: BaseException) -> None:
        failures.append((message.body, str(error)))
        raise RuntimeError("a broken failure hook")

    with caplog.at_level(logging.WARNING, logger="sqs_cluster"):
        response = await client.safe_process_batch(
            event, handler, on_success=on_success, on_failure=on_failure
        )
    assert failed_ids(response) == [id_of(event, "boom")]  # the hooks changed nothing
    assert successes == [("ok", {"seen": "ok"})]  # "done" was a duplicate: neither hook
    assert failures == [("boom", "boom")]
    record = await client.read_sqs_record(record_of(event, "ok")).get_message_record(
        consistent_read=True
    )
    assert (record.status, record.result) == (Status.COMPLETE, {"seen": "ok"})
    assert "on_success raised RuntimeError: a broken success hook" in caplog.text
    assert "on_failure raised RuntimeError: a broken failure hook" in caplog.text


async def test_hooks_run_untracked_too_and_must_be_callable(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    event = await event_of(client, sqs, queue.url, [1, 2])
    seen: list[Any] = []

    def handler(message: ReceivedMessage[int]) -> int:
        if message.body == 2:
            raise KeyError("two")
        return message.body * 10

    response = await client.safe_process_batch(
        event,
        handler,
        track=False,
        on_success=lambda m, r: seen.append(("ok", m.body, r)),
        on_failure=lambda m, e: seen.append(("failed", m.body, type(e).__name__)),
    )
    assert failed_ids(response) == [id_of(event, 2)]
    assert sorted(seen) == [("failed", 2, "KeyError"), ("ok", 1, 10)]
    before = dict(client.request_counts)
    with pytest.raises(ValueError, match="on_success: expected a callable"):
        await client.safe_process_batch(event, handler, on_success="log")  # type: ignore[arg-type]
    assert dict(client.request_counts) == before


def test_hook_sees_views_in_the_sync_facade(base_config: Any, queue: Queue, sqs: Any) -> None:
    from sqs_cluster import sync

    seen: list[Any] = []
    with sync.MessageClient(base_config) as client:
        client.send_message_batch(queue.url, ["x"])
        event = receive_event(sqs, queue.url, visibility=60)
        response = client.safe_process_batch(
            event,
            lambda m: "r",
            on_success=lambda m, r: seen.append((type(m), m.get_message_record().status, r)),
        )
    assert response == {"batchItemFailures": []}
    assert seen == [(sync.ReceivedMessage, Status.COMPLETE, "r")]
