"""Clusters from a stream longer than ``Config.stream_tasks_above``: fanned out as it is read,
the total fixed when it ends, never ended before; resumable. And ``iter_results`` at 10,000.

Through the public API on the local server (the sync facade's iterators in test_sync.py).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from sqs_cluster import ClusterSendError, Config, MessageClient, Status, sync

from . import lifecycle_callbacks
from .conftest import Queue, receive_event
from .drain import drain_queue
from .faults import receive_messages

pytestmark = pytest.mark.asyncio

CALLBACK = "tests.lifecycle_callbacks:record_end"
ABOVE = 100  # streams longer than this are fanned out as they are read


@pytest.fixture
def config(base_config: Config) -> Config:
    return base_config.with_changes(stream_tasks_above=ABOVE)


def numbers(count: int) -> Iterator[dict[str, int]]:
    for n in range(count):
        yield {"n": n}


def shards_of(records: list[dict[str, Any]]) -> set[int]:
    return {json.loads(r["body"])["shards"] for r in records}


async def test_a_long_stream_is_counted_whole_and_ends_once(
    config: Config, queue: Queue, sqs: Any
) -> None:
    async with MessageClient(config) as client:
        key = await client.create_message_cluster(
            queue.url, numbers(250), omit_globals=True, on_complete=CALLBACK
        )
        created = await client.get_message_cluster(key, consistent_read=True)
        assert (created.total, created.sent, created.streaming) == (250, 250, False)
        ran: Counter[int] = Counter()
        await drain_queue(client, queue.url, lambda m: ran.update([m.task["n"]]) or m.task["n"])
        ended = await client.get_message_cluster(key, consistent_read=True)
        results = sorted([r.result async for r in client.iter_results(key)])
    assert (ended.status, ended.completed, ended.total) == (Status.COMPLETE, 250, 250)
    assert ran == Counter(range(250))
    assert results == list(range(250))
    assert [e for e in lifecycle_callbacks.ENDED if e[0] == key.id] == [(key.id, "COMPLETE", 250)]


async def test_a_short_stream_is_read_whole_and_a_long_one_counts_into_every_shard(
    config: Config, queue: Queue, sqs: Any
) -> None:
    async with MessageClient(config) as client:
        await client.create_message_cluster(queue.url, numbers(ABOVE), omit_globals=True)
        assert shards_of(receive_event(sqs, queue.url, max_messages=ABOVE)["Records"]) == {1}
        await client.create_message_cluster(queue.url, numbers(ABOVE + 1), omit_globals=True)
        assert shards_of(receive_event(sqs, queue.url, max_messages=ABOVE + 1)["Records"]) == {64}


async def test_the_cluster_cannot_end_before_its_stream_does(config: Config, queue: Queue) -> None:
    paused, resume = asyncio.Event(), asyncio.Event()

    async def slow_stream() -> AsyncIterator[int]:
        for n in range(300):
            if n == 250:  # read 100 a batch: two were fanned out, bar the unit held back
                paused.set()
                await resume.wait()
            yield n

    async with MessageClient(config) as client:
        create = asyncio.ensure_future(
            client.create_message_cluster(
                queue.url, slow_stream(), cluster_id="slow-stream-1", omit_globals=True
            )
        )
        await paused.wait()
        for _ in range(50):  # consumers finish everything sent so far
            await drain_queue(client, queue.url, lambda m: None)
            midway = await client.get_message_cluster("SQSMessage$slow-stream-1", True)
            if midway.completed >= 150:
                break
        assert midway.streaming and midway.status is Status.PRE_FLIGHT
        assert midway.completed == midway.sent >= 150 and not midway.is_finished
        resume.set()
        key = await create
        await drain_queue(client, queue.url, lambda m: None)
        ended = await client.get_message_cluster(key, consistent_read=True)
    assert (ended.status, ended.total, ended.completed) == (Status.COMPLETE, 300, 300)


async def test_a_stream_that_stops_midway_is_resumed_with_the_same_stream(
    config: Config, queue: Queue
) -> None:
    def broken(count: int, fail_at: int) -> Iterator[int]:
        for n in range(count):
            if n == fail_at:
                raise ConnectionError("the source went away")
            yield n

    async with MessageClient(config) as client:
        with pytest.raises(ClusterSendError, match="the source went away") as info:
            await client.create_message_cluster(
                queue.url, broken(300, 250), cluster_id="resume-stream-1", omit_globals=True
            )
        assert "resume" in str(info.value)
        ran: Counter[int] = Counter()
        await drain_queue(client, queue.url, lambda m: ran.update([m.task]))
        partial = await client.get_message_cluster("SQSMessage$resume-stream-1", True)
        assert (
            partial.streaming and not partial.is_finished and partial.completed == sum(ran.values())
        )
        key = await client.create_message_cluster(
            queue.url, broken(300, -1), cluster_id="resume-stream-1", omit_globals=True
        )
        await drain_queue(client, queue.url, lambda m: ran.update([m.task]))
        ended = await client.get_message_cluster(key, consistent_read=True)
    assert (ended.status, ended.total, ended.completed) == (Status.COMPLETE, 300, 300)
    assert ran == Counter(range(300))  # each task ran once: resent copies were absorbed


async def test_a_bad_task_read_late_stops_the_fan_out_naming_it(
    config: Config, queue: Queue
) -> None:
    def tasks(bad: bool) -> Iterator[Any]:
        for n in range(200):
            yield {1, 2} if bad and n == 170 else n

    async with MessageClient(config) as client:
        with pytest.raises(ClusterSendError, match=r"tasks\[170\]") as info:
            await client.create_message_cluster(
                queue.url, tasks(True), cluster_id="bad-stream-1", omit_globals=True
            )
        assert info.value.sent < 200  # what went out before the bad task was read
        key = await client.create_message_cluster(
            queue.url, tasks(False), cluster_id="bad-stream-1", omit_globals=True
        )
        await drain_queue(client, queue.url, lambda m: None)
        ended = await client.get_message_cluster(key, consistent_read=True)
    assert (ended.status, ended.completed) == (Status.COMPLETE, 200)


async def drain_fast(client: MessageClient, queue_url: str, handler: Any, total: int) -> None:
    """Process ``total`` tasks as Lambda would at scale: batches of 100, four at a time."""
    done = 0
    slots = asyncio.Semaphore(4)

    async def one(batch: list[dict[str, Any]]) -> None:
        async with slots:
            response = await client.safe_process_batch(
                {"Records": batch}, handler, concurrency=25, delete_succeeded=True
            )
        assert response == {"batchItemFailures": []}

    while done < total:
        records = await receive_messages(client, queue_url, visibility=300)
        await asyncio.gather(*(one(records[i : i + 100]) for i in range(0, len(records), 100)))
        done += len(records)


@pytest.mark.parametrize("tasks", [1_200, pytest.param(10_000, marks=pytest.mark.slow)])
async def test_iter_results_pages_through_a_large_cluster(
    base_config: Config, queue: Queue, tasks: int
) -> None:
    """100 task records a page, in index order (10,000 tasks take minutes on the local
    server: ``-m slow`` runs them; the suite runs 1,200, 12 pages)."""
    async with MessageClient(base_config.with_changes(max_concurrency=64)) as client:
        key = await client.create_message_cluster(
            queue.url, ({"n": n} for n in range(tasks)), omit_globals=True
        )
        await drain_fast(client, queue.url, lambda m: m.task["n"] * 2, tasks)
        requests_before = dict(client.request_counts)
        seen = 0
        async for index, task, result in client.iter_results(key):
            assert (task, result) == ({"n": index}, index * 2)
            assert index == seen  # in index order, none missing
            seen += 1
        reads = client.request_counts["dynamodb.BatchGetItem"] - requests_before.get(
            "dynamodb.BatchGetItem", 0
        )
    assert seen == tasks
    assert reads == 1 + tasks // 100  # the shards, then 100 task records a request


async def test_a_streamed_cluster_is_cancelled_and_redriven_across_all_its_shards(
    config: Config, queue: Queue, sqs: Any
) -> None:
    async with MessageClient(config) as client:
        key = await client.create_message_cluster(queue.url, numbers(160), omit_globals=True)
        assert (await client.get_message_cluster(key)).shards == 64
        first = receive_event(sqs, queue.url, max_messages=20)
        assert await client.safe_process_batch(first, lambda m: None) == {"batchItemFailures": []}
        cancelled = await client.cancel_message_cluster(key)
        assert (cancelled.status, cancelled.completed, cancelled.cancelled) == (
            Status.STOPPED,
            20,
            140,
        )
        assert await client.redrive_message_cluster(key, tasks=numbers(160)) == 140
        ran: Counter[int] = Counter()
        await drain_queue(client, queue.url, lambda m: ran.update([m.task["n"]]))
        ended = await client.get_message_cluster(key, consistent_read=True)
    assert (ended.status, ended.completed, ended.cancelled) == (Status.COMPLETE, 160, 0)
    assert len(ran) == 140 and set(ran.values()) == {1}  # first-run copies were absorbed


async def test_the_blocking_facade_streams_a_generator_too(
    config: Config, queue: Queue, sqs: Any
) -> None:
    def create() -> Any:
        with sync.MessageClient(config) as client:
            key = client.create_message_cluster(queue.url, numbers(150), omit_globals=True)
            return client.get_message_cluster(key, consistent_read=True)

    cluster = await asyncio.to_thread(create)  # the facade blocks: off this test's loop
    assert (cluster.total, cluster.sent, cluster.shards, cluster.streaming) == (150, 150, 64, False)
    assert shards_of(receive_event(sqs, queue.url, max_messages=150)["Records"]) == {64}
