"""The Lambda function that processes a cluster's tasks and writes a report when all ended."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from sqs_cluster import (
    ClusterRecord,
    Config,
    MessageClient,
    PartialBatchResponse,
    ReceivedMessage,
    RecordKey,
    Status,
)


async def invoice(client: MessageClient, message: ReceivedMessage[Any]) -> None:
    """One task: price the hours and store the amount in the globals, under the task's index."""
    task = message.task  # the task as given to create_message_cluster
    assert message.cluster_key is not None  # a task always names its cluster
    if task["hours"] < 0:
        raise ValueError(f"{task['customer']}: negative hours")
    rate = (await message.get_globals())["rate"]  # S3 only; the cluster record is not read
    amount = task["hours"] * rate

    def add(globals_: dict[str, Any]) -> dict[str, Any]:  # re-applied if another task wins
        return {**globals_, "amounts": {**globals_["amounts"], str(message.task_index): amount}}

    await client.update_cluster_globals(message.cluster_key, add)


async def write_report(
    client: MessageClient,
    cluster: ClusterRecord[Any, Any],
    get_globals: Callable[[], Awaitable[Any]],
) -> None:
    """The callback: runs once, after every task completed or failed for good."""
    amounts = (await get_globals())["amounts"]
    failed = [t.task_index async for t in cluster.iter_tasks(status=Status.ERROR)]
    report = {"status": cluster.status.value, "sum": sum(amounts.values()), "failed": failed}
    await client.update_message_cluster(cluster.key, {"report": report})


async def process(config: Config, event: dict[str, Any]) -> PartialBatchResponse:
    """The handler's body: tasks run, and the batch that ends the cluster runs the callback."""
    async with MessageClient(config) as client:
        return await client.safe_process_batch(
            event, partial(invoice, client), on_cluster_complete=partial(write_report, client)
        )


async def finish(config: Config, key: RecordKey) -> bool:
    """For a scheduled check: end the cluster and run the callback if nobody did yet."""
    async with MessageClient(config) as client:
        return await client.on_cluster_complete(key, partial(write_report, client))
