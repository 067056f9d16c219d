"""Edges of the send pipeline: refused entries, lost progress answers, resumes after a stop."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import pytest

from sqs_cluster import (
    ClusterRecord,
    ClusterSendError,
    Config,
    MessageClient,
    PartialSendError,
    RecordKey,
    Status,
)
from sqs_cluster.testing import FaultInjector, FaultKind

from .conftest import Queue, make_queue, unique
from .drain import drain_queue
from .faults import FaultyClient, Interceptor, always_fail_entry

pytestmark = pytest.mark.asyncio


def refuse_and_fail_once(refused: str, retried: str) -> Interceptor:
    """SendMessageBatch, first call with both Ids: ``refused`` gets ``SenderFault: true`` (for
    good), ``retried`` a retryable failure; neither is sent. Later calls pass through."""
    state = {"done": False}

    async def interceptor(call: Callable[..., Awaitable[Any]], kwargs: dict[str, Any]) -> Any:
        ids = {e["Id"] for e in kwargs["Entries"]}
        if state["done"] or not {refused, retried} <= ids:
            return await call(**kwargs)
        state["done"] = True
        keep = [e for e in kwargs["Entries"] if e["Id"] not in {refused, retried}]
        resp = await call(**{**kwargs, "Entries": keep}) if keep else {"Successful": []}
        failed = [
            {"Id": refused, "SenderFault": True, "Code": "InvalidParameterValue", "Message": "no"},
            {"Id": retried, "SenderFault": False, "Code": "InternalError", "Message": "later"},
        ]
        return {**resp, "Failed": list(resp.get("Failed", [])) + failed}

    return interceptor


async def depth(client: MessageClient, url: str) -> int:
    resp = await client._aws.sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )
    attrs = resp["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


class Callbacks:
    def __init__(self) -> None:
        self.clusters: list[ClusterRecord[Any, Any]] = []

    async def __call__(self, cluster: ClusterRecord[Any, Any], get_globals: Any) -> None:
        self.clusters.append(cluster)


# -- 1. entries refused for good stay failed --------------------------------------------------


async def test_batch_entry_refused_for_good_is_reported_and_resent(
    base_config: Config, queue: Queue, real: dict[str, Any]
) -> None:
    fsqs = FaultyClient(real["sqs"], send_message_batch=refuse_and_fail_once("3", "4"))
    async with MessageClient(base_config, clients={**real, "sqs": fsqs}) as c:
        with pytest.raises(PartialSendError) as info:
            await c.send_message_batch(queue.url, list(range(20)))
        error = info.value
        assert error.failed_indexes == [3]  # 4 was retried and sent; 3 was refused for good
        assert "InvalidParameterValue" in error.failed[3]
        assert sorted(error.sent) == [i for i in range(20) if i != 3]
        assert await depth(c, queue.url) == 19
        keys = await c.resend_unsent(error)
        assert len(keys) == 20 and await depth(c, queue.url) == 20


async def test_cluster_task_refused_for_good_is_resent_by_a_resume(
    base_config: Config, queue: Queue, real: dict[str, Any]
) -> None:
    fsqs = FaultyClient(real["sqs"], send_message_batch=refuse_and_fail_once("3", "4"))
    cluster_id = unique("refused")
    tasks = [{"i": i} for i in range(20)]
    async with MessageClient(base_config, clients={**real, "sqs": fsqs}) as c:
        with pytest.raises(ClusterSendError) as info:
            await c.create_message_cluster(
                queue.url, tasks, omit_globals=True, cluster_id=cluster_id
            )
        error = info.value
        assert sorted(error.failed) == [3] and error.sent == 19
        assert await depth(c, queue.url) == 19
        key = await c.create_message_cluster(
            queue.url, tasks, omit_globals=True, cluster_id=cluster_id
        )
        assert await depth(c, queue.url) == 20  # the refused task, and only it
        callbacks = Callbacks()
        await drain_queue(c, queue.url, lambda m: None, on_cluster_complete=callbacks)
        (done,) = callbacks.clusters
        assert done.key == key and done.status is Status.COMPLETE and done.completed == 20


# -- 2. a progress write whose answer was lost counts once ----------------------------------


def is_progress_add(service: str, operation: str, params: Mapping[str, Any]) -> bool:
    """The fan-out's progress UpdateItem (an ADD to ``sentCount``)."""
    expression = params.get("UpdateExpression", "")
    return "ADD" in expression and "sentCount" in json.dumps(params)


