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

from .conftest import Queue, unique
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
