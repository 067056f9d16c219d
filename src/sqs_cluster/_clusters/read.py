"""Reading clusters: the cluster partition in one Query, and task records page by page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from .._aws.clients import AWS
from .._errors import RecordNotFoundError
from .._records.codec import from_item
from .._records.model import MessageRecord, RecordKey, Status, check_key_space
from .._records.store import (
    BATCH_GET_LIMIT,
    batch_get_raw,
    get_raw,
    get_records,
    query_partition,
)
from .model import (
    COUNTER_SHARDS,
    ClusterRecord,
    cluster_from_items,
    counter_key,
    task_key,
)


def coerce_cluster_key(key: Any) -> RecordKey:
    """A cluster key from a RecordKey, a ``{"pKey", "rKey"}`` mapping, or just the ``pKey``.

    Raises ValidationError for anything else, or a key outside the library's key space.
    """
    if isinstance(key, str):
        check_key_space(key)
        return RecordKey(key, "")
    return RecordKey.coerce(key)


async def read_cluster(
    aws: AWS, key: RecordKey, *, consistent_read: bool = False
) -> ClusterRecord[Any, Any]:
    """The cluster item, its counter shards and its progress, in one Query."""
    return cluster_from_items(await read_cluster_items(aws, key, consistent_read), key)


async def read_cluster_items(
    aws: AWS, key: RecordKey, consistent_read: bool = False
) -> list[dict[str, Any]]:
    """Every item of the cluster's partition, deserialised (RecordNotFoundError if none)."""
    raw = await query_partition(aws, key.p_key, consistent_read=consistent_read)
    items = [from_item(i) for i in raw]
    if not items:
        raise RecordNotFoundError(key)
    return items


async def read_counts(aws: AWS, key: RecordKey) -> tuple[int, int, int] | None:
    """(total, completed, failed) from the counter shards alone, read strongly consistent.

    The shard keys are derivable, so this is one small GetItem (BatchGetItem once there are
    several shards). None when no shard carries the total (then read the whole cluster).
    """
    keys = [counter_key(key, shard) for shard in range(COUNTER_SHARDS)]
    if len(keys) == 1:
        raw = await get_raw(aws, keys[0], consistent_read=True)
        shards = [from_item(raw)] if raw else []
    else:
        shards = [from_item(i) for i in await batch_get_raw(aws, keys, consistent_read=True)]
    totals = [int(s["total"]) for s in shards if "total" in s]
    if not totals:
        return None
    completed = sum(int(s.get("completed", 0)) for s in shards)
    failed = sum(int(s.get("failed", 0)) for s in shards)
    return totals[0], completed, failed


async def iter_task_records(
    aws: AWS, cluster: ClusterRecord[Any, Any], status: Status | None = None
) -> AsyncIterator[MessageRecord[Any]]:
    """Task records in index order, 100 per strongly consistent BatchGetItem, by ``status``."""
    for start in range(0, cluster.total, BATCH_GET_LIMIT):
        stop = min(cluster.total, start + BATCH_GET_LIMIT)
        keys = [task_key(cluster.key, i) for i in range(start, stop)]
        for record in await get_records(aws, keys, consistent_read=True):
            if record is not None and (status is None or record.status is status):
                yield record
