"""Runtime edges of consuming: leases renewed while a handler runs, leases that end before a
redelivery, a worker that survives transient AWS errors, and bounces that say why."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from sqs_cluster import (
    Config,
    MessageClient,
    ReceivedMessage,
    ResourceMissingError,
    Status,
    ValidationError,
    Worker,
    WorkerOptions,
)

from .conftest import Queue, make_queue, receive_event
from .faults import FaultyClient

pytestmark = pytest.mark.asyncio


async def redelivered(sqs: Any, queue_url: str, *, visibility: int = 30) -> dict[str, Any]:
    """Wait for the queue's one message to become visible again; its next delivery's event."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        event = await asyncio.to_thread(
            receive_event, sqs, queue_url, max_messages=1, visibility=visibility
        )
        if event["Records"]:
            return event
        await asyncio.sleep(0.2)
    raise AssertionError("the message never came back")


class Context:
    """The part of Lambda's context that ``safe_process_batch`` reads."""

    def __init__(self, remaining_ms: int) -> None:
        self.deadline = time.monotonic() + remaining_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


# -- the lease is renewed while a handler runs -------------------------------------------------


async def test_a_handler_longer_than_its_lease_keeps_it_from_a_duplicate(
    base_config: Config, queue: Queue, sqs: Any
) -> None:
    config = base_config.with_changes(lease_seconds=2)
    async with MessageClient(config) as client:
        await client.send_message(queue.url, "slow")
        first = receive_event(sqs, queue.url, max_messages=1, visibility=1)
        started, release = asyncio.Event(), asyncio.Event()
        calls: list[int] = []

        async def handler(message: ReceivedMessage[Any]) -> None:
            calls.append(message.receive_count)
            if message.receive_count == 1:  # the first delivery runs until released
                started.set()
                await release.wait()

        running = asyncio.ensure_future(client.safe_process_batch(first, handler))
        await started.wait()
        second = await redelivered(sqs, queue.url)  # a second delivery of the same message
        await asyncio.sleep(config.lease_seconds + 1)  # the claimed lease alone has run out
        duplicate = await client.safe_process_batch(second, handler)
        release.set()
        done = await running
    assert calls == [1]  # the duplicate found the lease live and did not run the handler
    second_id = second["Records"][0]["messageId"]
    assert duplicate == {"batchItemFailures": [{"itemIdentifier": second_id}]}
    assert done == {"batchItemFailures": []}
    async with MessageClient(config) as client:
        record = await client.read_sqs_record(first["Records"][0]).get_message_record(
            consistent_read=True
        )
    assert record.status is Status.COMPLETE


async def test_a_worker_renews_the_lease_of_a_handler_that_claims_itself(
    base_config: Config, queue: Queue, sqs: Any
) -> None:
    """A classic handler (``is_complete``, no ``safe_process_batch``) under the worker."""
    config = base_config.with_changes(lease_seconds=2)
    async with MessageClient(config) as client:
        await client.send_message(queue.url, "slow")
        started, release = asyncio.Event(), asyncio.Event()
        calls: list[str] = []
        held: list[dict[str, Any]] = []

        async def handler(event: dict[str, Any], context: Any) -> None:
            for record in event["Records"]:
                if not await client.is_complete(record):
                    calls.append(record["messageId"])
                    held.append(record)
                    started.set()
                    await release.wait()
                    await client.mark_complete(record)

        options = WorkerOptions(wait_seconds=0, visibility_timeout=1, max_empty_polls=1)
        worker = asyncio.ensure_future(Worker(client, queue.url, handler, options).run())
        await started.wait()
        await asyncio.sleep(config.lease_seconds + 1)  # the claimed lease alone has run out
        # another delivery of the same message (SQS delivers at least once; the worker keeps
        # this one invisible, so the copy is made here rather than waited for)
        copy = {**held[0], "receiptHandle": "another-delivery"}
        copy["attributes"] = {**copy["attributes"], "ApproximateReceiveCount": "2"}
        duplicate = await client.safe_process_batch(
            {"Records": [copy]}, lambda m: calls.append("duplicate")
        )
        release.set()
        await worker
    assert len(calls) == 1 and len(duplicate["batchItemFailures"]) == 1


# -- the lease ends before a redelivery --------------------------------------------------------


