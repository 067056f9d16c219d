"""Redrive a cluster: only the tasks that failed (or were cancelled) run again."""

from __future__ import annotations

from typing import Any

from sqs_cluster import ClusterRecord, MessageClient, RecordKey


async def retry_failures(client: MessageClient, key: RecordKey, tasks: list[Any]) -> int:
    """After fixing what made tasks fail: send those tasks again, and only those."""
    cluster = await client.get_message_cluster(key)
    if cluster.failed == 0 and cluster.cancelled == 0:
        return 0
    # tasks= is needed only for cancelled tasks and tasks above Config.record_body_bytes
    sent = await client.redrive_message_cluster(key, tasks=tasks)
    print(f"redrive: {sent} tasks sent again")
    return sent


async def on_end(cluster: ClusterRecord[Any, Any], get_globals: Any) -> None:
    """The completion runs once per end: the first run's, then each redrive's."""
    run = f"redrive {cluster.redrives}" if cluster.redrives else "first run"
    print(f"{run}: {cluster.status.value}, {cluster.completed} of {cluster.total} completed")
