"""The Lambda function on the tasks' dead-letter queue: settles tasks whose worker died."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from sqs_cluster import ClusterRecord, Config, MessageClient, PartialBatchResponse

Report = Callable[[MessageClient, ClusterRecord[Any, Any], Callable[[], Awaitable[Any]]], Any]


async def settle(config: Config, event: dict[str, Any], report: Report) -> PartialBatchResponse:
    """The handler's body. ``report`` is the callback of the function that runs the tasks
    (``write_report``), so a cluster ended from here gets the same report, once."""
    async with MessageClient(config) as client:
        return await client.process_dead_letters(event, on_cluster_complete=partial(report, client))
