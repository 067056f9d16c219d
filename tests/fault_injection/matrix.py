"""The fault matrix: a row per public operation of MessageClient (what it runs, the AWS operations
it issues, the methods it covers), and the cells it makes with every fault class that can reach
the row. test_matrix.py runs the cells; tests/unit/test_fault_injection.py checks that every
public operation has a row."""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest

from sqs_cluster import (
    Backoff,
    CallbackState,
    ClaimOutcome,
    ClusterRecord,
    ClusterSendError,
    ConflictError,
    Message,
    MessageClient,
    PartialBatchResponse,
    PartialSendError,
    ReceivedMessage,
    RecordKey,
    RecordNotFoundError,
    RetryAfter,
    Status,
    StatusCode,
    ValidationError,
)
from sqs_cluster._messages.lambda_shape import lambda_event
from sqs_cluster.testing import FAULT_SCOPE, FaultInjector, FaultKind

from ..conftest import REGION, Queue, unique
from ..faults import key_of, queue_depth, receive_messages, records_for_queue, redrive_queue

SEED = 20240611
RATE = 0.2
DELAY_SCALE = 0.02  # botocore's retry sleeps, scaled: a throttled retry waits <= 20 ms here


@dataclass
class Cell:
    """One cell of the matrix: the clients, the queue, the injector and what the run saw."""

    kind: FaultKind
    clean: MessageClient
    faulty: MessageClient
    queue: Queue
    injector: FaultInjector
    errors: list[BaseException] = field(default_factory=list)

    @property
    def response_loss(self) -> bool:
        """Lost responses rerun requests: SQS sends may then deliver a message twice."""
        return self.kind is FaultKind.READ_TIMEOUT


async def send_until_done(cell: Cell, bodies: list[Any]) -> list[RecordKey]:
    """send_message_batch; on PartialSendError resend exactly the failed entries, under their
    record keys, until done."""
    try:
        return await cell.faulty.send_message_batch(cell.queue.url, bodies)
    except PartialSendError as exc:
        return await resend_until_done(cell, exc, len(bodies))


async def resend_until_done(
    cell: Cell, error: PartialSendError, size: int | None = None
) -> list[RecordKey]:
    """resend_unsent until every entry of the original batch (``size`` entries) was sent."""
    size = len(error.sent) + len(error.failed) if size is None else size
    for _ in range(10):
        cell.errors.append(error)
        total = len(error.sent) + len(error.failed)
        assert total == size, "indexes refer to the original batch"
        assert f"{len(error.sent)} of {total} entries sent" in str(error)
        assert error.failed and "not sent" in str(error)
        assert set(error.unsent) == set(error.failed)
        try:
            return await cell.faulty.resend_unsent(error)
        except PartialSendError as exc:
            error = exc
    raise AssertionError(f"the batch was never completely sent: {cell.injector.summary()}")


async def assert_one_message_and_record_per_key(cell: Cell, keys: list[RecordKey]) -> None:
    """The queue holds a message for every key (one each, unless an answer was lost: then SQS
    may hold two under one key) and the table exactly one record per message: none left
    behind by a failed send."""
    messages = await receive_messages(cell.clean, cell.queue.url)
    by_key = Counter(key_of(m) for m in messages)
    assert set(by_key) == {json.dumps(k.to_dict(), separators=(",", ":")) for k in keys}
    if not cell.response_loss:
        assert len(messages) == len(keys), "a message was sent twice"
    items = await records_for_queue(cell.clean, cell.queue.url)
    assert len(items) == len(keys), f"{len(items)} records for {len(keys)} messages"


async def op_send_message_batch(cell: Cell) -> None:
    bodies: list[Any] = [{"i": i} for i in range(30)]
    keys = await send_until_done(cell, bodies)
    assert len(set(keys)) == 30
    records = await cell.clean.get_message_records(keys)
    assert [json.loads(r.body or "") for r in records if r is not None] == bodies
    await assert_one_message_and_record_per_key(cell, keys)


async def op_get_message_records(cell: Cell) -> None:
    bodies = [{"i": i} for i in range(30)]
    keys = await cell.clean.send_message_batch(cell.queue.url, bodies)
    missing = RecordKey.for_message("no-such-message", cell.queue.url)
    for _ in range(4):
        try:
            records = await cell.faulty.get_message_records([*keys, missing])
        except ConflictError as exc:  # keys left unprocessed after every retry: says how many
            cell.errors.append(exc)
            assert "unprocessed" in str(exc)
            continue
        assert [json.loads(r.body or "") for r in records[:-1] if r] == bodies
        assert records[-1] is None


async def create_until_done(cell: Cell, tasks: list[Any], cluster_id: str, **kw: Any) -> RecordKey:
    for _ in range(10):
        try:
            return await cell.faulty.create_message_cluster(
                cell.queue.url, tasks, cluster_id=cluster_id, **kw
            )
        except ClusterSendError as exc:
            cell.errors.append(exc)
            assert exc.cluster_id == cluster_id and cluster_id in str(exc)
            assert f"{exc.sent} of {len(tasks)} tasks confirmed sent" in str(exc)
            assert exc.failed and "resume" in str(exc)
    raise AssertionError(f"create_message_cluster never completed: {cell.injector.summary()}")


async def op_create_message_cluster(cell: Cell) -> None:
    tasks = [{"i": i} for i in range(25)]
    cluster_id = unique("matrix")
    key = await create_until_done(cell, tasks, cluster_id, globals={"seen": []}, meta={"m": 1})
    cluster = await cell.clean.get_message_cluster(key, consistent_read=True)
    assert (cluster.total, cluster.completed, cluster.failed) == (25, 0, 0)
    assert cluster.sent == 25, f"progress counted {cluster.sent} tasks sent of 25"
    assert cluster.status is Status.IN_PROGRESS and cluster.meta == {"m": 1}
    assert await cell.clean.get_message_cluster_globals(key) == {"seen": []}
    indexes = Counter(
        json.loads(m["body"])["index"] for m in await receive_messages(cell.clean, cell.queue.url)
    )
    assert set(indexes) == set(range(25))
    if not cell.response_loss:
        assert set(indexes.values()) == {1}, f"tasks sent twice: {indexes}"


