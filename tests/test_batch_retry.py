"""safe_process_batch(..., retry=Backoff(...)) and RetryAfter: a failed message's next try waits
a back-off instead of the whole visibility timeout; setting it never hides a failure."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from sqs_cluster import (
    Backoff,
    Config,
    Message,
    MessageClient,
    ReceivedMessage,
    RetryAfter,
    Worker,
    WorkerOptions,
)
from sqs_cluster.testing import FaultInjector, FaultKind

from .conftest import Queue, make_queue, receive_event, unique

Entries = list[list[tuple[str, int]]]
"""Per ChangeMessageVisibilityBatch request: its (receipt handle, visibility timeout) entries."""


@contextmanager
def visibility_requests(client: Any) -> Iterator[Entries]:
    """Record every ChangeMessageVisibilityBatch the client sends (with the sync facade too)."""
    seen: Entries = []

    def hook(service: str, operation: str, params: Any) -> None:
        if operation == "ChangeMessageVisibilityBatch":
            entries = json.loads(params["body"])["Entries"]
            seen.append([(e["ReceiptHandle"], e["VisibilityTimeout"]) for e in entries])

    remove = client.add_request_hook(hook)
    try:
        yield seen
    finally:
        remove()


async def event_of(client: Any, sqs: Any, queue_url: str, bodies: list[Any]) -> dict[str, Any]:
    await client.send_message_batch(queue_url, bodies)
    return receive_event(sqs, queue_url, max_messages=len(bodies), visibility=60)


def body_of(record: dict[str, Any]) -> Any:
    """A record's body as sent: JSON decoded, a string body as it is."""
    try:
        return json.loads(record["body"])
    except ValueError:
        return record["body"]


def record_of(event: dict[str, Any], body: Any) -> dict[str, Any]:
    records: list[dict[str, Any]] = event["Records"]
    (record,) = [r for r in records if body_of(r) == body]
    return record


def handle_of(event: dict[str, Any], body: Any) -> str:
    return str(record_of(event, body)["receiptHandle"])


def id_of(event: dict[str, Any], body: Any) -> str:
    return str(record_of(event, body)["messageId"])


def failed_ids(response: Any) -> set[str]:
    return {f["itemIdentifier"] for f in response["batchItemFailures"]}


