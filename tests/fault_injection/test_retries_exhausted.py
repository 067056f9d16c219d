"""Retries exhausted: the error says what was done, and a retry completes it exactly."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from botocore.exceptions import ClientError

from sqs_cluster import ClusterSendError, MessageClient, PartialSendError, Status, ValidationError
from sqs_cluster.testing import FaultInjector, FaultKind, clients_of

from ..conftest import unique
from ..faults import (
    FaultyClient,
    fresh_queue,
    queue_depth,
    receive_bodies,
    receive_messages,
    records_for_queue,
)


async def test_send_batch_with_sends_failing_for_good_reports_and_resumes(
    faulty: MessageClient, clean: MessageClient
) -> None:
    queue = await fresh_queue(clean)
    injector = FaultInjector(
        1, {FaultKind.THROTTLING: 1.0}, ["sqs.SendMessageBatch"], delay_scale=0.001
    )
    config = faulty.config.with_changes(partial_retry_attempts=2, max_attempts=2)
    async with MessageClient(config, session=faulty._aws._session) as client:
        with injector.attached(client), pytest.raises(PartialSendError) as info:
            await client.send_message_batch(queue.url, list(range(12)))
    error = info.value
    assert error.failed_indexes == list(range(12)) and error.sent == {}
    assert "0 of 12 entries sent" in str(error) and "RequestThrottled" in str(error)
    assert await queue_depth(clean, queue.url) == 0
    assert error.queue_url == queue.url and sorted(error.unsent) == list(range(12))
    keys = await clean.resend_unsent(error)  # under the keys their records already have
    assert keys == [error.unsent[i].key for i in range(12)]
    assert await queue_depth(clean, queue.url) == 12
    assert len(await records_for_queue(clean, queue.url)) == 12, "records left behind"
    records = await clean.get_message_records(keys)
    assert [json.loads(r.body or "") if r else None for r in records] == list(range(12))


async def test_resend_skips_entries_a_consumer_already_received(
    faulty: MessageClient, clean: MessageClient
) -> None:
    """A send that failed only in appearance (SQS took it, the answer said no) is not repeated
    once a consumer has claimed its message; one still PRE FLIGHT is."""
    queue = await fresh_queue(clean)
    injector = FaultInjector(
        14, {FaultKind.READ_TIMEOUT: 1.0}, ["sqs.SendMessageBatch"], delay_scale=0.001
    )
    config = faulty.config.with_changes(partial_retry_attempts=1, max_attempts=1)
    async with MessageClient(config, session=faulty._aws._session) as client:
        with injector.attached(client), pytest.raises(PartialSendError) as info:
            await client.send_message_batch(queue.url, list(range(4)))
    error = info.value
    assert sorted(error.failed) == [0, 1, 2, 3]  # every send ran; every answer was lost
    first = await receive_messages(clean, queue.url)
    consumed = [r for r in first if r["body"] in {"0", "1"}]
    await clean.safe_process_batch({"Records": consumed}, lambda m: None, delete_succeeded=True)
    for record in first:
        if record not in consumed:
            await clean.change_visibility(queue.url, [record["receiptHandle"]], 0)
    keys = await clean.resend_unsent(error)
    assert keys == [error.unsent[i].key for i in range(4)]
    bodies = await receive_bodies(clean, queue.url)
    assert bodies == ["2", "2", "3", "3"]  # 0 and 1 were claimed: not sent again


async def test_resend_needs_the_error_send_message_batch_raised(clean: MessageClient) -> None:
    foreign = PartialSendError({}, {0: "boom"})
    with pytest.raises(ValidationError, match=r"^error: "):
        await clean.resend_unsent(foreign)


async def test_create_cluster_with_sends_failing_for_good_resumes_exactly(
    faulty: MessageClient, clean: MessageClient
) -> None:
    queue = await fresh_queue(clean)
    tasks = [{"i": i} for i in range(120)]
    injector = FaultInjector(
        2,
        {FaultKind.SERVER_ERROR: 1.0},
        ["sqs.SendMessageBatch"],
        match=lambda s, op, params: int(params["Entries"][0]["Id"]) >= 60,  # tasks 60+
        delay_scale=0.001,
    )
    config = faulty.config.with_changes(partial_retry_attempts=2, max_attempts=2)
    async with MessageClient(config, session=faulty._aws._session) as client:
        with injector.attached(client), pytest.raises(ClusterSendError) as info:
            await client.create_message_cluster(
                queue.url, tasks, cluster_id="exhausted-1", omit_globals=True
            )
    error = info.value
    assert (error.sent, error.total, sorted(error.failed)) == (60, 120, list(range(60, 120)))
    assert "60 of 120 tasks confirmed sent" in str(error) and "exhausted-1" in str(error)
    key = await clean.create_message_cluster(
        queue.url, tasks, cluster_id="exhausted-1", omit_globals=True
    )
    cluster = await clean.get_message_cluster(key, consistent_read=True)
    assert (cluster.sent, cluster.status) == (120, Status.IN_PROGRESS)
    indexes = Counter(
        json.loads(m["body"])["index"] for m in await receive_messages(clean, queue.url)
    )
    assert sorted(indexes) == list(range(120)) and set(indexes.values()) == {1}


async def test_create_cluster_failing_after_its_record_names_the_cluster(
    faulty: MessageClient, clean: MessageClient
) -> None:
    queue = await fresh_queue(clean)
    injector = FaultInjector(3, {FaultKind.SERVER_ERROR: 1.0}, ["s3.PutObject"], delay_scale=0.001)
    with injector.attached(faulty), pytest.raises(ClusterSendError) as info:
        await faulty.create_message_cluster(queue.url, [1, 2, 3], globals={"g": 1})
    assert info.value.sent == 0 and info.value.cluster_id


async def test_create_cluster_stopped_before_its_fan_out_resumes_with_its_id(
    faulty: MessageClient, clean: MessageClient
) -> None:
    queue = await fresh_queue(clean)
    tasks = [{"i": i} for i in range(60)]
    injector = FaultInjector(3, {FaultKind.SERVER_ERROR: 1.0}, ["s3.PutObject"], delay_scale=0.001)
    with injector.attached(faulty), pytest.raises(ClusterSendError) as info:
        await faulty.create_message_cluster(queue.url, tasks, globals={"seen": []})
    error = info.value
    assert (error.sent, error.total, sorted(error.failed)) == (0, 60, list(range(60)))
    assert error.reason and "PutObject" in error.reason and not error.uncertain
    assert error.cluster_id in str(error) and "resume" in str(error)
    assert await queue_depth(clean, queue.url) == 0
    key = await clean.create_message_cluster(
        queue.url, tasks, globals={"seen": []}, cluster_id=error.cluster_id
    )
    assert key.id == error.cluster_id
    assert await clean.get_message_cluster_globals(key) == {"seen": []}
    records = await receive_messages(clean, queue.url)
    assert Counter(json.loads(r["body"])["index"] for r in records) == Counter(range(60))
    response = await clean.safe_process_batch(
        {"Records": records}, lambda m: None, delete_succeeded=True
    )
    assert response == {"batchItemFailures": []}
    cluster = await clean.get_message_cluster(key, consistent_read=True)
    assert (cluster.sent, cluster.completed, cluster.status) == (60, 60, Status.COMPLETE)


async def test_create_cluster_whose_progress_cannot_be_recorded(
    faulty: MessageClient, clean: MessageClient
) -> None:
    queue = await fresh_queue(clean)
    injector = FaultInjector(
        4,
        {FaultKind.THROTTLING: 1.0},
        ["dynamodb.UpdateItem"],
        match=lambda s, op, params: "sentUnits" in params.get("UpdateExpression", ""),
        delay_scale=0.001,
    )
    tasks = list(range(10))
    with injector.attached(faulty):
        try:
            await faulty.create_message_cluster(
                queue.url, tasks, cluster_id="no-progress-1", omit_globals=True
            )
        except ClientError as exc:
            raise AssertionError(f"raw error escaped: {exc}") from exc
        except ClusterSendError:
            pass
    await clean.create_message_cluster(
        queue.url, tasks, cluster_id="no-progress-1", omit_globals=True
    )
    assert await queue_depth(clean, queue.url) == 10  # no task sent twice


def is_progress_write(service: str, operation: str, params: Mapping[str, Any]) -> bool:
    """The fan-out's merged progress UpdateItem (sentCount, sentUnits, sentTasks)."""
    return "ADD #c" in params.get("UpdateExpression", "")


