"""What the dashboard shows, as JSON-ready dicts: read through the client and the AWS layer
(``_clusters.read``, ``_aws.sqs``), never by calling AWS here."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from typing import Any

from .._aws.sqs import dead_letter_url, queue_depth
from .._client.client import MessageClient
from .._clusters.model import ClusterRecord
from .._clusters.read import coerce_cluster_key, recent_cluster_keys
from .._errors import RecordNotFoundError, SQSClusterError
from .._records.model import KEY_PREFIX, ErrorEntry, MessageRecord, Status

PAGE_SIZE = 25
"""Clusters on the home page, and failed tasks on a cluster's page."""


def _seconds_since(stamp: str | None, now: float) -> float | None:
    if not stamp:
        return None
    try:
        return max(0.0, now - datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None


def cluster_row(cluster: ClusterRecord[Any, Any], now: float | None = None) -> dict[str, Any]:
    """One cluster's line: status, counts, throughput (tasks counted a second since it
    started, until it ended) and age in seconds."""
    now = time.time() if now is None else now
    age = _seconds_since(cluster.started_at, now)
    ended = _seconds_since(cluster.completed_at, now) if cluster.is_finished else None
    counted = cluster.completed + cluster.failed + cluster.cancelled
    running = None if age is None else age - (ended or 0.0)
    return {
        "id": cluster.id,
        "key": cluster.key.p_key,
        "status": cluster.status.value,
        "total": cluster.total,
        "sent": cluster.sent,
        "completed": cluster.completed,
        "failed": cluster.failed,
        "cancelled": cluster.cancelled,
        "outstanding": cluster.in_progress,
        "throughput": round(counted / running, 2) if running else None,
        "age": None if age is None else round(age),
        "startedAt": cluster.started_at,
        "finished": cluster.is_finished,
    }


async def recent_clusters(
    client: MessageClient, limit: int = PAGE_SIZE, before: str | None = None
) -> dict[str, Any]:
    """The newest ``limit`` clusters (before the sort key ``before``), from the index ``gsi1``
    and one partition read each; ``next`` is the cursor of the following page, or None."""
    keys = await recent_cluster_keys(client._aws, limit, before)
    clusters = await asyncio.gather(*(_read_or_none(client, key.p_key) for key, _ in keys))
    rows = [cluster_row(c) for c in clusters if c is not None]
    more = len(keys) == limit
    return {"clusters": rows, "next": keys[-1][1] if more and keys else None}


async def _read_or_none(client: MessageClient, p_key: str) -> ClusterRecord[Any, Any] | None:
    try:
        return await client.get_message_cluster(p_key)
    except RecordNotFoundError:  # expired (TTL) between the index and the read
        return None


def cluster_key_of(text: str) -> str:
    """A cluster's ``pKey`` from its id or ``pKey`` (ValidationError outside the key space)."""
    key = text if text.startswith(KEY_PREFIX) else KEY_PREFIX + text
    return coerce_cluster_key(key).p_key


def _error(entry: ErrorEntry) -> dict[str, Any]:
    return {"type": entry.type, "message": entry.message, "at": entry.at}


def _meta_text(meta: Any) -> str | None:
    return None if meta is None else json.dumps(meta, indent=1, sort_keys=True, default=str)


async def cluster_detail(client: MessageClient, key: str) -> dict[str, Any]:
    """The cluster's line, meta, errors, results location and its queues' depths."""
    cluster = await client.get_message_cluster(cluster_key_of(key), consistent_read=True)
    detail = cluster_row(cluster)
    detail.update(
        meta=_meta_text(cluster.meta),
        queue=cluster.url,
        errors=[_error(e) for e in cluster.errors],
        cancelReason=cluster.cancel_reason,
        cancelledAt=cluster.cancelled_at,
        completedAt=cluster.completed_at,
        redrives=cluster.redrives,
        toleratedFailures=cluster.tolerated_failures,
        results=dict(cluster.results_location) if cluster.results_location else None,
        queues=await _queues(client, cluster.url),
    )
    return detail


async def _queues(client: MessageClient, url: str) -> dict[str, Any]:
    try:
        dlq = await dead_letter_url(client._aws, url)
        depths = await asyncio.gather(
            queue_depth(client._aws, url), *([queue_depth(client._aws, dlq)] if dlq else [])
        )
    except SQSClusterError as exc:
        return {"error": str(exc)}
    return {
        "queue": {"url": url, **depths[0]},
        "deadLetters": {"url": dlq, **depths[1]} if dlq else None,
    }


def _task(record: MessageRecord[Any]) -> dict[str, Any]:
    return {
        "index": record.task_index,
        "receives": record.consumption_count,
        "errors": [_error(e) for e in record.errors],
        "updatedAt": record.updated_at,
    }


async def failed_tasks(
    client: MessageClient, key: str, offset: int = 0, limit: int = PAGE_SIZE
) -> dict[str, Any]:
    """Failed tasks ``offset`` to ``offset + limit`` in index order with their recorded errors
    (task records read 100 at a time: a page deep in a large cluster reads the ones before it)."""
    cluster = await client.get_message_cluster(cluster_key_of(key), consistent_read=True)
    tasks: list[dict[str, Any]] = []
    seen = 0
    async for record in client.iter_tasks(cluster, status=Status.ERROR):
        if seen >= offset + limit:
            return {"tasks": tasks, "offset": offset, "next": offset + limit}
        if seen >= offset:
            tasks.append(_task(record))
        seen += 1
    return {"tasks": tasks, "offset": offset, "next": None}