async def op_create_from_stream(cell: Cell) -> None:
    """A stream longer than ``stream_tasks_above`` (60 here) under faults: called again with the
    same stream until it returns; its total is sealed once and every task was sent."""
    cluster_id = unique("matrix")
    key = None
    for _ in range(10):
        try:
            key = await cell.faulty.create_message_cluster(
                cell.queue.url,
                ({"i": i} for i in range(130)),
                cluster_id=cluster_id,
                omit_globals=True,
            )
            break
        except ClusterSendError as exc:
            cell.errors.append(exc)
            assert exc.cluster_id == cluster_id and "resume" in str(exc)
    assert key is not None, f"never created: {cell.injector.summary()}"
    cluster = await cell.clean.get_message_cluster(key, consistent_read=True)
    assert (cluster.total, cluster.sent, cluster.streaming) == (130, 130, False)
    assert cluster.status is Status.IN_PROGRESS
    indexes = Counter(
        json.loads(m["body"])["index"] for m in await receive_messages(cell.clean, cell.queue.url)
    )
    assert set(indexes) == set(range(130))


async def op_tasks_from_s3(cell: Cell) -> None:
    """Tasks read from S3 under faults: a read that fails fails its create before anything is
    written (an S3 error, not a ClusterSendError); the create is then called again."""
    bucket = cell.clean.config.bucket or ""
    lines = "".join(json.dumps({"i": i}) + "\n" for i in range(25)).encode()
    await cell.clean._aws.s3.put_object(Bucket=bucket, Key="matrix/tasks.jsonl", Body=lines)
    cluster_id = unique("matrix")
    key = None
    for _ in range(10):
        try:
            key = await cell.faulty.create_message_cluster(
                cell.queue.url,
                cell.faulty.tasks_from_s3(bucket, "matrix/tasks.jsonl"),
                cluster_id=cluster_id,
                omit_globals=True,
            )
            break
        except Exception as exc:
            cell.errors.append(exc)
    assert key is not None, f"never created: {cell.injector.summary()}"
    cluster = await cell.clean.get_message_cluster(key, consistent_read=True)
    assert (cluster.total, cluster.sent) == (25, 25)
    indexes = {
        json.loads(m["body"])["task"]["i"]
        for m in await receive_messages(cell.clean, cell.queue.url)
    }
    assert indexes == set(range(25))


async def run_like_lambda(
    cell: Cell,
    handler: Callable[[ReceivedMessage[Any]], Awaitable[None]],
    callback: Callable[[ClusterRecord[Any, Any], Any], Awaitable[None]],
    finished: Callable[[], Awaitable[bool]],
    *,
    deadline: float = 45.0,
) -> None:
    """Poll with the clean client, process with the faulty one (deleting what succeeded, as the
    worker does); failures become visible again at once. Stops when the queue is empty and
    ``finished()`` says so."""
    sqs = cell.clean._aws.sqs
    start = time.monotonic()
    while time.monotonic() - start < deadline:
        resp = await sqs.receive_message(
            QueueUrl=cell.queue.url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            VisibilityTimeout=1,  # a success whose delete failed comes back soon
            WaitTimeSeconds=0,
        )
        received = resp.get("Messages", [])
        if not received:
            if await queue_depth(cell.clean, cell.queue.url) == 0 and await finished():
                return
            await asyncio.sleep(0.2)
            continue
        event = lambda_event(received, queue_url=cell.queue.url, region=REGION)
        response = await cell.faulty.safe_process_batch(
            event, handler, delete_succeeded=True, on_cluster_complete=callback, concurrency=1
        )
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        for message in received:
            if message["MessageId"] in failed:
                await sqs.change_message_visibility(
                    QueueUrl=cell.queue.url,
                    ReceiptHandle=message["ReceiptHandle"],
                    VisibilityTimeout=0,
                )
        if failed:
            await asyncio.sleep(0.1)
    raise AssertionError(f"the queue never drained: {cell.injector.summary()}")


S3_KINDS = {FaultKind.S3_CONFLICT, FaultKind.S3_PRECONDITION_FAILED}


async def op_safe_process_batch(cell: Cell) -> None:
    size = 10  # one receive batch
    every = 1 if cell.kind in S3_KINDS else 5  # tasks that also update the globals
    key = await cell.clean.create_message_cluster(
        cell.queue.url, [{"i": i} for i in range(size)], globals={"seen": []}, results="s3"
    )
    runs: Counter[int] = Counter()
    callbacks: list[Any] = []

    async def handler(message: ReceivedMessage[Any]) -> None:
        index = message.task["i"]
        runs[index] += 1
        if index % every:
            return

        def add(g: dict[str, Any]) -> dict[str, Any]:  # idempotent: a rerun adds nothing
            return {**g, "seen": sorted({*g["seen"], index})}

        await message.client.update_message_cluster_globals(message.cluster_key, add)

    async def callback(cluster: ClusterRecord[Any, Any], get_globals: Any) -> None:
        callbacks.append((cluster.completed, await get_globals()))

    async def finished() -> bool:
        return (await cell.clean.get_message_cluster(key, consistent_read=True)).is_finished

    await run_like_lambda(cell, handler, callback, finished)
    cluster = await cell.clean.get_message_cluster(key, consistent_read=True)
    assert (cluster.completed, cluster.failed, cluster.status) == (size, 0, Status.COMPLETE)
    assert sorted(runs) == list(range(size))
    assert len(callbacks) == 1, f"the callback ran {len(callbacks)} times"
    assert callbacks[0] == (size, {"seen": list(range(0, size, every))})
    assert cluster.callback_state == "DONE"
    assert cluster.results_location is not None  # written before the callback ran
    tasks = [t async for t in cell.clean.iter_tasks(cluster)]
    assert [t.status for t in tasks] == [Status.COMPLETE] * size


