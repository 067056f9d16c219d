"""A completion bound to the cluster when it is created, and waiting for the end."""

from __future__ import annotations

from typing import Any

from sqs_cluster import ClusterRecord, CompletionQueue, MessageClient, RecordKey


async def invoices_done(cluster: ClusterRecord[Any, Any], get_globals: Any) -> None:
    """Runs once, in whichever consumer ends the cluster: it is named on the cluster record."""
    print(f"run {cluster.id}: {cluster.completed} invoices, {cluster.failed} failed")


async def start(client: MessageClient, queue_url: str, done_queue_url: str) -> list[RecordKey]:
    """Two ways to bind the completion: a function by import path, or a queue."""
    by_function = await client.create_message_cluster(
        queue_url,
        [{"customer": "c1"}, {"customer": "c2"}],
        omit_globals=True,
        on_complete="docs.examples.cluster_bound:invoices_done",  # imported here first
    )
    by_queue = await client.create_message_cluster(
        queue_url,
        [{"customer": "c3"}],
        omit_globals=True,
        on_complete=CompletionQueue(done_queue_url),  # one summary message when it ends
    )
    return [by_function, by_queue]


async def wait(client: MessageClient, key: RecordKey) -> ClusterRecord[Any, Any]:
    """Block until the cluster ended (one small read per poll); TimeoutError after 10 min."""
    return await client.wait_for_message_cluster(
        key,
        timeout=600,
        poll_seconds=2,
        progress=lambda c: print(f"{c.completed + c.failed}/{c.total}"),  # reads the counts
    )
