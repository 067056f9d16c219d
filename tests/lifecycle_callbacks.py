"""Completion functions named by import path in tests/test_cluster_lifecycle.py."""

from __future__ import annotations

from typing import Any

ENDED: list[tuple[str, str, int]] = []
"""(cluster id, status, completed) of every call, in this process."""


async def record_end(cluster: Any, get_globals: Any) -> None:
    """Bound with ``on_complete="tests.lifecycle_callbacks:record_end"``."""
    ENDED.append((cluster.id, cluster.status.value, cluster.completed))


def record_end_sync(cluster: Any, get_globals: Any) -> None:
    """A sync one: runs in a worker thread."""
    ENDED.append((cluster.id, cluster.status.value, cluster.completed))


REDRIVEN: list[tuple[str, str, int, int, int]] = []
"""(cluster id, status, completed, failed, redrives) of every call, in this process."""


async def record_redrive(cluster: Any, get_globals: Any) -> None:
    """Bound with ``on_complete="tests.lifecycle_callbacks:record_redrive"``."""
    REDRIVEN.append(
        (cluster.id, cluster.status.value, cluster.completed, cluster.failed, cluster.redrives)
    )
