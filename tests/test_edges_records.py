"""Edge cases of records: late duplicates after expiry, oversized results, long error lists,
skewed clocks. Each goes through the public client on the local server."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Any

import pytest

from sqs_cluster import (
    ClaimOutcome,
    ClusterRecord,
    Config,
    MessageClient,
    MessageInProgressError,
    ReceivedMessage,
    Status,
)
from sqs_cluster._records.codec import key_item

from .conftest import Queue, make_queue, receive_event

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


async def test_a_late_duplicate_of_a_task_whose_cluster_also_expired_is_skipped(
    base_config: Config, queue: Queue, sqs: Any, ddb: Any
) -> None:
    async with MessageClient(base_config) as client:
        key = await client.create_message_cluster(queue.url, [{"i": 0}], omit_globals=True)
        event = receive_event(sqs, queue.url)
        handler, callbacks = Runs(), Callbacks()
        assert await client.safe_process_batch(event, handler, on_cluster_complete=callbacks) == {
            "batchItemFailures": []
        }
        # DynamoDB's TTL removed the task record and every item of its cluster
        expire(ddb, base_config, client.read_sqs_record(event["Records"][0]))
        items = ddb.query(
            TableName=base_config.table,
            KeyConditionExpression="pKey = :p",
            ExpressionAttributeValues={":p": {"S": key.p_key}},
        )["Items"]
        assert items
        for item in items:
            ddb.delete_item(TableName=base_config.table, Key={k: item[k] for k in ("pKey", "rKey")})

        late = await client.safe_process_batch(event, handler, on_cluster_complete=callbacks)
        assert late == {"batchItemFailures": []}  # settled: not retried into the DLQ
        assert handler.runs == {0: 1} and len(callbacks.calls) == 1


# -- 2. oversized results ----------------------------------------------------------------------

BIG_RESULT = {"rows": ["x" * 1000] * 420}  # ~420 KB as JSON: more than a record can hold


async def test_a_task_whose_result_is_too_large_is_counted_complete_without_it(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    key = await client.create_message_cluster(queue.url, [{"i": 0}, {"i": 1}], omit_globals=True)
    event = receive_event(sqs, queue.url)
    handler, callbacks = Runs(BIG_RESULT), Callbacks()
    response = await client.safe_process_batch(event, handler, on_cluster_complete=callbacks)
    assert response == {"batchItemFailures": []}
    cluster = await client.get_message_cluster(key, consistent_read=True)
    assert (cluster.status, cluster.completed, cluster.failed) == (Status.COMPLETE, 2, 0)
    assert len(callbacks.calls) == 1
    task = await client.get_message_record(
        client.read_sqs_record(event["Records"][0]).key, consistent_read=True
    )
    assert task.status is Status.COMPLETE and task.result is None
    assert task.result_dropped == len(json.dumps(BIG_RESULT, separators=(",", ":")).encode())


async def test_a_large_result_beside_a_large_task_is_kept(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    """A task record keeps no copy of its task, so a result that fits a record is stored
    whatever the task's size (with a copy, 200 KB + 220 KB did not fit: it was dropped)."""
    key = await client.create_message_cluster(
        queue.url,
        [{"i": 0, "text": "é" * 100_000}],
        omit_globals=True,  # 200 KB in UTF-8
    )
    event = receive_event(sqs, queue.url)
    result = {"text": "ü" * 110_000}  # 220 KB in UTF-8
    assert await client.safe_process_batch(event, Runs(result)) == {"batchItemFailures": []}
    cluster = await client.get_message_cluster(key, consistent_read=True)
    assert (cluster.status, cluster.completed, cluster.failed) == (Status.COMPLETE, 1, 0)
    task = await client.get_message_record(
        client.read_sqs_record(event["Records"][0]).key, consistent_read=True
    )
    assert task.status is Status.COMPLETE and task.result == result and task.body is None
    assert task.result_dropped is None


async def test_a_message_whose_result_does_not_fit_beside_its_body_completes(
    base_config: Config, queue: Queue, sqs: Any
) -> None:
    async with MessageClient(base_config.with_changes(record_body_bytes=300_000)) as client:
        await _result_beside_a_large_body(client, queue, sqs)


