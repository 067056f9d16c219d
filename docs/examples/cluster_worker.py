"""Process one task without ``safe_process_batch``, and fan in with ``on_cluster_complete``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqs_cluster import ClusterCallback, MessageClient, MessageInProgressError


def work(task: Any) -> None:
    """The work itself."""
    if task["hours"] < 0:
        raise ValueError(f"{task['customer']}: negative hours")


async def handle_task(
    client: MessageClient, record: Mapping[str, Any], on_done: ClusterCallback
) -> str:
    """Process one Lambda SQS record of a task; says what happened."""
    message = client.read_sqs_record(record)
    cluster = message.cluster_key
    if cluster is None:
        raise ValueError(f"message {message.message_id} is not a task of a cluster")
    try:
        if await client.is_complete(record):  # claims the task unless it is complete
            await client.on_cluster_complete(cluster, on_done)  # crash recovery
            return "already complete"
    except MessageInProgressError:
        return "in progress elsewhere"
    try:
        work(message.task)
    except Exception as exc:
        await client.mark_failed(record, exc)  # on the last allowed receive: counted as failed
        await client.on_cluster_complete(cluster, on_done)  # it may have been last
        raise
    await client.mark_complete(record)  # completes the task and counts it, exactly once
    if await client.on_cluster_complete(cluster, on_done):
        return "processed; callback ran"
    return "processed"
