"""Redriving a cluster: its tasks that failed for good (or were cancelled) run once more.

Step Functions' map-run redrive. A redrive has a number (``redrives``, 1 for the first) and
runs in three steps, each safe to repeat:

1. Reopen: one transaction moves the ended cluster back to ``IN PROGRESS`` and puts a hold on
   its top counter (one more shard "left", ``redriveHold``), so it cannot end while the redrive
   is under way, however fast consumers are.
2. Chunk by chunk, in index order: each task's record goes back to ``PRE FLIGHT`` (marked
   with the redrive's number) and its count is taken back from the shards that hold it (their
   room given back; a shard that was full is counted up again on the top counter), in one
   transaction, so a task is uncounted exactly when its record moves; then its message is sent
   again, the very body it had (on a FIFO queue, with a deduplication id of its own).
3. Release the hold; when every task ended meanwhile, that ends the cluster, and its
   completion runs once more.

A call that stops midway leaves the hold: the next call goes on with the same number, uncounts
only what was not uncounted, and sends again what is still ``PRE FLIGHT`` (a duplicate that the
consumer's claim absorbs). A late delivery of the first run may claim a task once its record is
back in ``PRE FLIGHT``: it then runs as the redrive's, and the redrive's own message finds it
claimed, so the task still runs once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .._aws.clients import AWS
from .._aws.conditional import condition_failed, contended, transact_reasons, update_if
from .._aws.retry import sleep_backoff
from .._errors import ConflictError, ValidationError
from .._messages.outgoing import Sizing
from .._messages.sending import Unit, write_then_send
from .._records.codec import from_item, key_item, now_iso
from .._records.model import RecordKey, Status, StatusCode
from .._records.store import BATCH_GET_LIMIT, batch_get_raw
from .errors import RedriveError
from .model import FINISHED, CallbackState, ClusterRecord, counter_key, task_key
from .plan import ClusterPlan, prepare_task, validate_task
from .read import shard_items
from .stream import Window

logger = logging.getLogger("sqs_cluster")

CHUNK = 20
"""Tasks reset per transaction (with a few shard actions and the top counter's)."""
ATTEMPTS = 8
"""Transactions tried for one chunk before the redrive stops (it can be called again)."""


@dataclass(frozen=True)
class Target:
    """A task to redrive: its index, and whether its record kept the task's value."""

    index: int
    kept: bool


def redrive_number(cluster: ClusterRecord[Any, Any]) -> int:
    """The number of the redrive to run: the next one for an ended cluster, the one under way
    for a cluster whose redrive stopped midway; ValidationError otherwise."""
    if cluster.redriving:
        return cluster.redrives
    if cluster.status in FINISHED:
        return cluster.redrives + 1
    if cluster.status is Status.PRE_FLIGHT:
        raise ValidationError(
            "key", f"cluster {cluster.id} is still being fanned out: nothing ended to redrive"
        )
    raise ValidationError(
        "key",
        f"cluster {cluster.id} has not ended ({cluster.in_progress} of {cluster.total} tasks "
        "outstanding): redrive it once it ended",
    )


def _state(item: dict[str, Any], number: int) -> str | None:
    """What a task record asks of redrive ``number``: ``"failed"`` or ``"cancelled"`` (uncount
    it, then send it), ``"send"`` (uncounted already, not yet claimed), or None."""
    if item.get("redrive") == number:
        return "send" if item.get("status") == Status.PRE_FLIGHT.value else None
    if item.get("status") == Status.STOPPED.value:
        return "cancelled"
    stopped = item.get("statusCode") == int(StatusCode.STOPPED)
    return "failed" if item.get("status") == Status.ERROR.value and stopped else None


async def _task_items(
    aws: AWS, cluster: RecordKey, indexes: Sequence[int]
) -> dict[int, dict[str, Any]]:
    """The task records of ``indexes`` (≤ 100), deserialised, by index, strongly consistent."""
    raw = await batch_get_raw(aws, [task_key(cluster, i) for i in indexes], consistent_read=True)
    items = [from_item(i) for i in raw]
    return {int(i["pKey"].rsplit(".", 1)[1]): i for i in items}


async def find_targets(aws: AWS, cluster: ClusterRecord[Any, Any], number: int) -> list[Target]:
    """Every task redrive ``number`` has to uncount or send, in index order (100 records a
    strongly consistent BatchGetItem; only the indexes are kept)."""
    targets: list[Target] = []
    for start in range(0, cluster.total, BATCH_GET_LIMIT):
        indexes = range(start, min(cluster.total, start + BATCH_GET_LIMIT))
        items = await _task_items(aws, cluster.key, indexes)
        for index in indexes:
            item = items.get(index)
            if item is not None and _state(item, number) is not None:
                targets.append(Target(index, "task" in item))
    return targets


async def reopen(aws: AWS, cluster: ClusterRecord[Any, Any], number: int) -> None:
    """Step 1: the ended cluster back to ``IN PROGRESS``, and the hold on its top counter.

    Found reopened for this number already (an earlier answer was lost, or another call
    reopened it): nothing to do. Refused while its completion is running.
    """
    now = await aws.synced_now_ms()
    stamp = now_iso()
    previous = "attribute_not_exists(redrives)" if number == 1 else "redrives = :prev"
    values: dict[str, Any] = {
        ":prog": {"S": Status.IN_PROGRESS.value},
        ":progc": {"N": str(int(StatusCode.IN_PROGRESS))},
        ":r": {"N": str(number)},
        ":now": {"S": stamp},
        ":nowms": {"N": str(now)},
        ":running": {"S": CallbackState.RUNNING},
        **{f":f{i}": {"S": s.value} for i, s in enumerate(FINISHED)},
    }
    if number > 1:
        values[":prev"] = {"N": str(number - 1)}
    finished = ", ".join(f":f{i}" for i in range(len(FINISHED)))
    reopen_cluster = {
        "TableName": aws.config.table,
        "Key": key_item(cluster.key),
        "UpdateExpression": (
            "SET #s = :prog, statusCode = :progc, redrives = :r, redrivenAt = :now, "
            "updatedAt = :now REMOVE completedAt, results, cancelledAt, cancelReason"
        ),
        "ConditionExpression": (
            f"#s IN ({finished}) AND {previous} AND (attribute_not_exists(callbackState) OR "
            "callbackState <> :running OR callbackLeaseUntilMs < :nowms)"
        ),
        "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": values,
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    hold = {
        "TableName": aws.config.table,
        "Key": key_item(counter_key(cluster.key)),
        "UpdateExpression": "ADD shardsLeft :one SET redriveHold = :r",
        "ConditionExpression": "attribute_not_exists(redriveHold)",
        "ExpressionAttributeValues": {":one": {"N": "1"}, ":r": {"N": str(number)}},
    }
    reasons = await transact_reasons(aws, [{"Update": reopen_cluster}, {"Update": hold}])
    if reasons is None:
        return
    item = from_item(reasons[0].get("Item") or {})
    if item.get("redrives") == number and item.get("status") == Status.IN_PROGRESS.value:
        return  # reopened already, by this call's lost answer or by another call
    if any(contended(r) for r in reasons):
        raise ConflictError(f"redrive of cluster {cluster.id}: contention; try again")
    if item.get("callbackState") == CallbackState.RUNNING:
        raise ConflictError(
            f"cluster {cluster.id}: its completion is running; redrive it once that finished"
        )
    raise ValidationError(
        "key", f"cluster {cluster.id} changed while the redrive started ({item.get('status')})"
    )


async def release(aws: AWS, cluster: RecordKey, number: int) -> None:
    """Step 3: take the hold off the top counter (once; a repeat finds it gone)."""
    await update_if(
        aws,
        {
            "TableName": aws.config.table,
            "Key": key_item(counter_key(cluster)),
            "UpdateExpression": "ADD shardsLeft :minus REMOVE redriveHold",
            "ConditionExpression": "redriveHold = :r",
            "ExpressionAttributeValues": {":minus": {"N": "-1"}, ":r": {"N": str(number)}},
        },
    )


async def uncount(
    aws: AWS, cluster: ClusterRecord[Any, Any], number: int, indexes: Sequence[int]
) -> dict[int, dict[str, Any]]:
    """Step 2's first half for a chunk of tasks: reset and uncount those that ask for it, in
    one transaction; returns the chunk's records as they then stand."""
    for attempt in range(ATTEMPTS):
        items = await _task_items(aws, cluster.key, indexes)
        states = {i: _state(item, number) for i, item in items.items()}
        due = {i: s for i, s in states.items() if s is not None and s != "send"}
        if not due:
            return items
        actions = [
            {"Update": _reset(aws, task_key(cluster.key, i), s, number)} for i, s in due.items()
        ]
        actions += await _shard_actions(aws, cluster, number, list(due.values()))
        reasons = await transact_reasons(aws, actions)
        if reasons is None:  # the reset tasks now stand as the transaction left them
            for i in due:
                items[i].update(status=Status.PRE_FLIGHT.value, redrive=number)
            return items
        if any(contended(r) for r in reasons) or not any(condition_failed(r) for r in reasons):
            await sleep_backoff(attempt + 1)
        # a condition failed: a consumer counted into a shard, or another call reset a task;
        # read again and plan anew
    raise ConflictError(
        f"redrive {number} of cluster {cluster.id}: tasks {list(indexes)[:5]}... could not be "
        f"uncounted after {ATTEMPTS} attempts (contention); call redrive_message_cluster again"
    )


_TALLIES = ("failed", "cancelled")


def _reset(aws: AWS, key: RecordKey, tally: str, number: int) -> dict[str, Any]:
    """A task record back to ``PRE FLIGHT`` for redrive ``number``, if it is still as seen."""
    seen = Status.ERROR if tally == "failed" else Status.STOPPED
    return {
        "TableName": aws.config.table,
        "Key": key_item(key),
        "UpdateExpression": "SET #s = :pre, statusCode = :prec, redrive = :r, updatedAt = :now",
        "ConditionExpression": (
            "#s = :seen AND statusCode = :stopc AND "
            "(attribute_not_exists(redrive) OR redrive <> :r)"
        ),
        "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": {
            ":pre": {"S": Status.PRE_FLIGHT.value},
            ":prec": {"N": str(int(StatusCode.PRE_FLIGHT))},
            ":r": {"N": str(number)},
            ":now": {"S": now_iso()},
            ":seen": {"S": seen.value},
            ":stopc": {"N": str(int(StatusCode.STOPPED))},
        },
    }


async def _shard_actions(
    aws: AWS, cluster: ClusterRecord[Any, Any], number: int, tallies: list[str]
) -> list[dict[str, Any]]:
    """Take ``tallies`` back from the shards that counted them (as read now), each on the
    condition that it still has them and still is full or not as seen; shards that were full
    are counted up on the top counter, under the redrive's hold."""
    read = await shard_items(aws, cluster.key, cluster.shards)
    left = {name: tallies.count(name) for name in _TALLIES}
    actions: list[dict[str, Any]] = []
    reopened = 0
    for shard in sorted(read, key=lambda s: -(s.get("failed", 0) + s.get("cancelled", 0))):
        take = {name: min(left[name], int(shard.get(name, 0))) for name in _TALLIES}
        if not any(take.values()):
            continue
        for name in _TALLIES:
            left[name] -= take[name]
        room = int(shard.get("room", 0))
        reopened += room <= 0
        actions.append(_give_back(aws, shard, take, room <= 0))
    if any(left.values()):
        raise ConflictError(
            f"redrive {number} of cluster {cluster.id}: its shards hold fewer failed or "
            f"cancelled tasks than its records say ({left} missing)"
        )
    actions.append(_top(aws, cluster.key, number, reopened))
    return actions


def _give_back(aws: AWS, shard: dict[str, Any], take: dict[str, int], full: bool) -> dict[str, Any]:
    values: dict[str, Any] = {":zero": {"N": "0"}, ":now": {"S": now_iso()}}
    adds, conditions = [], ["room = :zero" if full else "room > :zero"]
    for name, count in take.items():
        if count:
            adds.append(f"{name} :m{name}")
            conditions.append(f"{name} >= :{name}")
            values[f":m{name}"] = {"N": str(-count)}
            values[f":{name}"] = {"N": str(count)}
    values[":room"] = {"N": str(sum(take.values()))}
    return {
        "Update": {
            "TableName": aws.config.table,
            "Key": {"pKey": {"S": shard["pKey"]}, "rKey": {"S": shard["rKey"]}},
            "UpdateExpression": f"ADD room :room, {', '.join(adds)} SET updatedAt = :now",
            "ConditionExpression": " AND ".join(conditions),
            "ExpressionAttributeValues": values,
        }
    }


def _top(aws: AWS, cluster: RecordKey, number: int, reopened: int) -> dict[str, Any]:
    """Count reopened shards up on the top counter; either way, only under this redrive's
    hold (a call that lost its race with the release must not reopen an ended cluster)."""
    values: dict[str, Any] = {":r": {"N": str(number)}}
    action: dict[str, Any] = {
        "TableName": aws.config.table,
        "Key": key_item(counter_key(cluster)),
        "ConditionExpression": "redriveHold = :r",
        "ExpressionAttributeValues": values,
    }
    if not reopened:
        return {"ConditionCheck": action}
    values[":k"] = {"N": str(reopened)}
    return {"Update": {**action, "UpdateExpression": "ADD shardsLeft :k"}}


async def redrive(
    aws: AWS,
    cluster: ClusterRecord[Any, Any],
    number: int,
    targets: list[Target],
    given: Sequence[Any] | None,
    sizing: Sizing,
) -> None:
    """Steps 2 and 3 once reopened: uncount and send chunk by chunk, then release the hold.

    RedriveError when messages could not be sent (the hold stays: a next call sends them).
    """
    values = Window()  # the chunk's values, in a sequence as long as the cluster
    values.read = cluster.total
    plan = ClusterPlan(
        key=cluster.key,
        queue_url=cluster.url,
        tasks=values,
        location=cluster.globals_location,
        meta_text=None,
        globals_value=None,
        tolerated=0,
        sizing=sizing,
        fifo=cluster.url.rstrip("/").endswith(".fifo"),
        dedup_suffix=f".r{number}",
        fixed_shards=cluster.shards,
    )
    failed: dict[int, str] = {}
    for start in range(0, len(targets), CHUNK):
        indexes = [t.index for t in targets[start : start + CHUNK]]
        items = await uncount(aws, cluster, number, indexes)
        send = to_send(items, number)
        values.values = {i: _value(items[i], given, i) for i in send}
        if given is not None:
            for i in send:
                validate_task(plan, i, values.values[i])
        units = [Unit(start, [], [prepare_task(aws, plan, i) for i in send])] if send else []
        outcome = await write_then_send(aws, cluster.url, units, collect_keys=False)
        failed.update(outcome.failed)
    if failed:
        raise RedriveError(cluster.id, number, failed)
    await release(aws, cluster.key, number)


def _value(item: dict[str, Any], given: Sequence[Any] | None, index: int) -> Any:
    """A task's value: its record's copy, else the caller's list (checked up front)."""
    if "task" in item:
        return json.loads(item["task"])
    assert given is not None
    return given[index]


def to_send(items: dict[int, dict[str, Any]], number: int) -> list[int]:
    """The tasks of a chunk still waiting for redrive ``number``'s message, in order."""
    return sorted(i for i, item in items.items() if _state(item, number) == "send")
