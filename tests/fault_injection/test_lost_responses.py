"""Lost responses: a request that ran must not run again with a different meaning."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

import pytest

from sqs_cluster import CallbackState, ClusterRecord, ConflictError, MessageClient, Status
from sqs_cluster.testing import FaultInjector, FaultKind

from ..faults import (
    fresh_queue,
    key_of,
    queue_depth,
    receive_bodies,
    receive_messages,
    redrive_queue,
)


async def test_globals_update_whose_answer_was_lost_applies_once(
    faulty: MessageClient, clean: MessageClient
) -> None:
    queue = await fresh_queue(clean)
    key = await clean.create_message_cluster(queue.url, [1], globals={"n": 0})
    injector = FaultInjector(5, {FaultKind.READ_TIMEOUT: 1.0}, ["s3.PutObject"], limit=1)
    with injector.attached(faulty):
        await faulty.update_message_cluster_globals(key, lambda g: {"n": g["n"] + 1})
    assert await clean.get_message_cluster_globals(key) == {"n": 1}


async def test_record_update_whose_answer_was_lost_applies_once(
    faulty: MessageClient, clean: MessageClient
) -> None:
    queue = await fresh_queue(clean)
    key = await clean.send_message(queue.url, "x", meta={"n": 0})
    injector = FaultInjector(6, {FaultKind.READ_TIMEOUT: 1.0}, ["dynamodb.UpdateItem"], limit=1)
    with injector.attached(faulty):
        await faulty.update_message_record(key, lambda r: {"meta": {"n": (r.meta or {})["n"] + 1}})
    assert (await clean.get_message_record(key, consistent_read=True)).meta == {"n": 1}


async def test_callback_whose_claim_answer_was_lost_still_runs(
    faulty: MessageClient, clean: MessageClient
) -> None:
    queue = await fresh_queue(clean)
    await clean.create_message_cluster(queue.url, [1], omit_globals=True)
    event = {"Records": await receive_messages(clean, queue.url)}
    injector = FaultInjector(
        7,
        {FaultKind.READ_TIMEOUT: 1.0},
        ["dynamodb.UpdateItem"],
        match=lambda s, op, params: (
            "callbackState = :running" in params.get("UpdateExpression", "")
        ),
        limit=1,
    )
    runs: list[str] = []

    async def callback(cluster: ClusterRecord[Any, Any], get_globals: Any) -> None:
        runs.append(cluster.id)

    with injector.attached(faulty):
        await faulty.safe_process_batch(event, lambda m: None, on_cluster_complete=callback)
    assert injector.count() == 1
    assert len(runs) == 1


async def test_claim_whose_answer_was_lost_still_claims(
    faulty: MessageClient, clean: MessageClient
) -> None:
    queue = await fresh_queue(clean)
    await clean.send_message(queue.url, "x")
    (record,) = await receive_messages(clean, queue.url)
    injector = FaultInjector(8, {FaultKind.READ_TIMEOUT: 1.0}, ["dynamodb.UpdateItem"], limit=1)
    with injector.attached(faulty):
        assert await faulty.is_complete(record) is False


def lose_one_answer(seed: int, operation: str, *expression: str) -> FaultInjector:
    """Loses the answer of the first ``operation`` call whose UpdateExpression (of the call, or
    of one of its transaction items) contains every given fragment: the write itself lands."""

    def matches(service: str, op: str, params: Mapping[str, Any]) -> bool:
        updates = [params, *(i.get("Update", {}) for i in params.get("TransactItems", []))]
        texts = [u.get("UpdateExpression", "") for u in updates]
        return any(all(e in text for e in expression) for text in texts)

    return FaultInjector(seed, {FaultKind.READ_TIMEOUT: 1.0}, [operation], match=matches, limit=1)


async def test_send_message_whose_record_answer_was_lost_sends_once(
    faulty: MessageClient, clean: MessageClient
) -> None:
    queue = await fresh_queue(clean)
    injector = FaultInjector(20, {FaultKind.READ_TIMEOUT: 1.0}, ["dynamodb.PutItem"], limit=1)
    with injector.attached(faulty):
        key = await faulty.send_message(queue.url, "once")
    assert injector.count() == 1
    assert await receive_bodies(clean, queue.url) == ["once"]
    assert (await clean.get_message_record(key, consistent_read=True)).body == "once"


async def claimed(clean: MessageClient, queue: Any, task: bool) -> tuple[Any, str, Any]:
    """A claimed message, or the one task of a fresh cluster: the cluster's key (None for a
    message), the operation that settles it, and its record."""
    key = None
    if task:
        key = await clean.create_message_cluster(queue.url, [1], omit_globals=True)
        operation = "dynamodb.TransactWriteItems"
    else:
        await clean.send_message(queue.url, "x")
        operation = "dynamodb.UpdateItem"
    (record,) = await receive_messages(clean, queue.url)
    assert await clean.is_complete(record) is False
    return key, operation, record


@pytest.mark.parametrize("task", [False, True], ids=["message", "task"])
async def test_completion_whose_answer_was_lost_says_it_completed(
    faulty: MessageClient, clean: MessageClient, task: bool
) -> None:
    key, operation, record = await claimed(clean, await fresh_queue(clean), task)
    injector = lose_one_answer(21, operation, "completedAt")
    with injector.attached(faulty):
        assert await faulty.mark_complete(record, result="r") is True
    assert injector.count() == 1
    assert await faulty.mark_complete(record) is False  # a real duplicate still says so
    stored = await clean.get_message_record(clean.read_sqs_record(record).key, consistent_read=True)
    assert (stored.status, stored.result) == (Status.COMPLETE, "r")
    if task:
        assert (await clean.get_message_cluster(key, consistent_read=True)).completed == 1


@pytest.mark.parametrize("last", [False, True], ids=["retried", "last-receive-task"])
async def test_failure_whose_answer_was_lost_is_recorded_once(
    faulty: MessageClient, clean: MessageClient, last: bool
) -> None:
    queue = await (redrive_queue(clean) if last else fresh_queue(clean))
    key, operation, record = await claimed(clean, queue, last)
    injector = lose_one_answer(22, operation, "list_append")
    with injector.attached(faulty):
        assert await faulty.mark_failed(record, ValueError("boom")) is True
    assert injector.count() == 1
    stored = await clean.get_message_record(clean.read_sqs_record(record).key, consistent_read=True)
    assert [e.message for e in stored.errors] == ["boom"], "the failure was recorded twice"
    if last:
        cluster = await clean.get_message_cluster(key, consistent_read=True)
        assert (cluster.failed, cluster.status) == (1, Status.ERROR)


async def test_callback_failure_whose_answer_was_lost_is_recorded_once(
    faulty: MessageClient, clean: MessageClient
) -> None:
    queue = await fresh_queue(clean)
    key = await clean.create_message_cluster(queue.url, [1], omit_globals=True)
    (record,) = await receive_messages(clean, queue.url)
    await clean.mark_complete(record)

    async def fails(cluster: ClusterRecord[Any, Any], get_globals: Any) -> None:
        raise RuntimeError("callback failed")

    injector = lose_one_answer(23, "dynamodb.UpdateItem", "callbackState = :failed")
    with injector.attached(faulty), pytest.raises(RuntimeError, match="callback failed"):
        await faulty.on_cluster_complete(key, fails)
    assert injector.count() == 1
    cluster = await clean.get_message_cluster(key, consistent_read=True)
    assert cluster.callback_state == CallbackState.FAILED
    assert [e.message for e in cluster.errors] == ["callback failed"], "recorded twice"


async def test_progress_whose_answer_was_lost_counts_once(
    faulty: MessageClient, clean: MessageClient
) -> None:
    queue = await fresh_queue(clean)
    injector = FaultInjector(
        9,
        {FaultKind.READ_TIMEOUT: 1.0},
        ["dynamodb.UpdateItem"],
        match=lambda s, op, params: "sentCount" in json.dumps(params),
        limit=1,
    )
    with injector.attached(faulty):
        key = await faulty.create_message_cluster(queue.url, list(range(5)), omit_globals=True)
    assert (await clean.get_message_cluster(key, consistent_read=True)).sent == 5


async def test_globals_conflict_on_create_is_retried(
    faulty: MessageClient, clean: MessageClient
) -> None:
    queue = await fresh_queue(clean)
    injector = FaultInjector(10, {FaultKind.S3_CONFLICT: 1.0}, ["s3.PutObject"], limit=1)
    with injector.attached(faulty):
        key = await faulty.create_message_cluster(queue.url, [1], globals={"g": 1})
    assert await clean.get_message_cluster_globals(key) == {"g": 1}


async def test_counting_that_keeps_conflicting_raises_a_clear_error(
    faulty: MessageClient, clean: MessageClient
) -> None:
    queue = await fresh_queue(clean)
    key = await clean.create_message_cluster(queue.url, [1], omit_globals=True)
    (record,) = await receive_messages(clean, queue.url)
    assert await clean.is_complete(record) is False
    injector = FaultInjector(13, {FaultKind.TRANSACTION_CONFLICT: 1.0}, limit=2)
    config = faulty.config.with_changes(partial_retry_attempts=2)
    async with MessageClient(config, session=faulty._aws._session) as client:
        with injector.attached(client), pytest.raises(ConflictError) as info:
            await client.mark_complete(record)
    assert "2 transactions in a row" in str(info.value) and "not counted" in str(info.value)
    assert (await clean.get_message_cluster(key, consistent_read=True)).completed == 0
    assert await clean.mark_complete(record) is True  # the retry counts it
    assert (await clean.get_message_cluster(key, consistent_read=True)).completed == 1


async def test_visibility_changes_report_refused_handles(
    faulty: MessageClient, clean: MessageClient
) -> None:
    queue = await fresh_queue(clean)
    await clean.send_message_batch(queue.url, [1, 2, 3])
    received = await clean.receive_messages(queue.url, wait_seconds=0, visibility_timeout=60)
    handles = [m["ReceiptHandle"] for m in received]
    refuse = FaultInjector(
        14,
        {FaultKind.SQS_SENDER_FAULT: 1.0},
        match=lambda s, op, params: params["Entries"][0]["ReceiptHandle"] == handles[0],
    )
    with refuse.attached(faulty):
        assert await faulty.change_visibility(queue.url, handles, 0) == handles
    assert await faulty.change_visibility(queue.url, handles[1:], 0) == []
    assert len(await receive_messages(clean, queue.url)) == 2  # refused: still hidden


async def test_visibility_changes_retry_failed_entries(
    faulty: MessageClient, clean: MessageClient
) -> None:
    queue = await fresh_queue(clean)
    await clean.send_message_batch(queue.url, [1, 2, 3])
    received = await clean.receive_messages(queue.url, wait_seconds=0, visibility_timeout=60)
    injector = FaultInjector(12, {FaultKind.SQS_FAILED_ENTRY: 1.0}, limit=1)
    with injector.attached(faulty):
        await faulty.change_visibility(queue.url, [m["ReceiptHandle"] for m in received], 0)
    assert injector.count(FaultKind.SQS_FAILED_ENTRY) == 1
    assert len(await receive_messages(clean, queue.url)) == 3  # released: visible again


async def test_response_loss_on_sends_is_absorbed_by_claims(
    faulty: MessageClient, clean: MessageClient
) -> None:
    """SQS is at-least-once: a lost SendMessageBatch answer delivers a message twice, with the
    same record key; the claim makes the handler run once."""
    queue = await fresh_queue(clean)
    injector = FaultInjector(11, {FaultKind.READ_TIMEOUT: 1.0}, ["sqs.SendMessageBatch"], limit=1)
    with injector.attached(faulty):
        keys = await faulty.send_message_batch(queue.url, list(range(10)))
    records = await receive_messages(clean, queue.url)
    assert len(records) == 20 and len({key_of(r) for r in records}) == 10
    runs: Counter[str] = Counter()
    for _ in range(3):  # a duplicate seen while its twin holds the lease is retried
        response = await clean.safe_process_batch(
            {"Records": records}, lambda m: runs.update([m.raw_body]), delete_succeeded=True
        )
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        records = [r for r in records if r["messageId"] in failed]
    assert runs == Counter(str(i) for i in range(10))
    assert await queue_depth(clean, queue.url) == 0
    for key in keys:
        assert (await clean.get_message_record(key, consistent_read=True)).status is Status.COMPLETE
