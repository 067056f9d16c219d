"""Read every completed task's result, in index order, without loading them all at once."""

from __future__ import annotations

from typing import Any

from sqs_cluster import MessageClient, RecordKey


async def total_hours(client: MessageClient, key: RecordKey) -> float:
    """Sum what the handlers returned (``{"hours": ...}``) over the completed tasks."""
    total = 0.0
    async for outcome in client.iter_results(key):  # 100 records a request
        if outcome.result is not None:  # a handler that returned nothing has no result
            total += outcome.result["hours"]
    return total


async def results_by_customer(client: MessageClient, key: RecordKey) -> dict[str, Any]:
    """The task (as given, when small) beside its result."""
    return {task["customer"]: result async for _, task, result in client.iter_results(key)}
