"""Redriving a cluster: only its failed (or cancelled) tasks run again, and it ends once more.

Through the public API (async and the blocking facade) on the local server.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from sqs_cluster import (
    CompletionQueue,
    Config,
    MessageClient,
    RedriveError,
    Status,
    ValidationError,
)

from . import lifecycle_callbacks
from .conftest import Queue, make_queue, receive_event
from .faults import FaultyClient

pytestmark = pytest.mark.asyncio

CALLBACK = "tests.lifecycle_callbacks:record_redrive"


def ends_of(key: Any) -> list[tuple[str, str, int, int, int]]:
    return [e for e in lifecycle_callbacks.REDRIVEN if e[0] == key.id]


async def drain(
    client: MessageClient,
    queue_url: str,
    sqs: Any,
    handler: Any,
    expected: int,
    *,
    visibility: int = 30,
) -> list[dict[str, Any]]:
    """Process ``expected`` deliveries; returns their records."""
    seen: list[dict[str, Any]] = []
    while len(seen) < expected:
        wanted = min(10, expected - len(seen))
        event = receive_event(sqs, queue_url, max_messages=wanted, visibility=visibility)
        assert event["Records"], f"only {len(seen)} of {expected} deliveries came"
        await client.safe_process_batch(event, handler)
        seen.extend(event["Records"])
    return seen


@pytest.fixture
async def once_queue(base_config: Config) -> Queue:
    """A queue whose first failed receive is the last: a failing task fails for good."""
    return await make_queue(base_config, max_receive_count=1, visibility_timeout=0)


async def test_redrive_runs_only_the_failed_tasks_and_the_completion_once_more(
    client: MessageClient, once_queue: Queue, sqs: Any
) -> None:
    key = await client.create_message_cluster(
        once_queue.url, [{"n": i} for i in range(30)], omit_globals=True, on_complete=CALLBACK
    )
    ran: Counter[int] = Counter()
    broken = {"on": True}

    def handler(message: Any) -> int:
        n: int = message.task["n"]
        ran[n] += 1
        if broken["on"] and n % 10 == 3:
            raise ValueError(f"task {n} is broken")
        return n

    await drain(client, once_queue.url, sqs, handler, 30)
    first = await client.get_message_cluster(key, consistent_read=True)
    assert (first.status, first.completed, first.failed, first.redrives) == (Status.ERROR, 27, 3, 0)
    assert ends_of(key) == [(key.id, "ERROR", 27, 3, 0)]

    broken["on"] = False
    assert await client.redrive_message_cluster(key) == 3
    reopened = await client.get_message_cluster(key, consistent_read=True)
    assert (reopened.status, reopened.failed, reopened.in_progress) == (Status.IN_PROGRESS, 0, 3)
    assert (reopened.redrives, reopened.redriving, reopened.is_finished) == (1, False, False)

    records = await drain(client, once_queue.url, sqs, handler, 3)
    assert sorted(json.loads(r["body"])["task"]["n"] for r in records) == [3, 13, 23]
    ended = await client.get_message_cluster(key, consistent_read=True)
    assert (ended.status, ended.completed, ended.failed) == (Status.COMPLETE, 30, 0)
    assert ends_of(key) == [(key.id, "ERROR", 27, 3, 0), (key.id, "COMPLETE", 30, 0, 1)]
    assert ran == Counter({n: 2 if n % 10 == 3 else 1 for n in range(30)})
    assert sorted(r.result for r in [x async for x in client.iter_results(key)]) == list(range(30))

    assert await client.redrive_message_cluster(key) == 0  # nothing failed: a no-op
    assert (await client.get_message_cluster(key)).redrives == 1
    assert receive_event(sqs, once_queue.url, max_messages=1)["Records"] == []


async def test_a_cancelled_cluster_is_redriven_with_its_task_list(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    tasks = [{"n": i} for i in range(10)]
    key = await client.create_message_cluster(
        queue.url, tasks, omit_globals=True, on_complete=CALLBACK
    )
    ran: Counter[int] = Counter()
    await drain(client, queue.url, sqs, lambda m: ran.update([m.task["n"]]), 4)
    cancelled = await client.cancel_message_cluster(key, reason="paused")
    assert (cancelled.status, cancelled.cancelled) == (Status.STOPPED, 6)

    with pytest.raises(ValidationError, match=r"^tasks: 6 of the 6 tasks to redrive .* tasks="):
        await client.redrive_message_cluster(key)
    with pytest.raises(ValidationError, match="expected the cluster's 10 tasks, got 9"):
        await client.redrive_message_cluster(key, tasks=tasks[:9])
    assert (await client.get_message_cluster(key, consistent_read=True)).status is Status.STOPPED

    # the first run's six deliveries are still in the queue: redriven before they were consumed
    assert await client.redrive_message_cluster(key, tasks=(t for t in tasks)) == 6
    reopened = await client.get_message_cluster(key, consistent_read=True)
    assert (reopened.cancelled, reopened.in_progress, reopened.is_cancelled) == (0, 6, False)
    await drain(client, queue.url, sqs, lambda m: ran.update([m.task["n"]]), 12)
    ended = await client.get_message_cluster(key, consistent_read=True)
    assert (ended.status, ended.completed, ended.cancelled) == (Status.COMPLETE, 10, 0)
    assert ran == Counter(range(10))  # old and new deliveries: each task ran once
    assert ends_of(key) == [(key.id, "STOPPED", 4, 0, 0), (key.id, "COMPLETE", 10, 0, 1)]


async def test_redriving_a_cluster_that_has_not_ended_is_refused(
    client: MessageClient, queue: Queue
) -> None:
    key = await client.create_message_cluster(queue.url, [1, 2], omit_globals=True)
    with pytest.raises(ValidationError, match=r"has not ended \(2 of 2 tasks outstanding\)"):
        await client.redrive_message_cluster(key)


async def test_a_redrive_stopped_midway_goes_on_when_called_again(
    base_config: Config, once_queue: Queue, sqs: Any, real: dict[str, Any]
) -> None:
    async with MessageClient(base_config) as client:
        key = await client.create_message_cluster(
            once_queue.url, list(range(60)), omit_globals=True, on_complete=CALLBACK
        )

        def fails_even(message: Any) -> None:
            if message.task % 2 == 0:
                raise ValueError("even")

        await drain(client, once_queue.url, sqs, fails_even, 60)
        assert (await client.get_message_cluster(key, consistent_read=True)).failed == 30

    calls = {"n": 0}

    async def fails_after_the_first(call: Any, kwargs: dict[str, Any]) -> Any:
        calls["n"] += 1
        if calls["n"] > 1:
            raise ConnectionError("the network went away")
        return await call(**kwargs)

    clients = {**real, "sqs": FaultyClient(real["sqs"], send_message_batch=fails_after_the_first)}
    async with MessageClient(base_config, clients=clients) as broken:
        with pytest.raises(RedriveError, match="call redrive_message_cluster again") as info:
            await broken.redrive_message_cluster(key)
    assert info.value.number == 1 and info.value.failed

    async with MessageClient(base_config) as client:
        # what was sent runs; the cluster cannot end while the redrive is unfinished
        sent = 30 - len(info.value.failed)
        await drain(client, once_queue.url, sqs, lambda m: None, sent)
        halfway = await client.get_message_cluster(key, consistent_read=True)
        assert halfway.redriving and halfway.status is Status.IN_PROGRESS
        assert halfway.completed == 30 + sent
        assert await client.redrive_message_cluster(key) == len(info.value.failed)
        await drain(client, once_queue.url, sqs, lambda m: None, len(info.value.failed))
        ended = await client.get_message_cluster(key, consistent_read=True)
    assert (ended.status, ended.completed, ended.redrives, ended.redriving) == (
        Status.COMPLETE,
        60,
        1,
        False,
    )
    assert ends_of(key) == [(key.id, "ERROR", 30, 30, 0), (key.id, "COMPLETE", 60, 0, 1)]


async def test_each_end_sends_its_own_completion_message(
    base_config: Config, once_queue: Queue, sqs: Any
) -> None:
    done_queue = await make_queue(base_config)
    async with MessageClient(base_config) as client:
        key = await client.create_message_cluster(
            once_queue.url,
            [0, 1],
            omit_globals=True,
            on_complete=CompletionQueue(done_queue.url),
        )
        state = {"fail": True}

        def handler(message: Any) -> None:
            if state["fail"] and message.task == 1:
                raise ValueError("one")

        await drain(client, once_queue.url, sqs, handler, 2)
        state["fail"] = False
        assert await client.redrive_message_cluster(key) == 1
        await drain(client, once_queue.url, sqs, handler, 1)
        summaries: list[Any] = []
        event = receive_event(sqs, done_queue.url, max_messages=3)
        await client.safe_process_batch(event, lambda m: summaries.append(m.body))
    ends = sorted((s["redrive"], s["status"]) for s in summaries)  # a standard queue: any order
    assert ends == [(0, "ERROR"), (1, "COMPLETE")]


async def test_a_fifo_cluster_is_redriven_past_the_deduplication_window(
    base_config: Config, sqs: Any
) -> None:
    fifo = await make_queue(
        base_config, f"redrive-{id(sqs)}.fifo", max_receive_count=1, visibility_timeout=0
    )
    async with MessageClient(base_config) as client:
        key = await client.create_message_cluster(fifo.url, ["a", "b"], omit_globals=True)
        state = {"fail": True}

        def handler(message: Any) -> None:
            if state["fail"] and message.task == "b":
                raise ValueError("b")

        # a message group waits while one of its messages is in flight: these come back at once
        await drain(client, fifo.url, sqs, handler, 2, visibility=0)
        state["fail"] = False
        assert await client.redrive_message_cluster(key) == 1
        records = await drain(client, fifo.url, sqs, handler, 1)  # not dropped as a duplicate
        ended = await client.get_message_cluster(key, consistent_read=True)
    assert json.loads(records[0]["body"])["task"] == "b"
    assert (ended.status, ended.completed) == (Status.COMPLETE, 2)
