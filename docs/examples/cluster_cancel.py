"""Cancel a cluster: what has not started does not run, and the completion can tell."""

from __future__ import annotations

from typing import Any

from sqs_cluster import ClusterRecord, MessageClient, RecordKey, Status


async def stop_run(client: MessageClient, key: RecordKey) -> ClusterRecord[Any, Any]:
    """Cancel, then report: running tasks finish, the others are counted cancelled."""
    cluster = await client.cancel_message_cluster(key, reason="the input file was wrong")
    print(f"{cluster.completed} done, {cluster.cancelled} cancelled, {cluster.in_progress} running")
    return cluster


async def on_end(cluster: ClusterRecord[Any, Any], get_globals: Any) -> None:
    """A completion (bound or on_cluster_complete) runs once for a cancelled cluster too."""
    if cluster.status is Status.STOPPED:
        print(f"cancelled ({cluster.cancel_reason}) after {cluster.completed} tasks")