class DiesOnFirstReceive:
    """A handler whose first delivery never returns (its invocation dies there)."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.seen: list[int] = []

    async def __call__(self, message: ReceivedMessage[Any]) -> None:
        self.seen.append(message.receive_count)
        if message.receive_count == 1:
            self.started.set()
            await asyncio.Event().wait()


async def crash_and_redeliver(
    client: MessageClient,
    sqs: Any,
    url: str,
    context: Callable[[], Any] = lambda: None,
    while_running: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
) -> tuple[Any, list[int]]:
    """Kill ``safe_process_batch`` mid-handler on the first delivery (nothing settles the record
    or releases the lease), then process the redelivery; its response and the receive counts
    the handler saw."""
    first = receive_event(sqs, url, max_messages=1, visibility=5)
    handler = DiesOnFirstReceive()
    crashed = asyncio.ensure_future(client.safe_process_batch(first, handler, context=context()))
    await handler.started.wait()
    if while_running is not None:
        await while_running(first)
    crashed.cancel()
    await asyncio.gather(crashed, return_exceptions=True)
    second = await redelivered(sqs, url, visibility=5)
    response = await client.safe_process_batch(second, handler, context=context())
    return response, handler.seen


async def test_a_redelivery_after_a_lambda_crash_takes_over_instead_of_bouncing(
    base_config: Config, sqs: Any
) -> None:
    short = await make_queue(base_config, visibility_timeout=5, max_receive_count=3)
    async with MessageClient(base_config) as client:  # lease_seconds: the default 300
        await client.send_message(short.url, "dies")
        # a function timeout within the visibility
        response, seen = await crash_and_redeliver(client, sqs, short.url, lambda: Context(5000))
    assert response == {"batchItemFailures": []}
    assert seen == [1, 2]


async def test_a_worker_process_caps_leases_by_the_visibility_timeout(
    base_config: Config, sqs: Any
) -> None:
    short = await make_queue(base_config, visibility_timeout=5, max_receive_count=3)
    async with MessageClient(base_config) as client:  # lease_seconds: the default 300
        assert await client.queue_visibility_timeout(short.url) == 5  # as a worker does first
        await client.send_message(short.url, "dies")
        first = receive_event(sqs, short.url, max_messages=1, visibility=5)
        claim = await client.claim(first["Records"][0])  # then the worker dies
        assert claim.outcome.value == "claimed"
        second = await redelivered(sqs, short.url, visibility=5)
        seen: list[int] = []
        response = await client.safe_process_batch(second, lambda m: seen.append(m.receive_count))
    assert response == {"batchItemFailures": []}
    assert seen == [2]


async def test_a_lambda_handler_without_a_context_caps_leases_by_the_visibility_timeout(
    base_config: Config, sqs: Any
) -> None:
    short = await make_queue(base_config, visibility_timeout=5, max_receive_count=3)
    async with MessageClient(base_config) as client:  # lease_seconds: the default 300
        await client.send_message(short.url, "dies")

        async def lease_is_capped(first: dict[str, Any]) -> None:
            record = await client.get_message_record(key_of(client, first), consistent_read=True)
            assert record.lease_until_ms is not None
            assert record.lease_until_ms <= time.time() * 1000 + 5000  # 4 s, not 300 s

        # no context and no earlier read of the queue: the claim reads the timeout itself
        response, seen = await crash_and_redeliver(
            client, sqs, short.url, while_running=lease_is_capped
        )
    assert response == {"batchItemFailures": []}
    assert seen == [1, 2]


def key_of(client: MessageClient, event: dict[str, Any]) -> Any:
    """The record key of an event's one message."""
    return client.read_sqs_record(event["Records"][0]).key


async def test_the_lease_ends_with_the_invocation(
    base_config: Config, queue: Queue, sqs: Any
) -> None:
    async with MessageClient(base_config) as client:
        await client.send_message(queue.url, "x")
        event = receive_event(sqs, queue.url, max_messages=1)
        context = Context(remaining_ms=8000)
        leases: list[tuple[int, int]] = []

        async def handler(message: ReceivedMessage[Any]) -> None:
            record = await message.get_message_record(consistent_read=True)
            assert record.lease_until_ms is not None
            leases.append((record.lease_until_ms, int(time.time() * 1000)))

        response = await client.safe_process_batch(event, handler, context=context)
    assert response == {"batchItemFailures": []}
    ((until, now),) = leases
    assert until <= now + 8000  # not the configured 300 s: it ends with the invocation