def is_marker_write(service: str, operation: str, params: Mapping[str, Any]) -> bool:
    """A BatchWriteItem of fan-out progress markers."""
    requests = [r for rs in params.get("RequestItems", {}).values() for r in rs]
    return any(r["PutRequest"]["Item"]["rKey"]["S"] == "SQSMessage$progress" for r in requests)


def sends_from(index: int) -> Callable[[str, str, Mapping[str, Any]], bool]:
    """SendMessageBatch calls of the tasks from ``index`` on."""
    return lambda s, op, params: (
        op == "SendMessageBatch" and int(params["Entries"][0]["Id"]) >= index
    )


async def test_create_cluster_resumes_from_progress_markers(
    faulty: MessageClient, clean: MessageClient
) -> None:
    """The progress item cannot be written and tasks 60+ cannot be sent: each unit's marker
    records what it sent, so the resume sends exactly the rest."""
    queue = await fresh_queue(clean)
    tasks = [{"i": i} for i in range(120)]
    injector = FaultInjector(
        15,
        {FaultKind.THROTTLING: 1.0},
        ["dynamodb.UpdateItem", "sqs.SendMessageBatch"],
        match=lambda s, op, params: (
            is_progress_write(s, op, params) or sends_from(60)(s, op, params)
        ),
        delay_scale=0.001,
    )
    config = faulty.config.with_changes(partial_retry_attempts=2, max_attempts=2)
    async with MessageClient(config, session=faulty._aws._session) as client:
        with injector.attached(client), pytest.raises(ClusterSendError) as info:
            await client.create_message_cluster(
                queue.url, tasks, cluster_id=unique("markers"), omit_globals=True
            )
    error = info.value
    assert (error.sent, sorted(error.failed)) == (60, list(range(60, 120)))
    assert error.unrecorded == [] and error.uncertain == []
    assert injector.count(operation="dynamodb.UpdateItem") > 0
    key = await clean.create_message_cluster(
        queue.url, tasks, cluster_id=error.cluster_id, omit_globals=True
    )
    indexes = Counter(
        json.loads(m["body"])["index"] for m in await receive_messages(clean, queue.url)
    )
    assert indexes == Counter(range(120)), "a task was lost or sent twice"
    assert (await clean.get_message_cluster(key, consistent_read=True)).sent == 120