async def _result_beside_a_large_body(client: MessageClient, queue: Queue, sqs: Any) -> None:
    await client.send_message(queue.url, "é" * 100_000)  # 200 KB in UTF-8
    event = receive_event(sqs, queue.url)
    result = {"text": "ü" * 110_000}  # 220 KB in UTF-8: fits a record, not beside the body
    assert await client.safe_process_batch(event, Runs(result)) == {"batchItemFailures": []}
    record = await client.get_message_record(
        client.read_sqs_record(event["Records"][0]).key, consistent_read=True
    )
    # (the local server applies part of an update it refuses for size, so only the outcome
    # is checked here; the task test above checks the marker, through a transaction)
    assert record.status is Status.COMPLETE and record.result is None


async def test_a_result_that_fits_is_still_stored(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    await client.send_message(queue.url, "small")
    event = receive_event(sqs, queue.url)
    result = {"text": "ü" * 50_000}
    assert await client.safe_process_batch(event, Runs(result)) == {"batchItemFailures": []}
    record = await client.get_message_record(
        client.read_sqs_record(event["Records"][0]).key, consistent_read=True
    )
    assert record.result == result and record.result_dropped is None


# -- 4. clock skew ---------------------------------------------------------------------------


def run_fast(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """This process's wall clock runs ``seconds`` ahead of AWS's from now on."""
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + seconds)


async def test_a_claimant_whose_clock_runs_fast_does_not_take_over_a_live_lease(
    base_config: Config, queue: Queue, sqs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with MessageClient(base_config) as first:
        await first.send_message(queue.url, "once")
        (record,) = receive_event(sqs, queue.url)["Records"]
        assert await first.is_complete(record) is False  # leased for lease_seconds (300 s)
        run_fast(monkeypatch, 600)
        async with MessageClient(base_config) as second:
            with pytest.raises(MessageInProgressError):
                await second.is_complete(record)
            claim = await second.claim(record)
            assert claim.outcome is ClaimOutcome.IN_PROGRESS


async def test_a_runner_whose_clock_runs_fast_does_not_run_a_live_callback_again(
    base_config: Config, queue: Queue, sqs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    calls: list[str] = []

    def callback_of(who: str) -> Any:
        async def callback(cluster: ClusterRecord[Any, Any], get_globals: Any) -> None:
            calls.append(who)
            if who == "first":  # runs until released; a second run would return at once
                started.set()
                await release.wait()

        return callback

    async with MessageClient(base_config) as first, MessageClient(base_config) as second:
        key = await first.create_message_cluster(queue.url, [{"i": 0}], omit_globals=True)
        await first.safe_process_batch(receive_event(sqs, queue.url), Runs())
        running = asyncio.ensure_future(first.on_cluster_complete(key, callback_of("first")))
        await started.wait()
        run_fast(monkeypatch, 600)  # past the callback's lease (lease_seconds, 300 s)
        await second.get_message_cluster(key)  # the second runner has heard from AWS
        assert await second.on_cluster_complete(key, callback_of("second")) is False
        release.set()
        assert await running is True
    assert calls == ["first"]


# -- 3. bounded error lists --------------------------------------------------------------------


class BigError(Exception):
    """A failure whose message is 8 KB in UTF-8 (4,000 two-byte characters)."""

    def __init__(self, n: int) -> None:
        super().__init__(f"failure {n}: " + "é" * 4000)


def raised(n: int, depth: int = 60) -> BigError:
    """A BigError raised ``depth`` frames deep and caught: its traceback is long too."""

    def dive(level: int) -> None:
        if level == 0:
            raise BigError(n)
        dive(level - 1)

    try:
        dive(depth)
    except BigError as exc:
        return exc
    raise AssertionError("unreachable")


def on_receive(record: dict[str, Any], count: int) -> dict[str, Any]:
    """The same delivery as SQS would show it on its ``count``-th receive."""
    return {**record, "attributes": {**record["attributes"], "ApproximateReceiveCount": str(count)}}


async def test_sixty_large_failures_still_end_the_cluster(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    key = await client.create_message_cluster(queue.url, [{"i": 0}], omit_globals=True)
    (record,) = receive_event(sqs, queue.url)["Records"]
    for n in range(60):  # receives that fail (the queue allows 3: these are not the last)
        assert await client.is_complete(record) is False
        assert await client.mark_failed(record, raised(n)) is True
    last = on_receive(record, 3)  # the last allowed receive fails too: the task fails for good
    assert await client.is_complete(last) is False
    assert await client.mark_failed(last, raised(60)) is True

    cluster = await client.get_message_cluster(key, consistent_read=True)
    assert (cluster.status, cluster.completed, cluster.failed) == (Status.ERROR, 0, 1)
    task = await client.get_message_record(client.read_sqs_record(record).key, True)
    kept = [e.message.split(":")[0] for e in task.errors]
    assert kept == ["failure 0", "failure 57", "failure 58", "failure 59", "failure 60"]
    assert task.errors_dropped == 56
    assert all(len(e.message.encode()) <= 2000 for e in task.errors)
    for entry in task.errors:  # the end of each traceback: the innermost frames and the error
        assert entry.traceback is not None and len(entry.traceback.encode()) <= 3000
        assert "in dive" in entry.traceback and "BigError: failure" in entry.traceback


async def test_a_handler_failure_keeps_its_traceback_on_the_record(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    await client.send_message(queue.url, {"sku": "A-1"})
    event = receive_event(sqs, queue.url)

    def reserve(sku: str) -> None:
        raise KeyError(sku)

    def handler(message: ReceivedMessage[Any]) -> None:
        reserve(message.body["sku"])

    response = await client.safe_process_batch(event, handler)
    assert len(response["batchItemFailures"]) == 1
    record = await client.get_message_record(client.read_sqs_record(event["Records"][0]).key, True)
    (entry,) = record.errors
    assert (entry.type, entry.message, entry.receive_count) == ("KeyError", "'A-1'", 1)
    assert entry.traceback is not None
    assert entry.traceback.startswith("Traceback (most recent call last):")
    assert "in handler" in entry.traceback and "in reserve" in entry.traceback
    assert entry.traceback.rstrip().endswith("KeyError: 'A-1'")


async def test_a_callback_failing_on_every_retry_keeps_the_cluster_record_bounded(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    key = await client.create_message_cluster(queue.url, [{"i": 0}], omit_globals=True)
    await client.safe_process_batch(receive_event(sqs, queue.url), Runs())
    failures = 0

    async def broken(cluster: ClusterRecord[Any, Any], get_globals: Any) -> None:
        nonlocal failures
        failures += 1
        raise raised(failures)

    for _ in range(40):  # 40 retries of 5 KB entries: unbounded, 200 KB of errors
        with pytest.raises(BigError):
            await client.on_cluster_complete(key, broken)
    cluster = await client.get_message_cluster(key, consistent_read=True)
    assert cluster.callback_state == "FAILED"
    kept = [e.message.split(":")[0] for e in cluster.errors]
    assert kept == ["failure 1", "failure 37", "failure 38", "failure 39", "failure 40"]
    assert cluster.errors_dropped == 35
    callbacks = Callbacks()
    assert await client.on_cluster_complete(key, callbacks) is True  # still runs once fixed
    assert len(callbacks.calls) == 1


async def test_a_dead_letter_with_a_full_error_list_is_settled(
    client: MessageClient, base_config: Config, sqs: Any
) -> None:
    queue = await make_queue(base_config, max_receive_count=2, visibility_timeout=0)
    key = await client.create_message_cluster(queue.url, [{"i": 0}], omit_globals=True)
    (record,) = receive_event(sqs, queue.url, max_messages=1, visibility=0)["Records"]
    for n in range(60):  # the first receive: not the last allowed one
        assert await client.is_complete(record) is False
        assert await client.mark_failed(record, BigError(n)) is True
    # the last allowed receive's worker dies with nothing recorded; SQS gives up on the next
    assert len(receive_event(sqs, queue.url, max_messages=1, visibility=0)["Records"]) == 1
    assert receive_event(sqs, queue.url)["Records"] == []
    dead = receive_event(sqs, queue.dlq_url)
    assert len(dead["Records"]) == 1
    assert await client.process_dead_letters(dead) == {"batchItemFailures": []}
    cluster = await client.get_message_cluster(key, consistent_read=True)
    assert (cluster.status, cluster.failed) == (Status.ERROR, 1)
    task = await client.get_message_record(client.read_sqs_record(record).key, True)
    assert len(task.errors) == 5 and task.errors[-1].type == "ReceivesExhausted"
