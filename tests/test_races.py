"""Races on the local server (every write atomic, as on AWS): conditional writes decide,
exactly one caller wins.

Several clients (each with its own connections) do the same thing at once; the outcome must
be the one a single caller would get, with exactly one winner where one is expected.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiobotocore.session import AioSession, get_session

from sqs_cluster import (
    ClaimOutcome,
    ClusterRecord,
    ClusterSendError,
    Config,
    MessageClient,
    MessageInProgressError,
    Status,
)
from sqs_cluster._clusters.fanout_lease import FanoutLease
from sqs_cluster._clusters.model import cluster_key, progress_key
from sqs_cluster.testing import clients_of

from .conftest import Queue, make_queue, receive_event, unique

WORKERS = 4


@pytest.fixture(scope="module")
def session() -> AioSession:
    return get_session()


@pytest.fixture(scope="module")
async def clients(base_config: Config, session: AioSession) -> AsyncIterator[list[MessageClient]]:
    """Independent clients, as separate workers would have; lease 1 s for the takeover race."""
    config = base_config.with_changes(lease_seconds=1)
    opened = [MessageClient(config, session=session) for _ in range(WORKERS)]
    for client in opened:
        await client.__aenter__()
    try:
        yield opened
    finally:
        for client in opened:
            await client.aclose()


def deliveries(record: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """The same message delivered ``n`` times (each delivery has its own receipt handle)."""
    out = []
    for i in range(n):
        copy_ = copy.deepcopy(record)
        copy_["receiptHandle"] = f"{record['receiptHandle']}-delivery-{i}"
        out.append(copy_)
    return out


async def test_concurrent_claims_of_one_message_exactly_one_wins(
    clients: list[MessageClient], queue: Queue, sqs: Any
) -> None:
    await clients[0].send_message(queue.url, {"job": 1})
    (record,) = receive_event(sqs, queue.url)["Records"]
    copies = deliveries(record, 12)

    async def claim_all() -> Counter[ClaimOutcome]:
        claims = await asyncio.gather(
            *(clients[i % WORKERS].claim(r) for i, r in enumerate(copies))
        )
        return Counter(c.outcome for c in claims)

    assert await claim_all() == {ClaimOutcome.CLAIMED: 1, ClaimOutcome.IN_PROGRESS: 11}
    await asyncio.sleep(1.1)  # the winner died: its lease runs out, exactly one takes over
    assert await claim_all() == {ClaimOutcome.CLAIMED: 1, ClaimOutcome.IN_PROGRESS: 11}
    assert await clients[0].mark_complete(copies[0]) is True
    assert await claim_all() == {ClaimOutcome.COMPLETE: 12}
    record_ = await clients[1].get_message_record(clients[1].read_sqs_record(record).key, True)
    assert record_.status is Status.COMPLETE and record_.consumption_count == 2


async def test_concurrent_is_complete_lets_one_delivery_through(
    clients: list[MessageClient], queue: Queue, sqs: Any
) -> None:
    await clients[0].send_message(queue.url, "x")
    (record,) = receive_event(sqs, queue.url)["Records"]
    results = await asyncio.gather(
        *(clients[i % WORKERS].is_complete(r) for i, r in enumerate(deliveries(record, 8))),
        return_exceptions=True,
    )
    assert results.count(False) == 1
    assert all(isinstance(r, MessageInProgressError) for r in results if r is not False)


async def test_concurrent_completion_of_the_last_tasks(
    clients: list[MessageClient], queue: Queue, sqs: Any
) -> None:
    key = await clients[0].create_message_cluster(queue.url, list(range(6)), omit_globals=True)
    records = receive_event(sqs, queue.url, max_messages=6)["Records"]
    assert len(records) == 6
    for record in records[:3]:
        assert await clients[0].is_complete(record) is False
        assert await clients[0].mark_complete(record) is True
    callbacks: list[int] = []

    async def callback(cluster: ClusterRecord[Any, Any], get_globals: Any) -> None:
        callbacks.append(cluster.completed)

    last = [d for r in records[3:] for d in deliveries(r, 3)]  # each last task, delivered 3x
    responses = await asyncio.gather(
        *(
            clients[i % WORKERS].safe_process_batch(
                {"Records": [r]}, lambda m: None, on_cluster_complete=callback
            )
            for i, r in enumerate(last)
        )
    )
    failed = sum(len(r["batchItemFailures"]) for r in responses)
    assert failed <= 6  # duplicates seen while their twin held the lease come back later
    for record in last:  # redeliveries after the fact: nothing counts twice
        await clients[1].safe_process_batch(
            {"Records": [record]}, lambda m: None, on_cluster_complete=callback
        )
    assert callbacks == [6]
    cluster = await clients[2].get_message_cluster(key, consistent_read=True)
    assert (cluster.completed, cluster.failed, cluster.status) == (6, 0, Status.COMPLETE)
    assert cluster.callback_state == "DONE" and cluster.callback_attempts == 1


async def test_concurrent_mark_complete_of_one_task_counts_once(
    clients: list[MessageClient], queue: Queue, sqs: Any
) -> None:
    key = await clients[0].create_message_cluster(queue.url, [1, 2], omit_globals=True)
    first, _ = receive_event(sqs, queue.url)["Records"]
    assert await clients[0].is_complete(first) is False
    results = await asyncio.gather(*(c.mark_complete(first) for c in clients for _ in range(2)))
    assert results.count(True) == 1
    cluster = await clients[0].get_message_cluster(key, consistent_read=True)
    assert (cluster.completed, cluster.status) == (1, Status.IN_PROGRESS)


async def test_concurrent_globals_updates_from_many_clients(
    clients: list[MessageClient], queue: Queue
) -> None:
    key = await clients[0].create_message_cluster(queue.url, [1], globals={"entries": []})

    async def add(client: MessageClient, n: int) -> None:
        await client.update_message_cluster_globals(key, lambda g: {"entries": [*g["entries"], n]})

    await asyncio.gather(*(add(clients[n % WORKERS], n) for n in range(20)))
    entries = (await clients[0].get_message_cluster_globals(key))["entries"]
    assert sorted(entries) == list(range(20))


async def test_concurrent_record_updates_lose_nothing(
    clients: list[MessageClient], queue: Queue
) -> None:
    key = await clients[0].send_message(queue.url, "x", meta={"n": 0})

    async def bump(client: MessageClient) -> None:
        await client.update_message_record(key, lambda r: {"meta": {"n": (r.meta or {})["n"] + 1}})

    await asyncio.gather(*(bump(clients[i % WORKERS]) for i in range(12)))
    record = await clients[0].get_message_record(key, consistent_read=True)
    assert record.meta == {"n": 12} and record.revision == 12


async def test_a_create_retried_while_the_first_still_runs_sends_each_task_once(
    clients: list[MessageClient], base_config: Config, sqs: Any
) -> None:
    """The first create has written its task records and is about to send them when the
    caller (say, after a timeout) calls create again with the same id."""
    queue = await make_queue(base_config)
    tasks = [{"i": i} for i in range(40)]  # one unit: every record is written before any send
    gate, reached = asyncio.Event(), asyncio.Event()

    async def hold(**_: Any) -> None:
        reached.set()
        await gate.wait()

    cluster_id = unique("raced")
    first_sqs = clients_of(clients[0])["sqs"]
    first_sqs.meta.events.register("before-send.sqs.SendMessageBatch", hold, unique_id="gate")
    first = asyncio.ensure_future(
        clients[0].create_message_cluster(
            queue.url, tasks, cluster_id=cluster_id, omit_globals=True
        )
    )
    try:
        await asyncio.wait_for(reached.wait(), timeout=30)
        await clients[1].create_message_cluster(
            queue.url, tasks, cluster_id=cluster_id, omit_globals=True
        )
    finally:
        gate.set()  # the first create always finishes: no task is left pending
        first_sqs.meta.events.unregister("before-send.sqs.SendMessageBatch", unique_id="gate")
        await first
    indexes = Counter(
        json.loads(r["body"])["index"]
        for r in receive_event(sqs, queue.url, max_messages=100)["Records"]
    )
    assert sorted(indexes) == list(range(40))
    assert set(indexes.values()) == {1}, f"tasks sent twice: {sorted(indexes.elements())}"


async def test_a_create_after_a_crashed_create_takes_over_once_its_lease_expires(
    clients: list[MessageClient], base_config: Config, sqs: Any
) -> None:
    """A create that died left its fan-out lease behind: the next create waits for it to
    expire (at most one lease length), then sends every task once."""
    queue = await make_queue(base_config)
    tasks = [{"i": i} for i in range(60)]
    cluster_id = unique("crashed")
    key = cluster_key(cluster_id, queue.url)
    dead = FanoutLease(clients[0]._aws, progress_key(key))
    assert await dead.acquire() == {}
    assert dead._beat is not None
    dead._beat.cancel()  # the process died: nobody renews or releases the lease
    started = time.monotonic()
    await clients[1].create_message_cluster(
        queue.url, tasks, cluster_id=cluster_id, omit_globals=True
    )
    assert time.monotonic() - started >= 0.5  # it waited for the lease
    indexes = Counter(
        json.loads(r["body"])["index"]
        for r in receive_event(sqs, queue.url, max_messages=100)["Records"]
    )
    assert indexes == Counter(range(60))


async def test_a_create_whose_lease_was_taken_stops_sending(
    clients: list[MessageClient], base_config: Config, sqs: Any, session: AioSession
) -> None:
    """Once another create holds the lease, the first sends nothing more: its error names the
    tasks it did not send, and a later resume sends exactly those."""
    queue = await make_queue(base_config)
    tasks = [{"i": i} for i in range(150)]  # three units, run one at a time below
    cluster_id = unique("taken")
    progress = progress_key(cluster_key(cluster_id, queue.url))
    ddb = clients[1]._aws.ddb
    stolen: list[bool] = []

    async def set_lease(owner: str, until_ms: int) -> None:
        await ddb.update_item(
            TableName=base_config.table,
            Key={"pKey": {"S": progress.p_key}, "rKey": {"S": progress.r_key}},
            UpdateExpression="SET leaseOwner = :o, leaseUntilMs = :u",
            ExpressionAttributeValues={":o": {"S": owner}, ":u": {"N": str(until_ms)}},
        )

    async def steal(**_: Any) -> None:
        if not stolen:
            stolen.append(True)
            await set_lease("another-create", int(time.time() * 1000) + 60_000)
            await asyncio.sleep(0.8)  # the first create's heartbeat finds its lease gone

    config = base_config.with_changes(lease_seconds=1, max_concurrency=2)
    async with MessageClient(config, session=session) as first:
        first_sqs = clients_of(first)["sqs"]
        first_sqs.meta.events.register("before-send.sqs.SendMessageBatch", steal)
        with pytest.raises(ClusterSendError) as info:
            await first.create_message_cluster(
                queue.url, tasks, cluster_id=cluster_id, omit_globals=True
            )
    error = info.value
    assert (error.sent, sorted(error.failed)) == (50, list(range(50, 150)))
    assert "took over" in str(error) and error.uncertain == []
    await set_lease("another-create", 0)  # the other create ended without sending anything
    await clients[2].create_message_cluster(
        queue.url, tasks, cluster_id=cluster_id, omit_globals=True
    )
    indexes = Counter(
        json.loads(r["body"])["index"]
        for r in receive_event(sqs, queue.url, max_messages=200)["Records"]
    )
    assert indexes == Counter(range(150))
