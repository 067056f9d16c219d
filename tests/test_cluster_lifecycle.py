"""A cluster's lifecycle controls: a completion bound at creation, and waiting for the end.

Through the public API (async and the blocking facade) on the local server.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from sqs_cluster import (
    CompletionQueue,
    Config,
    MessageClient,
    Status,
    ValidationError,
)

from . import lifecycle_callbacks
from .conftest import Queue, make_queue, receive_event

pytestmark = pytest.mark.asyncio


def nothing(message: Any) -> None:
    """A task handler that succeeds."""


async def drain(client: MessageClient, queue: Queue, sqs: Any, tasks: int) -> None:
    """Process every task with safe_process_batch and no on_cluster_complete."""
    done = 0
    while done < tasks:
        event = receive_event(sqs, queue.url, max_messages=min(10, tasks - done))
        assert await client.safe_process_batch(event, nothing) == {"batchItemFailures": []}
        done += len(event["Records"])


@pytest.mark.parametrize("path", ["record_end", "record_end_sync"])
async def test_a_function_bound_at_creation_runs_once_without_on_cluster_complete(
    client: MessageClient, queue: Queue, sqs: Any, path: str
) -> None:
    key = await client.create_message_cluster(
        queue.url,
        list(range(12)),
        omit_globals=True,
        on_complete=f"tests.lifecycle_callbacks:{path}",
    )
    await drain(client, queue, sqs, 12)
    cluster = await client.get_message_cluster(key, consistent_read=True)
    assert cluster.on_complete == f"tests.lifecycle_callbacks:{path}"
    assert cluster.callback_state == "DONE"
    assert [e for e in lifecycle_callbacks.ENDED if e[0] == key.id] == [(key.id, "COMPLETE", 12)]
    # a late duplicate of a task does not run it again
    await drain_duplicate(client, queue, sqs, key)
    assert [e for e in lifecycle_callbacks.ENDED if e[0] == key.id] == [(key.id, "COMPLETE", 12)]


async def drain_duplicate(client: MessageClient, queue: Queue, sqs: Any, key: Any) -> None:
    body = {"pKey": key.p_key, "rKey": key.r_key, "task": 0, "type": "task", "index": 0}
    task_key = {"pKey": f"{key.p_key}.0", "rKey": key.r_key}
    sqs.send_message(
        QueueUrl=queue.url,
        MessageBody=json.dumps({**body, "shards": 1}),
        MessageAttributes={
            "sqsClusterKey": {"DataType": "String", "StringValue": json.dumps(task_key)}
        },
    )
    event = receive_event(sqs, queue.url)
    assert await client.safe_process_batch(event, nothing) == {"batchItemFailures": []}


async def test_a_path_that_does_not_import_is_refused_before_anything_is_written(
    client: MessageClient, queue: Queue
) -> None:
    before = dict(client.request_counts)
    for bad, why in [
        ("tests.lifecycle_callbacks:absent", "has no function 'absent'"),
        ("tests.no_such_module:f", "module 'tests.no_such_module'"),
        ("not a path", 'expected "package.module:function"'),
    ]:
        with pytest.raises(ValidationError, match=r"^on_complete") as info:
            await client.create_message_cluster(queue.url, [1], on_complete=bad)
        assert why in str(info.value)
    new = {k for k, v in client.request_counts.items() if v != before.get(k, 0)}
    assert new <= {"sqs.GetQueueAttributes"}


async def test_a_path_that_does_not_import_in_the_consumer_is_recorded_not_skipped(
    base_config: Config, queue: Queue, sqs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with MessageClient(base_config) as client:
        key = await client.create_message_cluster(
            queue.url, [1], omit_globals=True, on_complete="tests.lifecycle_callbacks:record_end"
        )
        monkeypatch.delattr(lifecycle_callbacks, "record_end")  # the consumer's code differs
        event = receive_event(sqs, queue.url)
        failed = await client.safe_process_batch(event, nothing)
        assert len(failed["batchItemFailures"]) == 1  # back to the queue, to retry the callback
        cluster = await client.get_message_cluster(key, consistent_read=True)
    assert (cluster.status, cluster.completed) == (Status.COMPLETE, 1)
    assert cluster.callback_state == "FAILED"
    assert cluster.errors[-1].type == "CallbackImportError"
    assert "has no function 'record_end'" in cluster.errors[-1].message


async def test_a_completion_queue_gets_one_summary_that_is_processed_once(
    base_config: Config, client: MessageClient, queue: Queue, sqs: Any
) -> None:
    done = await make_queue(base_config)
    key = await client.create_message_cluster(
        queue.url,
        list(range(5)),
        meta={"run": "nightly"},
        omit_globals=True,
        on_complete=CompletionQueue(done.url),
    )
    await drain(client, queue, sqs, 5)
    event = receive_event(sqs, done.url)
    (record,) = event["Records"]
    summary = json.loads(record["body"])
    assert summary == {
        "type": "cluster-complete",
        "cluster": key.to_dict(),
        "id": key.id,
        "status": "COMPLETE",
        "total": 5,
        "completed": 5,
        "failed": 0,
        "meta": {"run": "nightly"},
        "globals": None,
        "results": None,
        "redrive": 0,
    }
    seen: list[Any] = []
    assert await client.safe_process_batch(event, seen.append) == {"batchItemFailures": []}
    # the same completion sent again (a runner that died after sending): processed once
    sqs.send_message(
        QueueUrl=done.url,
        MessageBody=record["body"],
        MessageAttributes={
            name: {"DataType": v["dataType"], "StringValue": v["stringValue"]}
            for name, v in record["messageAttributes"].items()
        },
    )
    again = receive_event(sqs, done.url)
    assert await client.safe_process_batch(again, seen.append) == {"batchItemFailures": []}
    assert len(seen) == 1


async def test_a_cluster_that_ends_with_no_completion_says_so(
    client: MessageClient, queue: Queue, sqs: Any, caplog: pytest.LogCaptureFixture
) -> None:
    key = await client.create_message_cluster(queue.url, [1, 2], omit_globals=True)
    with caplog.at_level(logging.WARNING, logger="sqs_cluster"):
        await drain(client, queue, sqs, 2)
    warnings = [r for r in caplog.records if "ended with no completion" in r.getMessage()]
    assert len(warnings) == 1 and key.id in warnings[0].getMessage()


async def test_waiting_returns_the_ended_cluster_and_reads_one_item_per_poll(
    base_config: Config, queue: Queue, sqs: Any
) -> None:
    async with MessageClient(base_config) as client:
        key = await client.create_message_cluster(queue.url, [1, 2, 3], omit_globals=True)
        reads: list[str] = []
        client.add_request_hook(lambda service, op, params: reads.append(op))

        async def later() -> None:
            await asyncio.sleep(0.5)
            async with MessageClient(base_config) as worker:
                await drain(worker, queue, sqs, 3)

        background = asyncio.ensure_future(later())
        cluster = await client.wait_for_message_cluster(key, timeout=60, poll_seconds=0.1)
        await background
    assert cluster.is_finished and (cluster.completed, cluster.total) == (3, 3)
    polls = reads.count("GetItem")
    assert polls >= 2  # it did wait
    assert set(reads) <= {"GetItem", "Query", "BatchGetItem"}
    assert reads.count("Query") == 1  # the full read, once, at the end


async def test_waiting_times_out_with_the_counts_so_far(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    key = await client.create_message_cluster(queue.url, [1, 2], omit_globals=True)
    event = receive_event(sqs, queue.url, max_messages=1)
    await client.safe_process_batch(event, nothing)
    seen: list[int] = []
    with pytest.raises(TimeoutError, match=r"1 completed, 0 failed, 1 of 2 left"):
        await client.wait_for_message_cluster(
            key, timeout=0.3, poll_seconds=0.1, progress=lambda c: seen.append(c.completed)
        )
    assert seen and set(seen) == {1}


async def test_iter_results_yields_index_task_and_result_in_order(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    tasks = [{"n": i, "pad": "é" * (3000 if i == 7 else 1)} for i in range(250)]
    key = await client.create_message_cluster(queue.url, tasks, omit_globals=True)

    def square(message: Any) -> Any:
        n = message.task["n"]
        if n % 50 == 49:
            raise ValueError("fails for good")
        return None if n == 3 else {"square": n * n}

    done = 0
    while done < 250:
        event = receive_event(sqs, queue.url, max_messages=10, visibility=0)
        await client.safe_process_batch(event, square)
        done = (await client.get_message_cluster(key, consistent_read=True)).completed
        done += 5 if done == 245 else 0  # the five that keep failing stay behind
    results = [r async for r in client.iter_results(key)]
    expected = [i for i in range(250) if i % 50 != 49]
    assert [r.task_index for r in results] == expected  # completed ones, in index order
    by_index = {index: (task, result) for index, task, result in results}
    assert by_index[10] == (tasks[10], {"square": 100})
    assert by_index[3] == (tasks[3], None)  # returned nothing
    assert by_index[7] == (None, {"square": 49})  # 6,000 bytes: above record_body_bytes


async def test_cancel_stops_what_has_not_started_and_ends_the_cluster_once(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    key = await client.create_message_cluster(
        queue.url,
        list(range(30)),
        omit_globals=True,
        on_complete="tests.lifecycle_callbacks:record_end",
    )
    ran: list[int] = []
    first = receive_event(sqs, queue.url, max_messages=10)
    assert await client.safe_process_batch(first, lambda m: ran.append(m.task)) == {
        "batchItemFailures": []
    }
    cluster = await client.cancel_message_cluster(key, reason="wrong input file")
    assert (cluster.status, cluster.status_code) == (Status.STOPPED, 500)
    assert (cluster.completed, cluster.failed, cluster.cancelled) == (10, 0, 20)
    assert cluster.is_cancelled and cluster.cancel_reason == "wrong input file"
    ended = [e for e in lifecycle_callbacks.ENDED if e[0] == key.id]
    assert ended == [(key.id, "STOPPED", 10)]  # the bound completion ran, once, and can tell
    # the cancelled tasks' deliveries are consumed without running
    rest = receive_event(sqs, queue.url, max_messages=20)
    assert len(rest["Records"]) == 20
    assert await client.safe_process_batch(rest, lambda m: ran.append(m.task)) == {
        "batchItemFailures": []
    }
    assert len(ran) == 10
    assert [e for e in lifecycle_callbacks.ENDED if e[0] == key.id] == ended
    # once ended, cancelling is a clear error
    with pytest.raises(ValidationError, match=r"already ended \(STOPPED\): nothing to cancel"):
        await client.cancel_message_cluster(key)
    waited = await client.wait_for_message_cluster(key, timeout=5)
    assert waited.status is Status.STOPPED


async def test_a_task_running_while_cancelled_finishes_and_counts(
    base_config: Config, queue: Queue, sqs: Any
) -> None:
    async with MessageClient(base_config) as client:
        key = await client.create_message_cluster(queue.url, [0, 1, 2], omit_globals=True)
        event = receive_event(sqs, queue.url, max_messages=3)
        running = event["Records"][0]
        assert await client.claim(running) is not None  # started before the cancel
        cluster = await client.cancel_message_cluster(key)
        assert (cluster.status, cluster.cancelled, cluster.in_progress) == (
            Status.IN_PROGRESS,
            2,
            1,
        )
        again = await client.cancel_message_cluster(key, reason="ignored")  # idempotent
        assert (again.cancelled, again.in_progress, again.cancel_reason) == (2, 1, None)
        assert await client.mark_complete(running) is True
        ended = await client.get_message_cluster(key, consistent_read=True)
    assert (ended.status, ended.completed, ended.cancelled) == (Status.STOPPED, 1, 2)


async def test_cancel_racing_the_last_completion_ends_the_cluster_once(
    base_config: Config, queue: Queue, sqs: Any
) -> None:
    async with MessageClient(base_config) as client:
        key = await client.create_message_cluster(
            queue.url,
            list(range(4)),
            omit_globals=True,
            on_complete="tests.lifecycle_callbacks:record_end",
        )
        event = receive_event(sqs, queue.url, max_messages=4)
        await client.safe_process_batch({"Records": event["Records"][:3]}, nothing)
        last = {"Records": event["Records"][3:]}
        results = await asyncio.gather(
            client.safe_process_batch(last, nothing),
            client.cancel_message_cluster(key),
            return_exceptions=True,
        )
        cluster = await client.get_message_cluster(key, consistent_read=True)
    assert cluster.is_finished and cluster.completed + cluster.cancelled == 4
    assert [e[0] for e in lifecycle_callbacks.ENDED].count(key.id) == 1
    cancel_result = results[1]
    if isinstance(cancel_result, BaseException):  # the task ended it first
        assert isinstance(cancel_result, ValidationError) and cluster.status is Status.COMPLETE


async def test_cancelling_an_ended_cluster_or_with_a_bad_reason_is_refused(
    client: MessageClient, queue: Queue
) -> None:
    key = await client.create_message_cluster(queue.url, [1, 2], omit_globals=True)
    first = await client.cancel_message_cluster(key, reason="one")
    assert first.status is Status.STOPPED and first.cancelled == 2
    with pytest.raises(ValidationError, match="already ended"):
        await client.cancel_message_cluster(key, reason="two")
    with pytest.raises(ValidationError, match=r"^reason"):
        await client.cancel_message_cluster(key, reason=42)  # type: ignore[arg-type]


async def drained_results(
    client: MessageClient, queue: Queue, sqs: Any, key: Any, total: int
) -> list[Any]:
    done = 0
    while done < total:
        event = receive_event(sqs, queue.url, max_messages=min(10, total - done))
        await client.safe_process_batch(event, lambda m: m.task)  # the result is the task
        done += len(event["Records"])
    return [result async for _, _, result in client.iter_results(key)]


async def test_tasks_from_a_generator_and_an_async_generator(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    key = await client.create_message_cluster(
        queue.url, ({"n": n} for n in range(7)), omit_globals=True
    )
    assert (await client.get_message_cluster(key)).total == 7
    assert await drained_results(client, queue, sqs, key, 7) == [{"n": n} for n in range(7)]


async def test_tasks_from_an_async_generator(base_config: Config, queue: Queue, sqs: Any) -> None:
    async def numbers() -> Any:
        for n in range(4):
            await asyncio.sleep(0)
            yield n

    async with MessageClient(base_config) as client:
        key = await client.create_message_cluster(queue.url, numbers(), omit_globals=True)
        assert await drained_results(client, queue, sqs, key, 4) == [0, 1, 2, 3]


async def test_tasks_from_s3_json_lines_and_csv(
    base_config: Config, client: MessageClient, queue: Queue, sqs: Any
) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=base_config.endpoint_url, region_name="us-east-1")
    bucket = base_config.bucket or ""
    lines = "\n".join(json.dumps({"id": i, "name": f"é{i}"}) for i in range(25)) + "\n\n"
    s3.put_object(Bucket=bucket, Key="inputs/items.jsonl", Body=lines.encode())
    s3.put_object(Bucket=bucket, Key="inputs/rows.csv", Body=b"id,name\n1,a\n2,b\n")
    key = await client.create_message_cluster(
        queue.url, client.tasks_from_s3(bucket, "inputs/items.jsonl"), omit_globals=True
    )
    results = await drained_results(client, queue, sqs, key, 25)
    assert results == [{"id": i, "name": f"é{i}"} for i in range(25)]
    rows = [row async for row in aiter_of(client.tasks_from_s3(bucket, "inputs/rows.csv"))]
    assert rows == [{"id": "1", "name": "a"}, {"id": "2", "name": "b"}]


def aiter_of(source: Any) -> Any:
    """The facade's iterators are sync: give both shapes one async form for the test."""
    if hasattr(source, "__aiter__"):
        return source

    async def wrap() -> Any:
        for item in await asyncio.to_thread(list, source):
            yield item

    return wrap()