async def test_a_context_without_remaining_time_is_rejected_up_front(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    event = receive_event(sqs, queue.url, max_messages=1)
    before = dict(client.request_counts)
    with pytest.raises(ValidationError, match=r"^context: expected Lambda's context"):
        await client.safe_process_batch(event, print, context=object())
    assert dict(client.request_counts) == before


async def test_a_lease_that_would_burn_receives_is_warned_about_once(
    base_config: Config, sqs: Any, caplog: pytest.LogCaptureFixture
) -> None:
    short = await make_queue(base_config, visibility_timeout=5, max_receive_count=3)
    async with MessageClient(base_config) as client:
        await client.queue_visibility_timeout(short.url)  # as a worker does first
        await client.send_message_batch(short.url, ["a", "b"])
        event = receive_event(sqs, short.url, max_messages=2, visibility=5)
        with caplog.at_level(logging.WARNING, logger="sqs_cluster"):
            for record in event["Records"]:
                await client.safe_process_batch({"Records": [record]}, lambda m: None)
    warnings = [r.getMessage() for r in caplog.records if "outlives" in r.getMessage()]
    assert len(warnings) == 1
    assert "lease_seconds=300" in warnings[0] and short.url in warnings[0]
    assert "3 receives" in warnings[0]


# -- the worker survives transient AWS errors ----------------------------------------------------


def _read_timeout(kwargs: dict[str, Any]) -> ReadTimeoutError:
    return ReadTimeoutError(endpoint_url=kwargs.get("QueueUrl", "sqs"))


async def test_a_worker_keeps_polling_after_a_transient_error(
    base_config: Config, queue: Queue, real: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    state = {"left": 2}

    async def stall(call: Any, kwargs: dict[str, Any]) -> Any:
        if state["left"]:
            state["left"] -= 1
            raise _read_timeout(kwargs)
        return await call(**kwargs)

    sqs = FaultyClient(real["sqs"], receive_message=stall)
    async with MessageClient(base_config, clients={**real, "sqs": sqs}) as client:
        await client.send_message(queue.url, "after the stall")
        seen: list[Any] = []

        async def handler(event: Any, context: Any) -> Any:
            return await client.safe_process_batch(event, lambda m: seen.append(m.body))

        options = WorkerOptions(wait_seconds=0, max_empty_polls=1)
        with caplog.at_level(logging.WARNING, logger="sqs_cluster.worker"):
            stats = await Worker(client, queue.url, handler, options).run()
    assert seen == ["after the stall"] and stats.succeeded == 1
    assert caplog.text.count("ReadTimeoutError") == 2


@pytest.mark.parametrize(
    ("code", "raised", "match"),
    [
        ("AWS.SimpleQueueService.NonExistentQueue", ResourceMissingError, "no queue"),
        ("AccessDenied", ClientError, "AccessDenied"),
    ],
    ids=["configuration-error", "access-denied"],
)
async def test_a_worker_stops_on_a_configuration_error(
    base_config: Config,
    queue: Queue,
    real: dict[str, Any],
    code: str,
    raised: type[Exception],
    match: str,
) -> None:
    async def refused(call: Any, kwargs: dict[str, Any]) -> Any:
        error = {"Error": {"Code": code, "Message": "refused"}}
        raise ClientError(error, "ReceiveMessage")  # type: ignore[arg-type]

    sqs = FaultyClient(real["sqs"], receive_message=refused)
    async with MessageClient(base_config, clients={**real, "sqs": sqs}) as client:
        worker = Worker(client, queue.url, lambda e, c: None, WorkerOptions(wait_seconds=0))
        with pytest.raises(raised, match=match):
            await worker.run()
    assert sqs.calls["receive_message"] == 1


# -- bounces and failures say why ---------------------------------------------------------------


async def test_a_bounce_says_who_holds_the_lease(
    base_config: Config, queue: Queue, sqs: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async with MessageClient(base_config) as client:
        await client.send_message(queue.url, "x")
        first = receive_event(sqs, queue.url, max_messages=1, visibility=1)
        await client.claim(first["Records"][0])  # a live delivery holds the lease
        second = await redelivered(sqs, queue.url)
        with caplog.at_level(logging.WARNING, logger="sqs_cluster"):
            response = await client.safe_process_batch(second, lambda m: None)
    message_id = second["Records"][0]["messageId"]
    assert response == {"batchItemFailures": [{"itemIdentifier": message_id}]}
    (line,) = [r.getMessage() for r in caplog.records if "leased by another" in r.getMessage()]
    assert line.startswith(f"message {message_id}: leased by another delivery until 20")
    assert "receive 2/3" in line


async def test_a_handler_exception_is_logged_with_its_traceback(
    base_config: Config, queue: Queue, sqs: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async with MessageClient(base_config) as client:
        await client.send_message(queue.url, "x")
        event = receive_event(sqs, queue.url, max_messages=1)

        def broken_handler(message: ReceivedMessage[Any]) -> None:
            raise KeyError("missing")

        with caplog.at_level(logging.WARNING, logger="sqs_cluster"):
            await client.safe_process_batch(event, broken_handler)
    (failed,) = [r for r in caplog.records if "failed: KeyError" in r.getMessage()]
    assert failed.exc_info is not None
    assert "broken_handler" in caplog.text  # the frame that raised, from the traceback
