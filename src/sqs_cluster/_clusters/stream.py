"""Clusters from a stream: tasks fanned out as they are read, the total fixed when it ends.

A task list, or a stream that ends within its first ``Config.stream_tasks_above`` tasks
(16,000: what fills the shards), is planned whole
(``plan.plan_cluster``). A longer stream is fanned out as it is read, with memory bounded by
the concurrency, never by the number of tasks:

* it counts into ``MAX_SHARDS`` shards (what a list of that size would use), whose room is
  ``OPEN_ROOM`` while the stream runs: no shard can fill, so the cluster cannot end, however
  fast consumers count what was sent;
* when the stream ends, and before its last unit is sent, ``seal`` writes the total and gives
  each shard its quota (what it counted, plus its share of what it has not) in one
  transaction: the quotas add up to the total, exactly as a list's do. As the last unit is
  not sent yet, at least one shard keeps room, so the consumer that counts the last task ends
  the cluster, as for a list;
* a resume reads the same stream again from its start, skipping what the progress item says
  was sent; a sealed cluster is not sealed again, and its total must match.
"""

from __future__ import annotations

from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from .._aws.clients import AWS
from .._aws.conditional import condition_failed, transact_reasons
from .._aws.retry import sleep_backoff
from .._errors import ConflictError, ValidationError
from .._records.codec import from_item, key_item, now_iso
from .._records.limits import MAX_SHARDS
from .._records.store import get_raw
from .model import counter_key, tolerated_count
from .read import shard_items
from .shards import shard_key

OPEN_ROOM = 10**15
"""A streaming cluster's shards' room until it is sealed: more than any cluster counts."""
READ_BATCH = 100
"""Tasks read from a stream at a time (a sync iterable's per worker-thread hop)."""
SEAL_ATTEMPTS = 40


class Window(Sequence[Any]):
    """Some of a cluster's tasks by index, in a sequence as long as ``read``: what
    ``prepare_task`` reads from a plan that never holds every task (a stream's tasks read and
    not yet prepared; a redrive's chunk)."""

    def __init__(self) -> None:
        self.values: dict[int, Any] = {}
        self.read = 0

    def __len__(self) -> int:
        return self.read

    def __getitem__(self, index: Any) -> Any:
        return self.values[index]


@dataclass
class TaskStream:
    """A stream of tasks longer than ``Config.stream_tasks_above``: the head already read,
    then the rest in batches; what was read so far is ``window.read``."""

    head: list[Any]
    rest: AsyncIterator[list[Any]]
    group_of: Callable[[Any], str] | None = None
    """A FIFO queue's ``message_group_id`` function, applied as tasks are read."""
    window: Window = field(default_factory=Window)
    groups: Window = field(default_factory=Window)

    async def batches(self) -> AsyncIterator[list[Any]]:
        """Every task, in order, a batch at a time (the head first)."""
        head, self.head = self.head, []
        yield head
        async for batch in self.rest:
            yield batch


def task_batches(tasks: Any) -> AsyncIterator[list[Any]] | None:
    """The tasks of an iterable or async iterable, ``READ_BATCH`` at a time; None for a list,
    a tuple, or anything that is not a stream of tasks."""
    if isinstance(tasks, (str, bytes, Mapping, Sequence)):
        return None
    if isinstance(tasks, AsyncIterable):
        return _async_batches(tasks.__aiter__())
    if isinstance(tasks, Iterable):
        return _thread_batches(iter(tasks))
    return None


async def read_tasks(tasks: Any, whole_up_to: int) -> Any:
    """A list or tuple as it is; a stream read whole when it ends within ``whole_up_to``
    tasks, else a TaskStream; anything else as it is, for ``plan_cluster`` to refuse."""
    rest = task_batches(tasks)
    if rest is None:
        return tasks
    head: list[Any] = []
    async for batch in rest:
        head.extend(batch)
        if len(head) > whole_up_to:
            return TaskStream(head, rest)
    return head


async def _async_batches(iterator: AsyncIterator[Any]) -> AsyncIterator[list[Any]]:
    batch: list[Any] = []
    async for task in iterator:
        batch.append(task)
        if len(batch) == READ_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


async def _thread_batches(iterator: Iterator[Any]) -> AsyncIterator[list[Any]]:
    """A sync iterable read in a worker thread (it may block, or be the blocking facade's own
    iterator, which needs this loop free to step), ``READ_BATCH`` tasks a hop."""
    import anyio.to_thread

    while True:
        batch = await anyio.to_thread.run_sync(lambda: list(islice(iterator, READ_BATCH)))
        if not batch:
            return
        yield batch


def open_shard_items(key: Any, expires: str) -> list[dict[str, Any]]:
    """A streaming cluster's shard items: ``OPEN_ROOM`` each until it is sealed."""
    items = []
    for shard in range(MAX_SHARDS):
        shard_item_key = shard_key(key, shard)
        items.append(
            {
                "pKey": {"S": shard_item_key.p_key},
                "rKey": {"S": shard_item_key.r_key},
                "room": {"N": str(OPEN_ROOM)},
                "completed": {"N": "0"},
                "failed": {"N": "0"},
                "expiresAt": {"N": expires},
            }
        )
    return items


