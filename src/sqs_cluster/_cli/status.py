"""Cluster progress on the terminal: a rich progress bar fed by the cluster's counters."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from .._client.client import MessageClient
from .._clusters.model import ClusterRecord
from .._errors import SQSClusterError


def _describe(cluster: ClusterRecord[Any, Any], rate: float | None) -> str:
    speed = f" · {rate:,.0f} tasks/s" if rate else ""
    return (
        f"[green]{cluster.completed} done[/] [red]{cluster.failed} failed[/] "
        f"{cluster.in_progress} left · {cluster.status.value}{speed}"
    )


async def watch_cluster(
    client: MessageClient,
    key: Any,
    *,
    console: Any = None,
    interval: float = 1.0,
    watch: bool = True,
    stall_seconds: float | None = None,
) -> ClusterRecord[Any, Any]:
    """Show a cluster's progress (completed, failed, left, rate, ETA) until it ends.

    With ``watch=False`` it prints the current state once and returns. With ``stall_seconds``,
    it raises SQSClusterError once nothing new was counted for that long.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    cluster = await client.get_message_cluster(key, consistent_read=True)
    columns = (
        TextColumn("[bold]{task.fields[name]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(
            "cluster", total=cluster.total, name=cluster.id[:12], detail=_describe(cluster, None)
        )
        counted, since = -1, time.monotonic()
        while True:
            bar.update(
                task,
                completed=cluster.completed + cluster.failed,
                detail=_describe(cluster, bar.tasks[0].speed),
            )
            if cluster.is_finished or not watch:
                return cluster
            if cluster.completed + cluster.failed != counted:
                counted, since = cluster.completed + cluster.failed, time.monotonic()
            elif stall_seconds is not None and time.monotonic() - since > stall_seconds:
                raise SQSClusterError(
                    f"no progress for {stall_seconds:.0f} s, stuck at {counted} of "
                    f"{cluster.total} tasks counted (status {cluster.status.value})"
                )
            await asyncio.sleep(interval)
            cluster = await client.get_message_cluster(key, consistent_read=True)