async def op_large_messages(cell: Cell) -> None:
    """Offloaded bodies (plain messages and a cluster's task) loaded under faults: every
    handler sees its whole body, the cluster ends once, and ``resolve_sqs_record`` loads a
    body or raises (then a retry loads it)."""
    url = cell.queue.url
    bodies = [str(i) * 1_100_000 for i in range(2)]  # above the queue's 1 MiB: through S3
    await cell.clean.send_message_batch(url, bodies)
    big = {"blob": "t" * 1_100_000}
    key = await cell.clean.create_message_cluster(url, [big, {"small": 1}], omit_globals=True)
    seen: list[Any] = []
    callbacks: list[int] = []

    async def handler(message: ReceivedMessage[Any]) -> None:
        seen.append(message.task if message.is_task else message.body)

    async def callback(cluster: ClusterRecord[Any, Any], get_globals: Any) -> None:
        callbacks.append(cluster.completed)

    async def finished() -> bool:
        return (await cell.clean.get_message_cluster(key, consistent_read=True)).is_finished

    await run_like_lambda(cell, handler, callback, finished)
    expected = [*bodies, big, {"small": 1}]
    assert all(item in seen for item in expected), "a body was not handed over whole"
    assert callbacks == [2], f"the callback ran {len(callbacks)} times"
    await cell.clean.send_message(url, "r" * 1_100_000)
    (record,) = (await receive_messages(cell.clean, url))[:1]
    for _ in range(10):
        try:
            resolved = await cell.faulty.resolve_sqs_record(record)
        except Exception as exc:
            cell.errors.append(exc)
            continue
        assert resolved.body == "r" * 1_100_000 and not resolved.payload_pending
        return
    raise AssertionError(f"resolve_sqs_record never succeeded: {cell.injector.summary()}")


async def op_retry_backoff(cell: Cell) -> None:
    """Retry delays, RetryAfter and hooks under faults: every message whose handler raised is
    reported and seen by on_failure, whatever becomes of its ChangeMessageVisibilityBatch; a
    failure whose delay was set comes back after it (1 s), one whose delay was lost after the
    receive's own 3 s; every message ends complete."""
    url = cell.queue.url
    keys = await cell.clean.send_message_batch(url, list(range(10)))
    runs: Counter[int] = Counter()
    raised: set[str] = set()  # this batch's messages whose handler raised
    on_failure_saw: set[str] = set()
    on_success_saw: set[int] = set()

    async def handler(message: ReceivedMessage[Any]) -> int:
        runs[message.body] += 1
        if runs[message.body] == 1:  # each message fails its first run
            raised.add(message.message_id)
            raise RetryAfter(1) if message.body % 2 else ValueError("the first run fails")
        return int(message.body)

    async def on_failure(message: ReceivedMessage[Any], error: BaseException) -> None:
        on_failure_saw.add(message.message_id)

    def on_success(message: ReceivedMessage[Any], result: Any) -> None:
        on_success_saw.add(result)

    sqs, start = cell.clean._aws.sqs, time.monotonic()
    while time.monotonic() - start < 60:
        resp = await sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            VisibilityTimeout=3,
            WaitTimeSeconds=0,
        )
        received = resp.get("Messages", [])
        if not received:
            if await queue_depth(cell.clean, url) == 0:
                break
            await asyncio.sleep(0.2)
            continue
        raised.clear()
        response = await cell.faulty.safe_process_batch(
            lambda_event(received, queue_url=url, region=REGION),
            handler,
            delete_succeeded=True,
            retry=Backoff(base_seconds=1, max_seconds=1, jitter=False),
            on_success=on_success,
            on_failure=on_failure,
        )
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        assert raised <= failed, "a handler's failure was not reported"
        assert raised <= on_failure_saw, "on_failure missed a handler's failure"
    else:
        raise AssertionError(f"the queue never drained: {cell.injector.summary()}")
    records = await cell.clean.get_message_records(keys)
    assert [r.status if r else None for r in records] == [Status.COMPLETE] * 10
    assert sorted(runs) == list(range(10)) and on_success_saw <= set(range(10))


async def op_wait_for_message_cluster(cell: Cell) -> None:
    """Waiting under faults: a poll that fails raises; waiting again returns the ended
    cluster with its counts."""
    url = cell.queue.url
    key = await cell.clean.create_message_cluster(url, [1, 2], omit_globals=True)
    events = await receive_messages(cell.clean, url)
    await cell.clean.safe_process_batch({"Records": events}, lambda m: None)
    for _ in range(10):
        try:
            cluster = await cell.faulty.wait_for_message_cluster(key, timeout=20, poll_seconds=0.1)
        except Exception as exc:
            cell.errors.append(exc)
            continue
        assert (cluster.status, cluster.completed, cluster.total) == (Status.COMPLETE, 2, 2)
        return
    raise AssertionError(f"waiting never succeeded: {cell.injector.summary()}")


async def op_redrive_message_cluster(cell: Cell) -> None:
    """Redriving under faults: a call that fails is called again (it goes on with the same
    redrive) until one returns; then each task runs once and the cluster ends once more."""
    url = cell.queue.url
    tasks = list(range(12))
    key = await cell.clean.create_message_cluster(url, tasks, omit_globals=True)
    first = await receive_messages(cell.clean, url)
    done: list[int] = []
    await cell.clean.safe_process_batch({"Records": first[:2]}, lambda m: done.append(m.task))
    await cell.clean.cancel_message_cluster(key)
    for _ in range(10):
        try:
            sent = await cell.faulty.redrive_message_cluster(key, tasks=tasks)
        except ValidationError:  # an earlier call's release landed, its answer did not
            break
        except Exception as exc:
            cell.errors.append(exc)
            continue
        assert sent in (0, 10)
        break
    ran: Counter[int] = Counter()
    messages = await receive_messages(cell.clean, url)
    await cell.clean.safe_process_batch({"Records": messages}, lambda m: ran.update([m.task]))
    cluster = await cell.clean.get_message_cluster(key, consistent_read=True)
    assert (cluster.status, cluster.completed, cluster.cancelled) == (Status.COMPLETE, 12, 0)
    assert (cluster.redrives, cluster.redriving) == (1, False)
    assert ran == Counter(set(tasks) - set(done))  # each redriven task ran once


async def op_cancel_message_cluster(cell: Cell) -> None:
    """Cancelling under faults: a call that fails is called again (it goes on where the first
    stopped) until the cluster ended; every task is counted once, as completed or cancelled."""
    url = cell.queue.url
    key = await cell.clean.create_message_cluster(url, list(range(12)), omit_globals=True)
    events = (await receive_messages(cell.clean, url))[:2]
    await cell.clean.safe_process_batch({"Records": events}, lambda m: None)
    for _ in range(10):
        try:
            cluster = await cell.faulty.cancel_message_cluster(key, reason="matrix")
        except ValidationError:  # an earlier call's end landed, its answer did not
            cluster = await cell.clean.get_message_cluster(key, consistent_read=True)
        except Exception as exc:
            cell.errors.append(exc)
            continue
        if cluster.is_finished:
            break
    assert (cluster.status, cluster.completed, cluster.cancelled) == (Status.STOPPED, 2, 10)
    assert cluster.cancel_reason == "matrix"