async def sealed_total(aws: AWS, key: Any) -> int | None:
    """The total a streaming cluster was sealed with (None while its stream runs)."""
    item = from_item(await get_raw(aws, counter_key(key), consistent_read=True) or {})
    return None if item.get("total") is None else int(item["total"])


def _check_total(total: int, sealed: int | None) -> None:
    if sealed != total:
        raise ValidationError(
            "tasks", f"this stream has {total} tasks, but the cluster was sealed with {sealed}"
        )


def _quotas(total: int, counted: list[int]) -> list[int]:
    """Each shard's quota: what it counted, plus its share of what nobody counted yet."""
    left = total - sum(counted)
    if left < 1:
        raise ConflictError(
            f"sealing a stream of {total} tasks: its shards counted {sum(counted)}, but its "
            "last unit is not sent yet"
        )
    shards = len(counted)
    return [c + left // shards + (1 if k < left % shards else 0) for k, c in enumerate(counted)]


async def seal(aws: AWS, key: Any, total: int, tolerated: int | str | None) -> None:
    """Fix a streaming cluster's total: write it, with each shard's quota, in one transaction
    (see the module docstring). Contention (consumers counting meanwhile) is tried again on
    fresh reads; a refusal because it was sealed already (an answer lost) checks the total."""
    sealed = await sealed_total(aws, key)
    if sealed is not None:
        _check_total(total, sealed)
        return
    tolerated_n = tolerated_count(tolerated, total)
    keys = [shard_key(key, s) for s in range(MAX_SHARDS)]
    for attempt in range(SEAL_ATTEMPTS):
        found = {i["pKey"]: i for i in await shard_items(aws, key, MAX_SHARDS)}
        rooms = [int(found.get(k.p_key, {}).get("room", OPEN_ROOM)) for k in keys]
        counted = [OPEN_ROOM - room for room in rooms]
        quotas = _quotas(total, counted)
        actions = [_seal_top(aws, key, total, quotas, counted)]
        actions.append(_seal_cluster(aws, key, total, tolerated_n))
        actions += [
            _seal_shard(aws, k, room, quota, count)
            for k, room, quota, count in zip(keys, rooms, quotas, counted, strict=True)
        ]
        reasons = await transact_reasons(aws, actions)
        if reasons is None:
            return
        if condition_failed(reasons[0]):  # sealed already: by this call's lost answer, or a
            _check_total(total, await sealed_total(aws, key))  # resume racing it
            return
        await sleep_backoff(min(attempt + 1, 6))
    raise ConflictError(
        f"sealing cluster {key.id}: consumers kept counting into its shards through "
        f"{SEAL_ATTEMPTS} attempts; call create_message_cluster again with this id to finish"
    )


def _seal_top(
    aws: AWS, key: Any, total: int, quotas: list[int], counted: list[int]
) -> dict[str, Any]:
    filled = sum(q == c for q, c in zip(quotas, counted, strict=True))
    return {
        "Update": {
            "TableName": aws.config.table,
            "Key": key_item(counter_key(key)),
            "UpdateExpression": "SET #t = :t ADD shardsLeft :minus",
            "ConditionExpression": "attribute_not_exists(#t)",
            "ExpressionAttributeNames": {"#t": "total"},
            "ExpressionAttributeValues": {":t": {"N": str(total)}, ":minus": {"N": str(-filled)}},
        }
    }


def _seal_cluster(aws: AWS, key: Any, total: int, tolerated: int) -> dict[str, Any]:
    return {
        "Update": {
            "TableName": aws.config.table,
            "Key": key_item(key),
            "UpdateExpression": "SET #t = :t, toleratedFailures = :tol, updatedAt = :now",
            "ExpressionAttributeNames": {"#t": "total"},
            "ExpressionAttributeValues": {
                ":t": {"N": str(total)},
                ":tol": {"N": str(tolerated)},
                ":now": {"S": now_iso()},
            },
        }
    }


def _seal_shard(aws: AWS, key: Any, room: int, quota: int, counted: int) -> dict[str, Any]:
    """A shard's room from ``OPEN_ROOM`` down to its quota: while it counted fewer than its
    quota (it keeps room), or, when its quota is what it counted, exactly as read (it fills)."""
    values = {":minus": {"N": str(-(OPEN_ROOM - quota))}}
    if quota > counted:
        condition = "room > :least"
        values[":least"] = {"N": str(OPEN_ROOM - quota)}
    else:
        condition = "room = :seen"
        values[":seen"] = {"N": str(room)}
    return {
        "Update": {
            "TableName": aws.config.table,
            "Key": key_item(key),
            "UpdateExpression": "ADD room :minus",
            "ConditionExpression": condition,
            "ExpressionAttributeValues": values,
        }
    }
