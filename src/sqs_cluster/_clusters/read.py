"""Reading clusters: the cluster partition in one Query, and task records page by page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from .._aws.clients import AWS
from .._aws.provision import (
    CLUSTERS_INDEX,
    CLUSTERS_INDEX_PK,
    CLUSTERS_INDEX_SK,
    CLUSTERS_PARTITION,
)
from .._errors import RecordNotFoundError
from .._records.codec import from_item
from .._records.model import STATUS_CODES, MessageRecord, RecordKey, Status, check_key_space
from .._records.store import (
    BATCH_GET_LIMIT,
    batch_get_raw,
    get_raw,
    get_records,
    query_index_page,
    query_partition,
)
from .model import (
    COUNTER_PREFIX,
    FINISHED,
    ClusterRecord,
    cluster_from_items,
    counter_key,
    task_key,
)
from .shards import shard_key


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
    """The cluster item, its top counter and its progress in one Query, then its counter
    shards (each in a partition of its own) in one BatchGetItem: exact counts."""
    items = await read_cluster_items(aws, key, consistent_read)
    return cluster_from_items(items + await read_shards(aws, items, consistent_read), key)


async def read_shards(
    aws: AWS, items: list[dict[str, Any]], consistent_read: bool = True
) -> list[dict[str, Any]]:
    """The counter shards named by the cluster's top counter among ``items``, deserialised."""
    top = next((i for i in items if i["rKey"].startswith(COUNTER_PREFIX)), None)
    if top is None or not top.get("shards"):
        return []
    return await shard_items(aws, RecordKey(top["pKey"], ""), int(top["shards"]), consistent_read)


async def shard_items(
    aws: AWS, cluster: RecordKey, shards: int, consistent_read: bool = True
) -> list[dict[str, Any]]:
    """Counter shards ``0 .. shards - 1`` of ``cluster`` (one BatchGetItem), deserialised, in
    any order."""
    keys = [shard_key(cluster, shard) for shard in range(shards)]
    raw = await batch_get_raw(aws, keys, consistent_read=consistent_read)
    return [from_item(i) for i in raw]


async def read_cluster_items(
    aws: AWS, key: RecordKey, consistent_read: bool = False
) -> list[dict[str, Any]]:
    """Every item of the cluster's partition, deserialised (RecordNotFoundError if none)."""
    raw = await query_partition(aws, key.p_key, consistent_read=consistent_read)
    items = [from_item(i) for i in raw]
    if not items:
        raise RecordNotFoundError(key)
    return items


async def shards_left(aws: AWS, key: RecordKey) -> int:
    """How many counter shards of the cluster still have room (0 once every task was
    counted), from its small top counter, read strongly consistent; RecordNotFoundError when
    the cluster is gone."""
    raw = await get_raw(aws, counter_key(key), consistent_read=True, projection="shardsLeft")
    if raw is None:
        raise RecordNotFoundError(key)
    return int(from_item(raw).get("shardsLeft", 0))


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


async def cluster_ended(aws: AWS, key: RecordKey) -> bool:
    """Whether the cluster ended, from its own item's status code only (one small GetItem,
    no counts); a key given as just the ``pKey`` reads the partition instead."""
    if not key.r_key:
        return (await read_cluster(aws, key, consistent_read=True)).is_finished
    item = await get_raw(aws, key, consistent_read=True, projection="statusCode")
    if item is None:
        raise RecordNotFoundError(key)
    code = int(item.get("statusCode", {}).get("N", "0"))
    return code in {int(STATUS_CODES[status]) for status in FINISHED}


async def recent_cluster_keys(
    aws: AWS, limit: int, before: str | None = None
) -> list[tuple[RecordKey, str]]:
    """The keys of up to ``limit`` clusters, newest first, from the sparse index ``gsi1`` (one
    Query, no Scan), each with its sort key ``<startedAt>#<id>``: pass the last one as
    ``before`` for the next page."""
    condition = f"{CLUSTERS_INDEX_PK} = :p"
    values: dict[str, Any] = {":p": {"S": CLUSTERS_PARTITION}}
    if before is not None:
        condition += f" AND {CLUSTERS_INDEX_SK} < :before"
        values[":before"] = {"S": before}
    items = await query_index_page(aws, CLUSTERS_INDEX, condition, values, limit)
    return [(RecordKey(i["pKey"]["S"], i["rKey"]["S"]), i[CLUSTERS_INDEX_SK]["S"]) for i in items]