async def op_update_message_cluster_globals(cell: Cell) -> None:
    key = await cell.clean.create_message_cluster(cell.queue.url, [1], globals={"entries": []})

    def adder(n: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
        return lambda g: {"entries": [*g["entries"], n]}

    for n in range(10):  # sequential first: which request faults is then fixed by the seed
        await cell.faulty.update_message_cluster_globals(key, adder(n))
    await asyncio.gather(
        *(cell.faulty.update_message_cluster_globals(key, adder(n)) for n in range(10, 16))
    )
    entries = (await cell.clean.get_message_cluster_globals(key))["entries"]
    assert sorted(entries) == list(range(16)), f"lost or doubled updates: {sorted(entries)}"
    await cell.faulty.update_message_cluster_globals(key, {"entries": ["reset"]})
    assert await cell.clean.get_message_cluster_globals(key) == {"entries": ["reset"]}
    assert await cell.faulty.update_cluster_globals(key.p_key, adder(1)) == {
        "entries": ["reset", 1]
    }
    assert await cell.clean.get_message_cluster_globals(key) == {"entries": ["reset", 1]}
    location = cell.clean._globals_location(key)
    head = await cell.clean._aws.s3.head_object(Bucket=location["Bucket"], Key=location["Key"])
    assert head["ServerSideEncryption"] == "AES256"


async def op_send_message(cell: Cell) -> None:
    """One message at a time: a record, then the message; each record read back by its key."""
    bodies = [{"i": i} for i in range(6)]
    keys = [
        await cell.faulty.send_message(cell.queue.url, body, meta={"n": i})
        for i, body in enumerate(bodies)
    ]
    assert len(set(keys)) == 6
    for i, (key, body) in enumerate(zip(keys, bodies, strict=True)):
        record = await cell.faulty.get_message_record(key, consistent_read=bool(i % 2))
        assert (record.key, json.loads(record.body or ""), record.meta) == (key, body, {"n": i})
        assert record.status is Status.PRE_FLIGHT and record.url == cell.queue.url
    with pytest.raises(RecordNotFoundError):
        await cell.faulty.get_message_record(RecordKey.for_message("absent", cell.queue.url))
    await assert_one_message_and_record_per_key(cell, keys)


async def until_sent(cell: Cell, send: Callable[[], Awaitable[Any]]) -> Any:
    """A producer retried by its own trigger: the same call again until it returns."""
    for _ in range(10):
        try:
            return await send()
        except Exception as exc:  # a send whose retries ran out, or a PartialSendError
            cell.errors.append(exc)
    raise AssertionError(f"the send never completed: {cell.injector.summary()}")


async def op_idempotent_sends(cell: Cell) -> None:
    """Sends with idempotency keys, each call repeated until it returns, then all of them
    again: one record per key, one message per key (more only when an answer was lost), and
    of the copies each body is processed once."""
    url = cell.queue.url
    batch = [Message({"b": i}, idempotency_key=f"b{i}") for i in range(6)]
    keys: list[RecordKey] = []
    for _ in range(2):
        singles = [
            await until_sent(
                cell, partial(cell.faulty.send_message, url, {"s": i}, idempotency_key=f"s{i}")
            )
            for i in range(4)
        ]
        sent = await until_sent(cell, lambda: cell.faulty.send_message_batch(url, batch))
        assert keys in ([], [*singles, *sent]), "a second round made new keys"
        keys = [*singles, *sent]
    expected = [RecordKey.for_idempotency_key(f"s{i}", url) for i in range(4)]
    expected += [RecordKey.for_idempotency_key(f"b{i}", url) for i in range(6)]
    assert keys == expected
    assert sent.already_sent == frozenset(range(6))
    messages = await receive_messages(cell.clean, url)
    assert set(Counter(key_of(m) for m in messages)) == {
        json.dumps(k.to_dict(), separators=(",", ":")) for k in keys
    }
    if not cell.response_loss:
        assert len(messages) == len(keys), "a message was sent twice"
    assert len(await records_for_queue(cell.clean, url)) == len(keys)
    runs: Counter[str] = Counter()
    for message in messages:  # one delivery after another, copies included
        await cell.clean.safe_process_batch(
            {"Records": [message]}, lambda m: runs.update([json.dumps(m.body)])
        )
    assert sorted(runs.values()) == [1] * len(keys), f"processed more than once: {runs}"


async def op_update_message_record(cell: Cell) -> None:
    """Read-modify-write of a record: sequential, then concurrent; no update lost or doubled."""
    key = await cell.clean.send_message(cell.queue.url, "x", meta={"n": 0})

    def bump(record: Any) -> dict[str, Any]:
        return {"meta": {"n": (record.meta or {})["n"] + 1}}

    for n in range(1, 7):
        assert (await cell.faulty.update_message_record(key, bump)).meta == {"n": n}
    await asyncio.gather(*(cell.faulty.update_message_record(key, bump) for _ in range(4)))
    updated = await cell.faulty.update_message_record(key.to_dict(), {"owner": "matrix"})
    assert (updated.meta, updated.user) == ({"n": 10}, {"owner": "matrix"})
    record = await cell.clean.get_message_record(key, consistent_read=True)
    assert (record.meta, record.user, record.revision) == ({"n": 10}, {"owner": "matrix"}, 11)
    assert record.status is Status.PRE_FLIGHT and record.body == "x"


async def op_consume_one_by_one(cell: Cell) -> None:
    """A consumer's own loop over plain messages and a cluster's tasks: claim (or is_complete),
    mark_complete with a result; a second look finds it complete, a second completion is refused."""
    url = cell.queue.url
    await cell.clean.send_message_batch(url, [{"p": i} for i in range(3)])
    key = await cell.clean.create_message_cluster(
        url, [{"t": i} for i in range(3)], omit_globals=True
    )
    records = await receive_messages(cell.clean, url)
    assert len(records) == 6
    assert await cell.faulty.max_receive_count(url) is None  # no redrive policy: no last receive
    for n, record in enumerate(records):
        assert await cell.faulty.is_last_receive(record) is False
        if n % 2:
            assert (await cell.faulty.claim(record)).outcome is ClaimOutcome.CLAIMED
        else:
            assert await cell.faulty.is_complete(record) is False
        assert await cell.faulty.mark_complete(record, result={"n": n}) is True
        assert await cell.faulty.is_complete(record) is True
        assert (await cell.faulty.claim(record)).outcome is ClaimOutcome.COMPLETE
        assert await cell.faulty.mark_complete(record, result={"n": -1}) is False
        stored = await cell.clean.get_message_record(
            cell.clean.read_sqs_record(record).key, consistent_read=True
        )
        assert (stored.status, stored.result, stored.lease_until_ms) == (
            Status.COMPLETE,
            {"n": n},
            None,
        )
        assert stored.consumption_count == 1, "a claim was counted twice"
    cluster = await cell.clean.get_message_cluster(key, consistent_read=True)
    assert (cluster.completed, cluster.failed, cluster.status) == (3, 0, Status.COMPLETE)
    assert cluster.callback_state == CallbackState.PENDING


async def op_mark_failed(cell: Cell) -> None:
    """Failures recorded once each: retried ones release the lease; on the last allowed receive
    a plain message stops and a task is counted failed in its cluster, which then ends."""
    await cell.clean.send_message_batch(cell.queue.url, ["a", "b", "c"])
    for record in await receive_messages(cell.clean, cell.queue.url):
        assert await cell.clean.is_complete(record) is False
        assert await cell.faulty.mark_failed(record, ValueError(f"boom {record['body']}")) is True
        stored = await cell.clean.get_message_record(
            cell.clean.read_sqs_record(record).key, consistent_read=True
        )
        assert (stored.status, stored.status_code, stored.lease_until_ms) == (
            Status.ERROR,
            StatusCode.ERROR,
            None,
        )
        assert [e.message for e in stored.errors] == [f"boom {record['body']}"]
    last = await redrive_queue(cell.clean)
    key = await cell.clean.create_message_cluster(last.url, ["ok", "fails"], omit_globals=True)
    plain = await cell.clean.send_message(last.url, "plain")
    assert await cell.faulty.max_receive_count(last.url) == 1
    for record in await receive_messages(cell.clean, last.url):
        assert await cell.faulty.is_last_receive(record) is True
        assert await cell.clean.is_complete(record) is False
        if cell.clean.read_sqs_record(record).task_index == 0:
            assert await cell.clean.mark_complete(record) is True
        else:
            assert await cell.faulty.mark_failed(record, ValueError("last")) is True
    cluster = await cell.clean.get_message_cluster(key, consistent_read=True)
    assert (cluster.completed, cluster.failed, cluster.status) == (1, 1, Status.ERROR)
    (task,) = [t async for t in cell.clean.iter_tasks(cluster, Status.ERROR)]
    for stored in (task, await cell.clean.get_message_record(plain, consistent_read=True)):
        assert (stored.status_code, [e.message for e in stored.errors]) == (
            StatusCode.STOPPED,
            ["last"],
        )


async def settle_until_done(
    cell: Cell,
    records: list[dict[str, Any]],
    process: Callable[[dict[str, Any]], Awaitable[PartialBatchResponse]],
) -> None:
    """Run a batch function until it reports no failure, passing back only the failed records
    (as Lambda redelivers them)."""
    for _ in range(8):
        response = await process({"Records": records})
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        records = [r for r in records if r["messageId"] in failed]
        if not records:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{len(records)} records never settled: {cell.injector.summary()}")


async def op_process_dead_letters(cell: Cell) -> None:
    """Dead letters of a cluster's tasks and of plain messages: each record failed for good
    once, the cluster counted and ended once, its callback run once; a repeat changes nothing."""
    queue = await redrive_queue(cell.clean)
    key = await cell.clean.create_message_cluster(
        queue.url, [{"t": i} for i in range(3)], globals={"g": 1}
    )
    plain = await cell.clean.send_message_batch(queue.url, ["a", "b"])
    assert len(await receive_messages(cell.clean, queue.url, visibility=0)) == 5  # all moved
    records = await receive_messages(cell.clean, queue.dlq_url)
    assert len(records) == 5
    callbacks: list[Any] = []

    async def callback(cluster: ClusterRecord[Any, Any], get_globals: Any) -> None:
        callbacks.append((cluster.failed, cluster.status, await get_globals()))

    async def settle(event: dict[str, Any]) -> PartialBatchResponse:
        return await cell.faulty.process_dead_letters(event, on_cluster_complete=callback)

    await settle_until_done(cell, records, settle)
    cluster = await cell.clean.get_message_cluster(key, consistent_read=True)
    assert (cluster.completed, cluster.failed, cluster.status) == (0, 3, Status.ERROR)
    assert callbacks == [(3, Status.ERROR, {"g": 1})], f"callback runs: {callbacks}"
    assert (cluster.callback_state, cluster.callback_attempts) == (CallbackState.DONE, 1)
    tasks = [t async for t in cell.clean.iter_tasks(cluster)]
    stored = [*tasks, *[r for r in await cell.clean.get_message_records(plain) if r]]
    assert len(stored) == 5
    for record in stored:
        assert (record.status_code, [e.type for e in record.errors]) == (
            StatusCode.STOPPED,
            ["ReceivesExhausted"],
        ), f"{record.key} settled {len(record.errors)} times"
    await settle_until_done(cell, records, settle)  # a redelivered batch is harmless
    again = await cell.clean.get_message_cluster(key, consistent_read=True)
    assert (again.failed, again.callback_attempts, len(callbacks)) == (3, 1, 1)


async def op_get_message_cluster(cell: Cell) -> None:
    """A cluster read back exactly: counts, meta, its task records in order (all, and by status)
    and its globals, through the client and through the record's lazy accessors."""
    key = await cell.clean.create_message_cluster(
        cell.queue.url, [{"t": i} for i in range(12)], globals={"g": [1, 2]}, meta={"m": 1}
    )
    for record in await receive_messages(cell.clean, cell.queue.url):
        message = cell.clean.read_sqs_record(record)
        if message.task_index is not None and message.task_index < 5:
            assert await cell.clean.mark_complete(record, {"r": message.task_index}) is True
    for consistent in (False, True):
        cluster = await cell.faulty.get_message_cluster(key, consistent_read=consistent)
        assert (cluster.key, cluster.total, cluster.sent, cluster.completed, cluster.failed) == (
            key,
            12,
            12,
            5,
            0,
        )
        assert cluster.status is Status.IN_PROGRESS and cluster.meta == {"m": 1}
    tasks = [t async for t in cell.faulty.iter_tasks(cluster)]
    assert [t.task_index for t in tasks] == list(range(12))
    assert [t.body for t in tasks] == [None] * 12  # a task's message carries its body
    assert {t.cluster_key for t in tasks} == {key}
    done = [t.task_index async for t in cluster.iter_tasks(status=Status.COMPLETE)]
    assert done == list(range(5))
    results = [tuple(r) async for r in cell.faulty.iter_results(key)]
    assert results == [(i, {"t": i}, {"r": i}) for i in range(5)]
    assert await cell.faulty.get_message_cluster_globals(key) == {"g": [1, 2]}
    assert await cell.faulty.get_message_cluster_globals(key.p_key) == {"g": [1, 2]}
    assert await cluster.get_globals() == {"g": [1, 2]}
    with pytest.raises(RecordNotFoundError):
        await cell.faulty.get_message_cluster(RecordKey.for_message("absent", cell.queue.url).p_key)


async def op_update_message_cluster(cell: Cell) -> None:
    """Read-modify-write of a cluster record: sequential, then concurrent; none lost or doubled."""
    key = await cell.clean.create_message_cluster(
        cell.queue.url, [1, 2], omit_globals=True, meta={"n": 0}
    )

    def bump(cluster: Any) -> dict[str, Any]:
        return {"meta": {"n": (cluster.meta or {})["n"] + 1}}

    for n in range(1, 5):
        assert (await cell.faulty.update_message_cluster(key, bump)).meta == {"n": n}
    await asyncio.gather(*(cell.faulty.update_message_cluster(key, bump) for _ in range(3)))
    updated = await cell.faulty.update_message_cluster(key.p_key, {"label": "matrix"})
    assert (updated.meta, updated.user, updated.total) == ({"n": 7}, {"label": "matrix"}, 2)
    cluster = await cell.clean.get_message_cluster(key, consistent_read=True)
    assert (cluster.meta, cluster.user, cluster.revision) == ({"n": 7}, {"label": "matrix"}, 8)
    assert (cluster.status, cluster.sent, cluster.completed) == (Status.IN_PROGRESS, 2, 0)


async def op_on_cluster_complete(cell: Cell) -> None:
    """The callback of an ended cluster: not for an open one; a failing run is recorded once and
    retried; then it has run, and later calls do nothing."""
    url = cell.queue.url
    open_key = await cell.clean.create_message_cluster(url, ["open"], omit_globals=True)
    key = await cell.clean.create_message_cluster(url, [0, 1, 2], globals={"g": 1})
    for record in await receive_messages(cell.clean, url):
        if cell.clean.read_sqs_record(record).cluster_key == key:
            assert await cell.clean.mark_complete(record) is True
    runs: list[Any] = []

    async def callback(cluster: ClusterRecord[Any, Any], get_globals: Any) -> None:
        runs.append((cluster.id, cluster.completed, await get_globals()))
        if len(runs) == 1:
            raise RuntimeError("the first run fails")

    assert await cell.faulty.on_cluster_complete(open_key, callback) is False
    with pytest.raises(RuntimeError, match="the first run fails"):
        await cell.faulty.on_cluster_complete(key, callback)
    assert await cell.faulty.on_cluster_complete(key, callback) is True
    assert await cell.faulty.on_cluster_complete(key.p_key, callback) is False
    assert runs == [(key.id, 3, {"g": 1})] * 2
    cluster = await cell.clean.get_message_cluster(key, consistent_read=True)
    assert (cluster.status, cluster.callback_state, cluster.callback_attempts) == (
        Status.COMPLETE,
        CallbackState.DONE,
        2,
    )
    assert [e.message for e in cluster.errors] == ["the first run fails"]


async def op_resend_unsent(cell: Cell) -> None:
    """A PartialSendError (from a clean send whose entries SQS refused) completed by resending:
    every entry sent once, under the key its record already has."""
    bodies = [{"i": i} for i in range(30)]
    refuse = FaultInjector(SEED, {FaultKind.SQS_SENDER_FAULT: 0.3}, ["sqs.SendMessageBatch"])
    with refuse.attached(cell.clean), pytest.raises(PartialSendError) as info:
        await cell.clean.send_message_batch(cell.queue.url, bodies)
    error = info.value
    assert error.failed and len(error.sent) + len(error.failed) == 30
    keys = await resend_until_done(cell, error)
    assert keys == [error.sent[i] if i in error.sent else error.unsent[i].key for i in range(30)]
    records = await cell.clean.get_message_records(keys)
    assert [json.loads(r.body or "") for r in records if r is not None] == bodies
    messages = await receive_messages(cell.clean, cell.queue.url)
    assert set(Counter(json.loads(m["body"])["i"] for m in messages)) == set(range(30))
    if not cell.response_loss:
        assert len(messages) == 30, "a message was sent twice"
    items = await records_for_queue(cell.clean, cell.queue.url)
    assert len(items) == 30, f"{len(items)} records for 30 messages: written twice"


async def change_until_done(cell: Cell, handles: list[str], timeout: int) -> None:
    """change_visibility, passing back the handles it reports unchanged (all handles are live)."""
    left = await cell.faulty.change_visibility(cell.queue.url, handles, timeout)
    for _ in range(5):
        if not left:
            return
        assert set(left) <= set(handles)
        left = await cell.faulty.change_visibility(cell.queue.url, left, timeout)
    raise AssertionError(f"{len(left)} visibility changes never applied: {cell.injector.summary()}")


async def op_queue_operations(cell: Cell) -> None:
    """The local worker's queue calls: receive everything, extend the visibility, release some,
    delete all (retrying what delete_messages reports as not deleted)."""
    url = cell.queue.url
    assert await cell.faulty.queue_visibility_timeout(url) == 30
    bodies = [str(i) for i in range(12)]
    await cell.clean.send_message_batch(url, bodies)
    received: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 20
    while len(received) < 12:  # a lost receive hides its messages for a second
        assert time.monotonic() < deadline, f"received {len(received)} of 12"
        got = await cell.faulty.receive_messages(url, wait_seconds=0, visibility_timeout=1)
        received.update((m["MessageId"], m) for m in got)  # the latest handle counts
        if not got:
            await asyncio.sleep(0.2)
    assert sorted(m["Body"] for m in received.values()) == sorted(bodies)
    assert all("sqsClusterKey" in m["MessageAttributes"] for m in received.values())
    held = list(received.values())
    await change_until_done(cell, [m["ReceiptHandle"] for m in held], 60)
    await asyncio.sleep(1.1)  # past the receive's own second: only the extension hides them now
    assert await receive_messages(cell.clean, url) == [], "an extension was not applied"
    await change_until_done(cell, [m["ReceiptHandle"] for m in held[:4]], 0)
    again = await receive_messages(cell.clean, url)  # released: received anew (new handles)
    assert sorted(r["body"] for r in again) == sorted(m["Body"] for m in held[:4])
    events = lambda_event(held[4:], queue_url=url, region=REGION)["Records"] + again
    messages = [cell.faulty.read_sqs_record(r) for r in events]
    left = await cell.faulty.delete_messages(messages)
    for _ in range(5):
        if not left:
            break
        assert set(left) <= {m.message_id for m in messages}
        left = await cell.faulty.delete_messages([m for m in messages if m.message_id in left])
    assert not left, f"{len(left)} messages never deleted: {cell.injector.summary()}"
    assert await queue_depth(cell.clean, url) == 0


Operation = Callable[[Cell], Awaitable[None]]


@dataclass(frozen=True)
class Scenario:
    """A matrix row: what it runs, the AWS operations it issues under the injector (every one
    it may issue: a cell fails on an undeclared one) and the MessageClient methods it covers."""

    run: Operation
    operations: frozenset[str]
    covers: frozenset[str]
    s3_if_match: bool = False  # whether it writes S3 with If-Match (412 can happen)

    def reached_by(self, kind: FaultKind) -> bool:
        if kind is FaultKind.S3_PRECONDITION_FAILED and not self.s3_if_match:
            return False
        scope = FAULT_SCOPE[kind]
        return scope is None or bool(scope & self.operations)


def ops(*names: str) -> frozenset[str]:
    return frozenset(names)


ONE_BY_ONE_OPERATIONS = ops(
    "sqs.GetQueueAttributes",  # the receive limit
    "dynamodb.UpdateItem",
    "dynamodb.GetItem",
    "dynamodb.TransactWriteItems",
    "dynamodb.Query",
    "dynamodb.BatchGetItem",  # the counter shards
)
"""What a consumer settling messages one at a time (claim, mark_complete, mark_failed) sends."""

SCENARIOS: dict[str, Scenario] = {
    "send_message_batch": Scenario(
        op_send_message_batch,
        ops(
            "sqs.GetQueueAttributes",
            "dynamodb.BatchWriteItem",
            "sqs.SendMessageBatch",
            "dynamodb.BatchGetItem",  # resend_unsent reads the records first
        ),
        ops("send_message_batch"),
    ),
    "get_message_records": Scenario(
        op_get_message_records, ops("dynamodb.BatchGetItem"), ops("get_message_records")
    ),
    "create_message_cluster": Scenario(
        op_create_message_cluster,
        ops(
            "sqs.GetQueueAttributes",
            "dynamodb.PutItem",
            "s3.PutObject",
            "dynamodb.BatchWriteItem",
            "sqs.SendMessageBatch",
            "dynamodb.UpdateItem",
            "dynamodb.GetItem",  # a resume reads the progress item
            "dynamodb.BatchGetItem",  # and the progress markers
        ),
        ops("create_message_cluster"),
    ),
    "create_from_stream": Scenario(
        op_create_from_stream,
        ops(
            "sqs.GetQueueAttributes",
            "dynamodb.PutItem",
            "dynamodb.BatchWriteItem",
            "sqs.SendMessageBatch",
            "dynamodb.UpdateItem",
            "dynamodb.GetItem",
            "dynamodb.BatchGetItem",
            "dynamodb.TransactWriteItems",  # the seal
        ),
        ops("create_message_cluster"),
    ),
    "safe_process_batch": Scenario(
        op_safe_process_batch,
        ops(
            "sqs.GetQueueAttributes",  # the visibility timeout that caps leases, once per queue
            "dynamodb.UpdateItem",
            "dynamodb.TransactWriteItems",
            "dynamodb.GetItem",
            "dynamodb.Query",
            "dynamodb.BatchGetItem",  # the counter shards
            "s3.GetObject",
            "s3.PutObject",
            "sqs.DeleteMessageBatch",
        ),
        ops("safe_process_batch"),
        s3_if_match=True,
    ),
    "large_messages": Scenario(
        op_large_messages,
        ops(
            "sqs.GetQueueAttributes",
            "dynamodb.UpdateItem",
            "dynamodb.TransactWriteItems",
            "dynamodb.GetItem",
            "dynamodb.Query",
            "dynamodb.BatchGetItem",
            "s3.GetObject",
            "s3.DeleteObject",
            "sqs.DeleteMessageBatch",
        ),
        ops("resolve_sqs_record"),
    ),
    "retry_backoff": Scenario(
        op_retry_backoff,
        ops(
            "sqs.GetQueueAttributes",
            "dynamodb.UpdateItem",
            "dynamodb.GetItem",
            "dynamodb.TransactWriteItems",  # a batch's outcomes, in one transaction
            "sqs.ChangeMessageVisibilityBatch",
            "sqs.DeleteMessageBatch",
        ),
        ops("safe_process_batch"),
    ),
    "tasks_from_s3": Scenario(
        op_tasks_from_s3,
        ops(
            "s3.GetObject",
            "sqs.GetQueueAttributes",
            "dynamodb.PutItem",
            "dynamodb.BatchWriteItem",
            "sqs.SendMessageBatch",
            "dynamodb.UpdateItem",
            "dynamodb.GetItem",
            "dynamodb.BatchGetItem",
        ),
        ops("tasks_from_s3"),
    ),
    "cancel_message_cluster": Scenario(
        op_cancel_message_cluster,
        ops(
            "dynamodb.Query",
            "dynamodb.BatchGetItem",
            "dynamodb.UpdateItem",
            "dynamodb.TransactWriteItems",
            "dynamodb.GetItem",
        ),
        ops("cancel_message_cluster"),
    ),
    "redrive_message_cluster": Scenario(
        op_redrive_message_cluster,
        ops(
            "dynamodb.Query",
            "dynamodb.BatchGetItem",
            "dynamodb.UpdateItem",
            "dynamodb.TransactWriteItems",
            "dynamodb.GetItem",
            "sqs.GetQueueAttributes",
            "sqs.SendMessageBatch",
        ),
        ops("redrive_message_cluster"),
    ),
    "wait_for_message_cluster": Scenario(
        op_wait_for_message_cluster,
        ops("dynamodb.GetItem", "dynamodb.Query", "dynamodb.BatchGetItem"),
        ops("wait_for_message_cluster"),
    ),
    "update_message_cluster_globals": Scenario(
        op_update_message_cluster_globals,
        ops("s3.GetObject", "s3.PutObject"),
        ops("update_message_cluster_globals", "update_cluster_globals"),
        s3_if_match=True,
    ),
    "send_message": Scenario(
        op_send_message,
        ops("sqs.GetQueueAttributes", "dynamodb.PutItem", "sqs.SendMessage", "dynamodb.GetItem"),
        ops("send_message", "get_message_record"),
    ),
    "idempotent_sends": Scenario(
        op_idempotent_sends,
        ops(
            "sqs.GetQueueAttributes",
            "dynamodb.PutItem",  # the conditional record of each key
            "dynamodb.GetItem",  # only when a refused PutItem did not return the item
            "sqs.SendMessage",
            "sqs.SendMessageBatch",
            "dynamodb.UpdateItem",  # sentAt
        ),
        ops("send_message", "send_message_batch"),
    ),
    "update_message_record": Scenario(
        op_update_message_record,
        ops("dynamodb.GetItem", "dynamodb.UpdateItem"),
        ops("update_message_record"),
    ),
    "consume_one_by_one": Scenario(
        op_consume_one_by_one,
        ONE_BY_ONE_OPERATIONS,
        ops("claim", "is_complete", "mark_complete", "is_last_receive", "max_receive_count"),
    ),
    "mark_failed": Scenario(
        op_mark_failed,
        ONE_BY_ONE_OPERATIONS,
        ops("mark_failed", "is_last_receive", "max_receive_count"),
    ),
    "process_dead_letters": Scenario(
        op_process_dead_letters,
        ops(
            "dynamodb.UpdateItem",
            "dynamodb.GetItem",
            "dynamodb.TransactWriteItems",
            "dynamodb.Query",
            "dynamodb.BatchGetItem",  # the counter shards
            "s3.GetObject",
        ),
        ops("process_dead_letters"),
    ),
    "get_message_cluster": Scenario(
        op_get_message_cluster,
        ops("dynamodb.Query", "dynamodb.BatchGetItem", "s3.GetObject"),
        ops("get_message_cluster", "iter_tasks", "iter_results", "get_message_cluster_globals"),
    ),
    "update_message_cluster": Scenario(
        op_update_message_cluster,
        ops("dynamodb.Query", "dynamodb.BatchGetItem", "dynamodb.GetItem", "dynamodb.UpdateItem"),
        ops("update_message_cluster"),
    ),
    "on_cluster_complete": Scenario(
        op_on_cluster_complete,
        ops(
            "dynamodb.GetItem",
            "dynamodb.Query",
            "dynamodb.BatchGetItem",
            "dynamodb.UpdateItem",
            "s3.GetObject",
        ),
        ops("on_cluster_complete"),
    ),
    "resend_unsent": Scenario(
        op_resend_unsent,
        ops("dynamodb.BatchGetItem", "dynamodb.BatchWriteItem", "sqs.SendMessageBatch"),
        ops("resend_unsent"),
    ),
    "queue_operations": Scenario(
        op_queue_operations,
        ops(
            "sqs.GetQueueAttributes",
            "sqs.ReceiveMessage",
            "sqs.ChangeMessageVisibilityBatch",
            "sqs.DeleteMessageBatch",
        ),
        ops("queue_visibility_timeout", "receive_messages", "change_visibility", "delete_messages"),
    ),
}

PREFLIGHT_OPERATIONS = ops("dynamodb.DescribeTable", "s3.HeadBucket")
"""Resource checks made once per process: whichever row runs first issues them."""

NOT_IN_MATRIX: dict[str, str] = {
    "aclose": "closes the aiobotocore clients; sends no AWS request a fault could hit",
}
"""Public async methods of MessageClient the matrix leaves out, with the reason. Dunders
(``__aenter__``/``__aexit__``) and plain methods (``add_request_hook``, ``read_sqs_record``,
``log_failure``) send no request and are not public operations in this sense."""


KNOWN_GAPS: dict[tuple[str, FaultKind], tuple[str, bool, type[BaseException] | None]] = {}


def matrix() -> list[Any]:
    cells = []
    for name, scenario in SCENARIOS.items():
        for kind in FaultKind:
            if not scenario.reached_by(kind):
                continue
            gap = KNOWN_GAPS.get((name, kind))
            marks = [pytest.mark.xfail(strict=gap[1], reason=gap[0], raises=gap[2])] if gap else []
            cells.append(pytest.param(name, kind, id=f"{name}-{kind.value}", marks=marks))
    return cells


def returns_async_iterator(function: Callable[..., Any]) -> bool:
    annotation = inspect.signature(function).return_annotation
    name = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    return name.split("[")[0].rsplit(".", 1)[-1] in {"AsyncIterator", "AsyncGenerator"}


def public_operations() -> set[str]:
    """MessageClient's public coroutine methods, and its methods returning async iterators."""
    return {
        name
        for name, member in inspect.getmembers(MessageClient, inspect.isfunction)
        if not name.startswith("_")
        and (inspect.iscoroutinefunction(member) or returns_async_iterator(member))
    }