async def test_progress_retried_after_a_lost_answer_never_overcounts(
    base_config: Config, queue: Queue, real: dict[str, Any]
) -> None:
    """Task 119 is refused for good, so the fan-out stops before it could SET the count to the
    total; the first progress ADD ran twice (its answer was lost, botocore retried it)."""
    fsqs = FaultyClient(real["sqs"], send_message_batch=always_fail_entry("119"))
    lose = FaultInjector(
        21, {FaultKind.READ_TIMEOUT: 1.0}, ["dynamodb.UpdateItem"], match=is_progress_add, limit=1
    )
    tasks = list(range(120))
    async with MessageClient(base_config, clients={**real, "sqs": fsqs}) as c:
        with lose.attached(c), pytest.raises(ClusterSendError) as info:
            await c.create_message_cluster(queue.url, tasks, omit_globals=True)
        assert lose.count(FaultKind.READ_TIMEOUT) == 1
        assert info.value.sent == 119 and sorted(info.value.failed) == [119]
        key = RecordKey.for_message(info.value.cluster_id, queue.url)
        cluster = await c.get_message_cluster(key, consistent_read=True)
        assert await depth(c, queue.url) == 119
        assert cluster.sent == 119  # before: 169, unit 0 counted twice


# -- 3. what a resume resends after the producer stopped mid-way ------------------------------


class Stopped(Exception):
    """The producer is gone: nothing it asks reaches AWS, no answer reaches it."""


class Stop:
    """Stops a producer at its ``after + 1``-th SendMessageBatch call: from then on every
    request of its clients fails before it is sent, and a request in flight lands but its
    answer is lost, as when the process is killed."""

    DDB = (
        "update_item",
        "put_item",
        "delete_item",
        "get_item",
        "batch_get_item",
        "batch_write_item",
        "transact_write_items",
        "query",
    )

    def __init__(self, after: int) -> None:
        self.after, self.sends, self.dead = after, 0, False

    async def guarded(self, call: Callable[..., Awaitable[Any]], kwargs: dict[str, Any]) -> Any:
        if self.dead:
            raise Stopped("the producer is gone")
        resp = await call(**kwargs)
        if self.dead:
            raise Stopped("the producer died while this request was in flight")
        return resp

    async def send(self, call: Callable[..., Awaitable[Any]], kwargs: dict[str, Any]) -> Any:
        self.sends += 1
        self.dead = self.dead or self.sends > self.after
        return await self.guarded(call, kwargs)

    def clients(self, real: dict[str, Any]) -> dict[str, Any]:
        sqs = FaultyClient(
            real["sqs"], send_message_batch=self.send, get_queue_attributes=self.guarded
        )
        ddb = FaultyClient(real["dynamodb"], **dict.fromkeys(self.DDB, self.guarded))
        return {**real, "sqs": sqs, "dynamodb": ddb}


async def resent_after_a_stop(
    config: Config, real: dict[str, Any], url: str, total: int, after: int
) -> int:
    """Tasks on the queue beyond ``total`` after a create stopped at its ``after + 1``-th
    SendMessageBatch call and a resume with the same id (nothing consumed in between)."""
    stop = Stop(after)
    cluster_id = unique("stopped")
    tasks = list(range(total))
    async with MessageClient(config, clients=stop.clients(real)) as c:
        with pytest.raises(ClusterSendError):
            await c.create_message_cluster(url, tasks, omit_globals=True, cluster_id=cluster_id)
    assert stop.dead
    async with MessageClient(config) as c:
        key = await c.create_message_cluster(url, tasks, omit_globals=True, cluster_id=cluster_id)
        assert (await c.get_message_cluster(key, consistent_read=True)).sent == total
        on_queue = await depth(c, url)
    assert on_queue >= total  # every task is on the queue
    return on_queue - total


@pytest.fixture
def stop_config(base_config: Config) -> Config:
    """One attempt per request (a dead producer retries nothing), a short fan-out lease."""
    return base_config.with_changes(partial_retry_attempts=1, max_attempts=1, lease_seconds=1)


async def test_a_resume_after_a_stop_resends_nothing_the_stopped_call_finished(
    stop_config: Config, queue: Queue, real: dict[str, Any]
) -> None:
    """One unit at a time (max_concurrency=2): the stop comes as unit 3 starts sending, and
    units 0-2 recorded their progress before it, so the resume sends units 3-5 once."""
    config = stop_config.with_changes(max_concurrency=2)
    assert await resent_after_a_stop(config, real, queue.url, total=300, after=15) == 0


async def test_a_resume_after_a_stop_resends_at_most_the_units_in_flight(
    stop_config: Config, queue: Queue, real: dict[str, Any]
) -> None:
    """Many units at once: only those in flight at the stop may be sent twice."""
    extra = await resent_after_a_stop(stop_config, real, queue.url, total=2000, after=100)
    print(f"standard queue: {extra} of 2000 tasks sent twice ({extra / 2000:.1%})")
    in_flight = stop_config.max_concurrency // 2  # units, of 50 tasks
    assert extra <= in_flight * 50


async def test_a_resume_after_a_stop_on_a_fifo_queue_sends_no_duplicate(
    stop_config: Config, real: dict[str, Any]
) -> None:
    fifo = await make_queue(stop_config, unique("q") + ".fifo")
    extra = await resent_after_a_stop(stop_config, real, fifo.url, total=2000, after=100)
    assert extra == 0  # SQS dropped each copy within its deduplication window
