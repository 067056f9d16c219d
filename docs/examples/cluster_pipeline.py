"""A two-stage map-reduce: the first cluster's completion fans out the second over its
results (Celery's chain of chords), exactly once per stage."""

from __future__ import annotations

from typing import Any

from sqs_cluster import ClusterRecord, MessageClient, ReceivedMessage, RecordKey

TOTALS: dict[str, int] = {}
"""Where the last stage reports (a real pipeline would write it somewhere durable)."""


async def start(client: MessageClient, queue_url: str, numbers: list[int]) -> RecordKey:
    """Stage one: square every number."""
    return await client.create_message_cluster(
        queue_url,
        [{"square": n} for n in numbers],
        omit_globals=True,
        on_complete="docs.examples.cluster_pipeline:reduce_squares",
    )


def handle(message: ReceivedMessage[Any]) -> int:
    """One handler for both stages: a task's return value is its result."""
    task = message.task
    if "square" in task:
        return int(task["square"]) ** 2
    return sum(task["add"])


async def reduce_squares(cluster: ClusterRecord[Any, Any], get_globals: Any) -> None:
    """Stage one ended: sum its results in chunks of 10, as stage two.

    The id of stage two is derived from stage one's, so if this completion ran twice (its
    runner died after creating), the second create resumes the first instead of doubling it.
    """
    client: MessageClient = cluster.client
    squares = [result async for _, _, result in client.iter_results(cluster.key)]
    chunks = [squares[i : i + 10] for i in range(0, len(squares), 10)]
    await client.create_message_cluster(
        cluster.url,
        [{"add": chunk} for chunk in chunks],
        omit_globals=True,
        cluster_id=f"{cluster.id}-sum",
        meta={"stage": 2, "of": cluster.id},
        on_complete="docs.examples.cluster_pipeline:report",
    )


async def report(cluster: ClusterRecord[Any, Any], get_globals: Any) -> None:
    """Stage two ended: the total of all squares."""
    client: MessageClient = cluster.client
    total = sum([result async for _, _, result in client.iter_results(cluster.key)])
    TOTALS[(cluster.meta or {})["of"]] = total
