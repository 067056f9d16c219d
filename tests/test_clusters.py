"""Message clusters: fan-out, globals, exactly-once counting and exactly-once fan-in."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Any

import pytest

from sqs_cluster import (
    ClusterRecord,
    ClusterSendError,
    Config,
    ConflictError,
    MessageClient,
    ReceivedMessage,
    RecordKey,
    RecordNotFoundError,
    RecordType,
    Status,
    ValidationError,
    sync,
)
from sqs_cluster._records.codec import key_item

from .conftest import Queue, make_queue, receive_event, unique
from .drain import drain_queue
from .faults import FaultyClient

pytestmark = pytest.mark.asyncio


class Callbacks:
    """Records every on_cluster_complete call."""

    def __init__(self) -> None:
        self.calls: list[tuple[ClusterRecord[Any, Any], Any]] = []

    async def __call__(self, cluster: ClusterRecord[Any, Any], get_globals: Any) -> None:
        self.calls.append((cluster, await get_globals()))


async def add_index(message: ReceivedMessage[Any]) -> None:
    """A task handler that records its task index in the globals."""
    index = message.task["i"]
    client = message.client

    def add(g: dict[str, Any]) -> dict[str, Any]:
        return {**g, "seen": sorted({*g.get("seen", []), index})}

    await client.update_message_cluster_globals(message.cluster_key, add)


@pytest.mark.parametrize("size", [1, 10, 11])
async def test_cluster_lifecycle(client: MessageClient, queue: Queue, size: int) -> None:
    before = dict(client.request_counts)
    key = await client.create_message_cluster(
        queue.url, [{"i": i} for i in range(size)], globals={"seen": []}, meta={"job": size}
    )
    counts = {k: v - before.get(k, 0) for k, v in client.request_counts.items()}
    assert counts["sqs.SendMessageBatch"] == -(-size // 10)
    assert counts["dynamodb.BatchWriteItem"] == -(-size // 25)
    assert counts["s3.PutObject"] == 1
    cluster = await client.get_message_cluster(key, consistent_read=True)
    assert (cluster.total, cluster.sent, cluster.completed) == (size, size, 0)
    assert cluster.status is Status.IN_PROGRESS and cluster.meta == {"job": size}

    callbacks = Callbacks()
    await drain_queue(client, queue.url, add_index, on_cluster_complete=callbacks)

    assert len(callbacks.calls) == 1
    done, final_globals = callbacks.calls[0]
    assert done.status is Status.COMPLETE and done.succeeded
    assert (done.completed, done.failed, done.in_progress) == (size, 0, 0)
    assert final_globals == {"seen": list(range(size))}
    again = await client.get_message_cluster(key.p_key, consistent_read=True)  # just the pKey
    assert again.callback_state == "DONE" and again.completed_at is not None
    tasks = [t async for t in again.iter_tasks()]
    assert [t.task_index for t in tasks] == list(range(size))
    assert all(t.status is Status.COMPLETE and t.type is RecordType.TASK for t in tasks)


@pytest.mark.slow
async def test_thousand_task_cluster(base_config: Config) -> None:
    await run_big_cluster(base_config, 1000)


async def test_hundred_task_cluster(base_config: Config) -> None:
    """The thousand-task case, smaller: several fan-out units and batches of each kind."""
    await run_big_cluster(base_config, 100)


async def run_big_cluster(base_config: Config, size: int) -> None:
    queue = await make_queue(base_config)
    async with MessageClient(base_config) as client:
        reported: list[int] = []
        key = await client.create_message_cluster(
            queue.url, [{"i": i} for i in range(size)], progress=reported.append, omit_globals=True
        )
        assert sum(reported) == size
        assert client.request_counts["sqs.SendMessageBatch"] == -(-size // 10)
        assert client.request_counts["dynamodb.BatchWriteItem"] == -(-size // 25)
        seen: Counter[int] = Counter()

        def handler(message: ReceivedMessage[Any]) -> None:
            seen[message.task_index or 0] += 1

        callbacks = Callbacks()
        cb_no_globals = _no_globals(callbacks)
        await drain_queue(client, queue.url, handler, on_cluster_complete=cb_no_globals)
        cluster = await client.get_message_cluster(key, consistent_read=True)
    assert sorted(seen) == list(range(size)) and set(seen.values()) == {1}
    assert cluster.completed == size and cluster.status is Status.COMPLETE
    assert len(callbacks.calls) == 1


def _no_globals(callbacks: Callbacks) -> Any:
    async def callback(cluster: ClusterRecord[Any, Any], get_globals: Any) -> None:
        callbacks.calls.append((cluster, None))

    return callback


async def test_task_messages_carry_the_task_and_the_key_attribute_the_cluster(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    key = await client.create_message_cluster(queue.url, [{"a": 1}], globals={"g": 1})
    (record,) = receive_event(sqs, queue.url)["Records"]
    body = json.loads(record["body"])
    bucket = client.config.bucket
    assert body == {"task": {"a": 1}, "type": "task", "index": 0, "shards": 1, "globals": bucket}
    attribute = json.loads(record["messageAttributes"]["sqsClusterKey"]["stringValue"])
    assert attribute == {"pKey": f"{key.p_key}.0", "rKey": key.r_key}  # the cluster's, + index
    message = client.read_sqs_record(record)
    assert message.is_task and message.cluster_key == key and message.task == {"a": 1}
    before = dict(client.request_counts)
    assert await message.get_globals() == {"g": 1}
    new = {
        k: v - before.get(k, 0) for k, v in client.request_counts.items() if v != before.get(k, 0)
    }
    assert new == {"s3.GetObject": 1}  # globals without reading the cluster record
    cluster = await message.get_message_cluster()
    assert cluster.key == key


async def test_concurrent_globals_updates_lose_nothing(client: MessageClient, queue: Queue) -> None:
    key = await client.create_message_cluster(queue.url, [1], globals={"entries": []})

    async def add(n: int) -> None:
        await client.update_cluster_globals(key.p_key, lambda g: {"entries": [*g["entries"], n]})

    await asyncio.gather(*(add(n) for n in range(16)))
    assert sorted((await client.get_message_cluster_globals(key))["entries"]) == list(range(16))
    await client.update_message_cluster_globals(key, {"entries": ["reset"]})
    assert await client.get_message_cluster_globals(key.p_key) == {"entries": ["reset"]}


async def test_duplicate_completion_counts_once(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    key = await client.create_message_cluster(queue.url, [1, 2], omit_globals=True)
    first, second = receive_event(sqs, queue.url)["Records"]
    assert await client.is_complete(first) is False
    assert await client.mark_complete(first) is True
    assert await client.mark_complete(first) is False
    cluster = await client.get_message_cluster(key, consistent_read=True)
    assert (cluster.completed, cluster.status) == (1, Status.IN_PROGRESS)
    await client.mark_complete(second)
    cluster = await client.get_message_cluster(key, consistent_read=True)
    assert (cluster.completed, cluster.status) == (2, Status.COMPLETE)


async def test_many_workers_finishing_together_run_the_callback_once(
    base_config: Config, queue: Queue, sqs: Any
) -> None:
    async with MessageClient(base_config) as creator:
        key = await creator.create_message_cluster(queue.url, list(range(32)), omit_globals=True)
    records = receive_event(sqs, queue.url, max_messages=32)["Records"]
    assert len(records) == 32
    callbacks = Callbacks()
    callback = _no_globals(callbacks)
    clients = [MessageClient(base_config) for _ in range(4)]
    for c in clients:
        await c.__aenter__()
    try:
        responses = await asyncio.gather(
            *(
                clients[i % 4].safe_process_batch(
                    {"Records": [r]}, lambda m: None, on_cluster_complete=callback
                )
                for i, r in enumerate(records)
            )
        )
    finally:
        for c in clients:
            await c.aclose()
    assert all(r == {"batchItemFailures": []} for r in responses)
    assert len(callbacks.calls) == 1
    async with MessageClient(base_config) as reader:
        cluster = await reader.get_message_cluster(key, consistent_read=True)
    assert cluster.completed == 32 and cluster.callback_attempts == 1


async def test_crash_before_callback_is_recovered_by_redelivery(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    key = await client.create_message_cluster(queue.url, [1, 2, 3], omit_globals=True)
    event = receive_event(sqs, queue.url, max_messages=3)
    for record in event["Records"]:  # the worker completes every task, then dies
        assert await client.is_complete(record) is False
        await client.mark_complete(record)
    cluster = await client.get_message_cluster(key, consistent_read=True)
    assert cluster.status is Status.COMPLETE and cluster.callback_state == "PENDING"
    callbacks = Callbacks()
    callback = _no_globals(callbacks)
    last = {"Records": [event["Records"][-1]]}
    assert await client.safe_process_batch(last, lambda m: None, on_cluster_complete=callback) == {
        "batchItemFailures": []
    }
    await client.safe_process_batch(last, lambda m: None, on_cluster_complete=callback)
    assert len(callbacks.calls) == 1
    assert await client.on_cluster_complete(key, callback) is False  # already ran


async def end_with_a_dead_callback_runner(
    client: MessageClient, queue: Queue, sqs: Any
) -> RecordKey:
    """A one-task cluster, ended; its callback claimed by a runner that died mid-callback."""
    key = await client.create_message_cluster(queue.url, [1], omit_globals=True)
    (record,) = receive_event(sqs, queue.url)["Records"]
    await client.is_complete(record)
    await client.mark_complete(record)
    started = asyncio.Event()

    async def hangs(cluster: Any, get_globals: Any) -> None:
        started.set()
        await asyncio.sleep(3600)

    runner = asyncio.ensure_future(client.on_cluster_complete(key, hangs))
    await started.wait()
    runner.cancel()  # the runner dies mid-callback
    with pytest.raises(asyncio.CancelledError):
        await runner
    return key


async def test_callback_whose_runner_died_runs_again_after_its_lease(
    base_config: Config, queue: Queue, sqs: Any
) -> None:
    config = base_config.with_changes(lease_seconds=1)
    async with MessageClient(config) as client:
        key = await end_with_a_dead_callback_runner(client, queue, sqs)
        callbacks = Callbacks()
        assert await client.on_cluster_complete(key, _no_globals(callbacks)) is False  # leased
        await asyncio.sleep(1.2)
        assert await client.on_cluster_complete(key, _no_globals(callbacks)) is True
        assert len(callbacks.calls) == 1


async def test_the_callback_lease_is_set_apart_from_the_message_lease(
    base_config: Config, queue: Queue, sqs: Any, ddb: Any
) -> None:
    """``callback_lease_seconds`` outlives a short message lease: a runner that is still alive
    but slow to renew keeps its claim, and only after that lease would a dead runner's callback
    run again."""
    config = base_config.with_changes(lease_seconds=1, callback_lease_seconds=30)
    async with MessageClient(config) as client:
        key = await end_with_a_dead_callback_runner(client, queue, sqs)
        await asyncio.sleep(1.5)  # past the message lease, well within the callback's
        callbacks = Callbacks()
        assert await client.on_cluster_complete(key, _no_globals(callbacks)) is False
    item = ddb.get_item(TableName=config.table, Key=key_item(key), ConsistentRead=True)["Item"]
    left_ms = int(item["callbackLeaseUntilMs"]["N"]) - time.time() * 1000
    assert 20_000 < left_ms <= 30_000 and item["callbackState"]["S"] == "RUNNING"
    assert callbacks.calls == []


async def test_a_runner_stalled_past_its_callback_lease_does_not_start_the_callback(
    base_config: Config, queue: Queue, sqs: Any
) -> None:
    """A runner stalled (its event loop blocked) between the claim and the start, long enough
    for another runner to take the callback over, does not start it too: it raises
    ConflictError (so its delivery comes back), and the callback has run once."""
    config = base_config.with_changes(lease_seconds=1)
    runs: list[str] = []

    def report(cluster: Any, get_globals: Any) -> None:
        runs.append(cluster.key.p_key)

    async with MessageClient(config) as client:
        key = await client.create_message_cluster(queue.url, [1], omit_globals=True)
        (record,) = receive_event(sqs, queue.url)["Records"]
        await client.is_complete(record)
        await client.mark_complete(record)
        seen: list[str] = []
        took_over: list[bool] = []

        def stall_after_the_claim(service: str, operation: str, params: Any) -> None:
            if seen == ["claim"]:
                seen.append(operation)
                time.sleep(1.2)  # blocks the loop: the lease renewals cannot run either
                with sync.MessageClient(config) as other:  # meanwhile, another runner
                    took_over.append(other.on_cluster_complete(key, report))
            elif operation == "UpdateItem" and b"callbackState = :running" in params["body"]:
                seen.append("claim")  # params: the request as sent (its JSON body)

        remove = client.add_request_hook(stall_after_the_claim)
        with pytest.raises(ConflictError, match="lease ran out before it started"):
            await client.on_cluster_complete(key, report)
        remove()
        assert took_over == [True] and runs == [key.p_key]
        assert await client.on_cluster_complete(key, report) is False
        cluster = await client.get_message_cluster(key, consistent_read=True)
    assert runs == [key.p_key] and cluster.callback_state == "DONE"


async def test_failing_callback_is_recorded_and_retried(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    key = await client.create_message_cluster(queue.url, [1], omit_globals=True)
    event = receive_event(sqs, queue.url)

    async def broken(cluster: Any, get_globals: Any) -> None:
        raise RuntimeError("report service down")

    response = await client.safe_process_batch(event, lambda m: None, on_cluster_complete=broken)
    assert len(response["batchItemFailures"]) == 1  # the message comes back to retry it
    cluster = await client.get_message_cluster(key, consistent_read=True)
    assert cluster.callback_state == "FAILED"
    assert [e.message for e in cluster.errors] == ["report service down"]
    callbacks = Callbacks()
    await client.safe_process_batch(
        event, lambda m: None, on_cluster_complete=_no_globals(callbacks)
    )
    assert len(callbacks.calls) == 1


@pytest.mark.parametrize(
    ("tolerated", "status"), [(None, Status.ERROR), (1, Status.COMPLETE), ("50%", Status.COMPLETE)]
)
async def test_tasks_failing_their_last_receive_are_counted(
    base_config: Config, tolerated: Any, status: Status
) -> None:
    queue = await make_queue(base_config, max_receive_count=2)
    async with MessageClient(base_config) as client:
        key = await client.create_message_cluster(
            queue.url,
            [{"ok": True}, {"ok": False}],
            omit_globals=True,
            tolerated_failures=tolerated,
        )

        def handler(message: ReceivedMessage[Any]) -> None:
            if not message.task["ok"]:
                raise ValueError("always fails")

        failed_tasks: list[Any] = []

        async def callback(cluster: ClusterRecord[Any, Any], get_globals: Any) -> None:
            failed_tasks.extend([t async for t in cluster.iter_tasks(status=Status.ERROR)])

        await drain_queue(client, queue.url, handler, on_cluster_complete=callback)
        cluster = await client.get_message_cluster(key, consistent_read=True)
    assert (cluster.completed, cluster.failed, cluster.status) == (1, 1, status)
    assert [t.task_index for t in failed_tasks] == [1]
    assert [e.receive_count for e in failed_tasks[0].errors] == [1, 2]


async def test_create_resumes_without_duplicates(
    base_config: Config, queue: Queue, sqs: Any, real: dict[str, Any]
) -> None:
    calls = {"n": 0}

    async def fails_after_three(call: Any, kwargs: dict[str, Any]) -> Any:
        calls["n"] += 1
        if calls["n"] > 3:
            return {
                "Successful": [],
                "Failed": [
                    {"Id": e["Id"], "SenderFault": True, "Code": "Broken"}
                    for e in kwargs["Entries"]
                ],
            }
        return await call(**kwargs)

    tasks = [{"i": i} for i in range(120)]
    clients = {**real, "sqs": FaultyClient(real["sqs"], send_message_batch=fails_after_three)}
    async with MessageClient(
        base_config.with_changes(max_concurrency=2), clients=clients
    ) as broken:
        with pytest.raises(ClusterSendError) as info:
            await broken.create_message_cluster(
                queue.url, tasks, cluster_id="resume-me-1", omit_globals=True
            )
    assert info.value.sent == 30 and "resume" in str(info.value)
    async with MessageClient(base_config) as client:
        await drain_queue(client, queue.url, lambda m: None)  # consumers finish what was sent
        partial = await client.get_message_cluster("SQSMessage$resume-me-1", consistent_read=True)
        assert (partial.completed, partial.sent) == (30, 30)
        assert not partial.is_finished  # never complete before every task was sent
        key = await client.create_message_cluster(
            queue.url, tasks, cluster_id="resume-me-1", omit_globals=True
        )
        cluster = await client.get_message_cluster(key, consistent_read=True)
    assert cluster.sent == 120 and cluster.status is Status.IN_PROGRESS
    assert cluster.completed == 30
    indexes = Counter(
        json.loads(r["body"])["index"]
        for r in receive_event(sqs, queue.url, max_messages=200)["Records"]
    )
    assert sorted(indexes) == list(range(30, 120)) and set(indexes.values()) == {1}


async def test_progress_of_a_large_fan_out_stays_small_and_resumes(
    base_config: Config, queue: Queue, sqs: Any, real: dict[str, Any]
) -> None:
    """Units sent whole in a row fold into ``sentBelow``: the progress item, written once a
    unit or so, stays a few hundred bytes at any size, and a resume reads the fold."""
    calls = {"n": 0}

    async def fails_after(call: Any, kwargs: dict[str, Any]) -> Any:
        calls["n"] += 1
        if calls["n"] > 330:  # 66 units of 50 went out, then SQS refuses everything
            failed = [
                {"Id": e["Id"], "SenderFault": True, "Code": "Broken"} for e in kwargs["Entries"]
            ]
            return {"Successful": [], "Failed": failed}
        return await call(**kwargs)

    tasks = list(range(3_400))
    clients = {**real, "sqs": FaultyClient(real["sqs"], send_message_batch=fails_after)}
    async with MessageClient(base_config, clients=clients) as broken:
        with pytest.raises(ClusterSendError) as info:
            await broken.create_message_cluster(
                queue.url, tasks, cluster_id="fold-me-1", omit_globals=True
            )
    assert info.value.sent == 3_300
    async with MessageClient(base_config) as client:
        progress = await client._aws.ddb.get_item(
            TableName=base_config.table,
            Key={"pKey": {"S": "SQSMessage$fold-me-1"}, "rKey": {"S": "SQSMessage$progress"}},
            ConsistentRead=True,
        )
        item = progress["Item"]
        assert int(item["sentBelow"]["N"]) >= 64  # folded
        assert len(item.get("sentUnits", {}).get("NS", [])) < 64
        key = await client.create_message_cluster(
            queue.url, tasks, cluster_id="fold-me-1", omit_globals=True
        )
        cluster = await client.get_message_cluster(key, consistent_read=True)
    assert (cluster.sent, cluster.status) == (3_400, Status.IN_PROGRESS)
    indexes: Counter[int] = Counter()
    for _ in range(20):  # an empty receive ends one round early on a busy server: go on
        records = receive_event(sqs, queue.url, max_messages=3_400 - sum(indexes.values()))
        indexes.update(json.loads(r["body"])["index"] for r in records["Records"])
        if sum(indexes.values()) >= 3_400:
            break
    assert sorted(indexes) == tasks and set(indexes.values()) == {1}  # nothing sent twice


async def test_task_counted_failed_is_not_run_again(base_config: Config, queue: Queue) -> None:
    config = base_config.with_changes(max_receive_count=1)  # below the queue's redrive limit
    async with MessageClient(config) as client:
        key = await client.create_message_cluster(queue.url, [1], omit_globals=True)
        runs: list[int] = []

        def handler(message: ReceivedMessage[Any]) -> None:
            runs.append(message.receive_count)
            raise RuntimeError("fails")

        await drain_queue(client, queue.url, handler)  # redelivered, then skipped and deleted
        cluster = await client.get_message_cluster(key, consistent_read=True)
    assert runs == [1]
    assert (cluster.completed, cluster.failed, cluster.status) == (0, 1, Status.ERROR)


async def test_cluster_id_reused_for_another_cluster_is_rejected(
    client: MessageClient, queue: Queue, base_config: Config
) -> None:
    taken = unique("taken")
    await client.create_message_cluster(queue.url, [1, 2], cluster_id=taken, omit_globals=True)
    with pytest.raises(ValidationError, match="cluster_id"):
        await client.create_message_cluster(
            queue.url, [1, 2, 3], cluster_id=taken, omit_globals=True
        )
    other = await make_queue(base_config)
    with pytest.raises(ValidationError, match="cluster_id"):  # same id, same tasks, other queue
        await client.create_message_cluster(other.url, [1, 2], cluster_id=taken, omit_globals=True)


@pytest.mark.parametrize(
    ("tasks", "kwargs", "field"),
    [
        ([], {}, "tasks"),
        ("abc", {}, "tasks"),
        ({"a": 1}, {}, "tasks"),
        ([1, {2, 3}], {}, r"tasks\[1\]"),
        ([1, 2, b"bytes"], {}, r"tasks\[2\]"),
        ([1, float("nan")], {}, r"tasks\[1\]"),
        ([1], {"cluster_id": "bad id!"}, "cluster_id"),
        ([1], {"tolerated_failures": "150%"}, "tolerated_failures"),
        ([1], {"tolerated_failures": -1}, "tolerated_failures"),
        ([1], {"globals": {1, 2}}, "globals"),
        ([1], {"meta": b"bytes"}, "meta"),
    ],
)
async def test_bad_input_fails_before_anything_is_written(
    client: MessageClient, queue: Queue, tasks: Any, kwargs: dict[str, Any], field: str
) -> None:
    before = dict(client.request_counts)
    with pytest.raises(ValidationError, match=f"^{field}"):
        await client.create_message_cluster(queue.url, tasks, **kwargs)
    new = {k for k, v in client.request_counts.items() if v != before.get(k, 0)}
    assert new <= {"sqs.GetQueueAttributes"}


async def test_update_cluster_meta_and_missing_cluster(client: MessageClient, queue: Queue) -> None:
    key = await client.create_message_cluster(queue.url, [1], meta={"v": 1}, omit_globals=True)
    cluster = await client.update_message_cluster(
        key, lambda r: {"meta": {"v": (r.meta or {})["v"] + 1}}
    )
    assert cluster.meta == {"v": 2} and cluster.total == 1
    with pytest.raises(RecordNotFoundError):
        await client.get_message_cluster("SQSMessage$no-such-cluster")


async def test_a_callback_longer_than_its_lease_is_not_started_twice(
    base_config: Config, queue: Queue, sqs: Any
) -> None:
    """The runner renews the callback's lease while the callback runs: another delivery's
    claim fails, and only a runner that died would lose it."""
    config = base_config.with_changes(lease_seconds=1)
    runs: list[str] = []
    async with MessageClient(config) as first, MessageClient(config) as second:
        key = await first.create_message_cluster(queue.url, [1], omit_globals=True)

        async def slow(cluster: Any, get_globals: Any) -> None:
            runs.append("slow")
            await asyncio.sleep(2.5)  # 2.5 leases

        async def other(cluster: Any, get_globals: Any) -> None:
            runs.append("other")

        async def meanwhile() -> bool:
            await asyncio.sleep(1.8)  # past the first lease: only a renewal keeps it
            return await second.on_cluster_complete(key, other)

        event = receive_event(sqs, queue.url)
        _, ran_again = await asyncio.gather(
            first.safe_process_batch(event, lambda m: None, on_cluster_complete=slow),
            meanwhile(),
        )
        cluster = await first.get_message_cluster(key, consistent_read=True)
    assert runs == ["slow"] and ran_again is False
    assert cluster.callback_state == "DONE"