async def test_a_task_source_that_does_not_parse_names_the_line(
    base_config: Config, queue: Queue
) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=base_config.endpoint_url, region_name="us-east-1")
    s3.put_object(Bucket=base_config.bucket, Key="bad.jsonl", Body=b'{"a": 1}\n{oops\n')
    async with MessageClient(base_config) as client:
        with pytest.raises(ValidationError, match=r"bad.jsonl line 2: not JSON"):
            await client.create_message_cluster(
                queue.url, client.tasks_from_s3(base_config.bucket or "", "bad.jsonl")
            )
        with pytest.raises(ValidationError, match=r"^format: cannot tell"):
            await client.create_message_cluster(
                queue.url, client.tasks_from_s3(base_config.bucket or "", "tasks.bin")
            )


async def test_results_in_s3_are_written_before_the_completion_runs(
    base_config: Config, client: MessageClient, queue: Queue, sqs: Any
) -> None:
    import boto3

    done = await make_queue(base_config)
    key = await client.create_message_cluster(
        queue.url,
        [{"n": n} for n in range(12)],
        omit_globals=True,
        results="s3",
        on_complete=CompletionQueue(done.url),
    )
    total = 0
    while total < 12:
        event = receive_event(sqs, queue.url, max_messages=10)
        await client.safe_process_batch(event, lambda m: m.task["n"] * 10)
        total += len(event["Records"])
    cluster = await client.get_message_cluster(key, consistent_read=True)
    location = {"Bucket": base_config.bucket, "Key": f"{key.p_key}-results.jsonl"}
    assert cluster.results_to == "s3" and cluster.results_location == location
    s3 = boto3.client("s3", endpoint_url=base_config.endpoint_url, region_name="us-east-1")
    got = s3.get_object(**location)
    assert got["ServerSideEncryption"] == "AES256"
    lines = [json.loads(line) for line in got["Body"].read().decode().splitlines()]
    assert lines == [{"index": n, "task": {"n": n}, "result": n * 10} for n in range(12)]
    (summary,) = receive_event(sqs, done.url)["Records"]
    assert json.loads(summary["body"])["results"] == location  # the completion knows where


async def test_results_option_is_checked_before_anything_is_written(
    base_config: Config, client: MessageClient, queue: Queue
) -> None:
    from sqs_cluster import ConfigError

    with pytest.raises(ValidationError, match=r'^results: expected None or "s3"'):
        await client.create_message_cluster(queue.url, [1], results="dynamodb")
    async with MessageClient(base_config.with_changes(bucket=None)) as plain:
        with pytest.raises(ConfigError, match=r"results=\"s3\" needs Config.bucket"):
            await plain.create_message_cluster(queue.url, [1], omit_globals=True, results="s3")