async def test_create_cluster_whose_progress_cannot_be_written_anywhere(
    faulty: MessageClient, clean: MessageClient
) -> None:
    """Neither the progress item nor the markers can be written: the error names the tasks
    that were sent but not recorded; a resume sends them again (their claims absorb that)."""
    queue = await fresh_queue(clean)
    tasks = [{"i": i} for i in range(120)]
    injector = FaultInjector(
        16,
        {FaultKind.THROTTLING: 1.0},
        ["dynamodb.UpdateItem", "dynamodb.BatchWriteItem", "sqs.SendMessageBatch"],
        match=lambda s, op, params: (
            is_progress_write(s, op, params)
            or is_marker_write(s, op, params)
            or sends_from(60)(s, op, params)
        ),
        delay_scale=0.001,
    )
    config = faulty.config.with_changes(partial_retry_attempts=2, max_attempts=2)
    async with MessageClient(config, session=faulty._aws._session) as client:
        with injector.attached(client), pytest.raises(ClusterSendError) as info:
            await client.create_message_cluster(
                queue.url, tasks, cluster_id=unique("unrecorded"), omit_globals=True
            )
    error = info.value
    assert (error.sent, sorted(error.failed)) == (60, list(range(60, 120)))
    assert error.unrecorded == list(range(60))
    assert "sent but not recorded as sent: tasks[0]" in str(error)
    await clean.create_message_cluster(
        queue.url, tasks, cluster_id=error.cluster_id, omit_globals=True
    )
    indexes = Counter(
        json.loads(m["body"])["index"] for m in await receive_messages(clean, queue.url)
    )
    assert indexes == Counter([*range(60), *range(120)])  # the unrecorded ones, twice


async def test_create_cluster_stopped_mid_send_names_the_uncertain_tasks(
    clean: MessageClient,
) -> None:
    """An error while a unit's messages are being sent stops the fan-out: that unit's tasks
    may or may not have gone out, the later ones surely did not; a resume sends every task."""
    queue = await fresh_queue(clean)
    tasks = [{"i": i} for i in range(120)]
    calls = {"n": 0}

    async def third_call_breaks(call: Any, kwargs: dict[str, Any]) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise ClientError(
                {"Error": {"Code": "AWS.SimpleQueueService.NonExistentQueue", "Message": "gone"}},
                "SendMessageBatch",
            )
        return await call(**kwargs)

    real = clients_of(clean)
    broken = FaultyClient(real["sqs"], send_message_batch=third_call_breaks)
    config = clean.config.with_changes(max_concurrency=2)  # one unit at a time
    async with MessageClient(config, clients={**real, "sqs": broken}) as client:
        with pytest.raises(ClusterSendError) as info:
            await client.create_message_cluster(
                queue.url, tasks, cluster_id=unique("midsend"), omit_globals=True
            )
    error = info.value
    assert error.uncertain == list(range(50)) and sorted(error.failed) == list(range(50, 120))
    assert error.sent == 0 and error.reason and "NonExistentQueue" in error.reason
    assert "(may have been sent): tasks[0]" in str(error)
    assert error.failed[119] == "not attempted: the fan-out stopped first"
    await clean.create_message_cluster(
        queue.url, tasks, cluster_id=error.cluster_id, omit_globals=True
    )
    indexes = Counter(
        json.loads(m["body"])["index"] for m in await receive_messages(clean, queue.url)
    )
    assert set(indexes) == set(range(120))
    assert all(indexes[i] == 1 for i in range(50, 120)), "a task known unsent was sent twice"