def received_again(sqs: Any, queue_url: str, within: float) -> list[Any]:
    """Poll (generously) until a message is visible again; its bodies, decoded."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        got = receive_event(sqs, queue_url, visibility=60)["Records"]
        if got:
            return [body_of(r) for r in got]
        time.sleep(0.2)
    return []


async def test_failures_are_delayed_by_their_receive_count_ten_to_a_request(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    bodies = list(range(12))
    event = await event_of(client, sqs, queue.url, bodies)
    for record in event["Records"]:  # receives 1, 2 and 3: delays of 1, 2 and 4 seconds
        n = json.loads(record["body"])
        record["attributes"]["ApproximateReceiveCount"] = str(n % 3 + 1)

    def handler(message: ReceivedMessage[Any]) -> None:
        raise ValueError(f"{message.body} fails")

    with visibility_requests(client) as requests:
        response = await client.safe_process_batch(
            event, handler, retry=Backoff(base_seconds=1, max_seconds=3, jitter=False)
        )
    assert len(response["batchItemFailures"]) == 12
    assert [len(r) for r in requests] == [10, 2]  # one request per ten failures
    sent = dict(entry for request in requests for entry in request)
    assert sent == {handle_of(event, n): [1, 2, 3][n % 3] for n in bodies}  # 4 capped at 3
    assert receive_event(sqs, queue.url, visibility=60)["Records"] == []  # not released at once
    back = received_again(sqs, queue.url, within=20)  # the queue's own timeout is 30 s
    assert back and set(back) <= set(bodies)


async def test_jitter_draws_each_delay_up_to_its_back_off(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    event = await event_of(client, sqs, queue.url, list(range(10)))

    def handler(message: ReceivedMessage[Any]) -> None:
        raise ValueError("no")

    with visibility_requests(client) as requests:
        await client.safe_process_batch(event, handler, retry=Backoff(base_seconds=4))
    (request,) = requests
    assert len(request) == 10 and all(0 <= seconds <= 4 for _, seconds in request)


async def test_retry_after_sets_its_own_delay_with_or_without_a_policy(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    event = await event_of(client, sqs, queue.url, ["later", "plain", "ok"])

    def handler(message: ReceivedMessage[Any]) -> None:
        if message.body == "later":
            raise RetryAfter(1, "the partner API is rate limited")
        if message.body == "plain":
            raise ValueError("no policy: the visibility timeout stands")

    with visibility_requests(client) as requests:
        response = await client.safe_process_batch(event, handler)
    assert failed_ids(response) == {id_of(event, "later"), id_of(event, "plain")}
    assert requests == [[(handle_of(event, "later"), 1)]]
    assert received_again(sqs, queue.url, within=20) == ["later"]
    record = await client.read_sqs_record(record_of(event, "later")).get_message_record(
        consistent_read=True
    )
    assert [e.message for e in record.errors] == ["the partner API is rate limited"]


async def test_back_off_on_only_the_exceptions_it_names(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    event = await event_of(client, sqs, queue.url, ["timeout", "bug", "asked"])

    def handler(message: ReceivedMessage[Any]) -> None:
        if message.body == "timeout":
            raise TimeoutError("downstream")
        if message.body == "asked":
            raise RetryAfter(7)
        raise KeyError("a bug: waiting will not fix it")

    retry = Backoff(base_seconds=5, jitter=False, on=(TimeoutError, ConnectionError))
    with visibility_requests(client) as requests:
        response = await client.safe_process_batch(event, handler, retry=retry)
    assert len(response["batchItemFailures"]) == 3
    assert sorted(entry for request in requests for entry in request) == sorted(
        [(handle_of(event, "timeout"), 5), (handle_of(event, "asked"), 7)]
    )


async def test_duplicates_bounces_and_rejected_records_get_no_delay(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    event = await event_of(client, sqs, queue.url, ["done", "leased", "fails"])
    done, leased, fails = (record_of(event, b) for b in ("done", "leased", "fails"))
    await client.safe_process_batch({"Records": [done]}, lambda m: None)  # complete already
    other_delivery = {**copy.deepcopy(leased), "receiptHandle": "another-delivery"}
    await client.claim(other_delivery)  # a live lease: this delivery bounces
    forged = {**copy.deepcopy(fails), "messageId": unique("forged")}
    forged["messageAttributes"]["sqsClusterKey"]["stringValue"] = "{not json"

    def handler(message: ReceivedMessage[Any]) -> None:
        raise ValueError("fails")

    with visibility_requests(client) as requests:
        response = await client.safe_process_batch(
            {"Records": [done, leased, fails, forged]},
            handler,
            retry=Backoff(base_seconds=2, jitter=False),
        )
    reported = {leased["messageId"], fails["messageId"], forged["messageId"]}
    assert failed_ids(response) == reported
    assert requests == [[(fails["receiptHandle"], 2)]]


async def test_a_fifo_group_comes_back_together_after_its_failures_delay(
    client: MessageClient, base_config: Config, sqs: Any
) -> None:
    fifo = await make_queue(base_config, unique("f") + ".fifo", visibility_timeout=30)
    bodies = [
        Message(body=f"{g}{i}", message_group_id=g, message_deduplication_id=f"{g}{i}")
        for g in ("A", "B")
        for i in range(3)
    ]
    await client.send_message_batch(fifo.url, list(bodies))
    event = receive_event(sqs, fifo.url, max_messages=6, visibility=60)
    handles = {body_of(r): r["receiptHandle"] for r in event["Records"]}

    def handler(message: ReceivedMessage[Any]) -> None:
        if message.body == "A1":
            raise ValueError("A1 fails")

    with visibility_requests(client) as requests:
        response = await client.safe_process_batch(
            event, handler, retry=Backoff(base_seconds=3, jitter=False)
        )
    assert failed_ids(response) == {id_of(event, "A1"), id_of(event, "A2")}
    (request,) = requests  # A2 did not run: it waits as long as A1, so A1 comes back first
    assert sorted(request) == sorted([(handles["A1"], 3), (handles["A2"], 3)])


async def test_a_refused_or_failed_visibility_change_still_reports_the_failure(
    client: MessageClient, queue: Queue, sqs: Any, caplog: pytest.LogCaptureFixture
) -> None:
    event = await event_of(client, sqs, queue.url, ["a", "b", "ok"])

    def handler(message: ReceivedMessage[Any]) -> None:
        if message.body != "ok":
            raise ValueError("fails")

    expected = {id_of(event, "a"), id_of(event, "b")}
    target = getattr(client, "_target", client)  # the injector reaches the facade's core too
    for kind in (FaultKind.SQS_FAILED_ENTRY, FaultKind.SQS_SENDER_FAULT, FaultKind.SERVER_ERROR):
        injector = FaultInjector(
            7, {kind: 1.0}, ["sqs.ChangeMessageVisibilityBatch"], delay_scale=0.01
        )
        caplog.clear()
        with injector.attached(target), caplog.at_level(logging.WARNING, logger="sqs_cluster"):
            response = await client.safe_process_batch(
                copy.deepcopy(event), handler, retry=Backoff(base_seconds=1)
            )
        assert injector.count(kind) > 0, kind
        assert failed_ids(response) == expected, kind
        assert "could not delay the retry of 2 failed messages" in caplog.text, kind


async def test_the_arguments_are_checked_before_anything_runs(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    event = await event_of(client, sqs, queue.url, ["x"])
    runs: list[Any] = []
    with pytest.raises(ValueError, match="retry: expected a Backoff"):
        await client.safe_process_batch(event, runs.append, retry=5)  # type: ignore[arg-type]
    assert runs == []


async def test_the_worker_backs_off_what_its_handler_reports_failed(
    base_config: Config, queue: Queue
) -> None:
    calls: list[str] = []

    async def handler(event: dict[str, Any], context: Any) -> Any:
        calls.extend(body_of(r) for r in event["Records"])
        if len(calls) == 1:
            return {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
        return None

    retry = Backoff(base_seconds=1, max_seconds=1, jitter=False)
    options = WorkerOptions(wait_seconds=1, visibility_timeout=30, max_empty_polls=3, retry=retry)
    async with MessageClient(base_config) as client:
        await client.send_message(queue.url, "again")
        with visibility_requests(client) as requests:
            stats = await Worker(client, queue.url, handler, options).run()
    assert calls == ["again", "again"]  # back after 1 s, not after the 30 s timeout
    assert [seconds for request in requests for _, seconds in request] == [1]
    assert (stats.failed, stats.succeeded, stats.redelivered) == (1, 1, 1)


def test_the_worker_cannot_filter_by_exception() -> None:
    with pytest.raises(ValueError, match=r"retry\.on: the worker sees which messages failed"):
        WorkerOptions(retry=Backoff(on=TimeoutError))


async def test_the_sync_facade_takes_backoff_and_retry_after(
    base_config: Config, queue: Queue, sqs: Any
) -> None:
    from sqs_cluster import sync

    def run() -> tuple[Any, Entries]:
        with sync.MessageClient(base_config) as client:
            client.send_message_batch(queue.url, ["later", "backoff"])
            event = receive_event(sqs, queue.url, max_messages=2, visibility=60)

            def handler(message: sync.ReceivedMessage[Any]) -> None:
                if message.body == "later":
                    raise sync.RetryAfter(2)
                raise ValueError("backoff")

            with visibility_requests(client) as requests:
                response = client.safe_process_batch(
                    event, handler, retry=sync.Backoff(base_seconds=5, jitter=False)
                )
            return response, requests

    response, requests = await asyncio.to_thread(run)
    assert len(response["batchItemFailures"]) == 2
    assert sorted(seconds for request in requests for _, seconds in request) == [2, 5]
