"""Cancelling a cluster: its tasks that have not started are stopped and counted cancelled.

The cluster record is flagged first (``cancelledAt``), so the cluster ends ``STOPPED``
whoever counts its last task. Then every task record that has not started (``PRE FLIGHT``, or
``ERROR`` awaiting a retry) is stopped and counted ``cancelled`` through the same
transactions as a consumer's settlement (``count.settle``): a task a consumer claims first
runs and is counted as usual, and a cancelled one's delivery is refused by the claim (its
``statusCode`` is ``STOPPED``), so it is deleted without running. Running tasks finish.
"""

from __future__ import annotations

from typing import Any

from .._aws.clients import AWS
from .._aws.conditional import update_if
from .._errors import RecordNotFoundError, ValidationError
from .._records.codec import key_item, now_iso
from .._records.model import RecordKey, Status, StatusCode
from .complete import finalize_if_done, finish_counted
from .count import Entry, settle
from .model import ClusterRecord
from .read import iter_task_records, read_cluster

CHUNK = 20
"""Tasks cancelled per transaction (each also counts on a shard and maybe the top counter)."""


async def flag_cancelled(aws: AWS, key: RecordKey, reason: str | None) -> None:
    """Mark the cluster cancelled (once: a second call keeps the first time and reason).

    ValidationError when it already ended, or is still being fanned out."""
    values: dict[str, Any] = {
        ":now": {"S": now_iso()},
        ":prog": {"S": Status.IN_PROGRESS.value},
    }
    sets = "cancelledAt = :now, updatedAt = :now"
    if reason is not None:
        values[":why"] = {"S": reason}
        sets += ", cancelReason = :why"
    written = await update_if(
        aws,
        {
            "TableName": aws.config.table,
            "Key": key_item(key),
            "UpdateExpression": f"SET {sets}",
            "ConditionExpression": "#s = :prog AND attribute_not_exists(cancelledAt)",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": values,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        },
    )
    if written.applied:
        return
    item = written.item
    if item is None:
        raise RecordNotFoundError(key)
    if "cancelledAt" in item and item["status"]["S"] == Status.IN_PROGRESS.value:
        return  # cancelled before: go on stopping what is left
    status = item["status"]["S"]
    if status == Status.PRE_FLIGHT.value:
        raise ValidationError(
            "key", f"cluster {key.id} is still being fanned out: cancel it once its create returned"
        )
    raise ValidationError("key", f"cluster {key.id} already ended ({status}): nothing to cancel")


def cancel_update(aws: AWS, key: RecordKey) -> dict[str, Any]:
    """Stop one task that has not started (not claimed, or failed and awaiting a retry)."""
    return {
        "TableName": aws.config.table,
        "Key": key_item(key),
        "UpdateExpression": "SET #s = :stop, statusCode = :stopc, updatedAt = :now",
        "ConditionExpression": "#s = :pre OR (#s = :err AND statusCode <> :stopc)",
        "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": {
            ":stop": {"S": Status.STOPPED.value},
            ":stopc": {"N": str(int(StatusCode.STOPPED))},
            ":now": {"S": now_iso()},
            ":pre": {"S": Status.PRE_FLIGHT.value},
            ":err": {"S": Status.ERROR.value},
        },
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }


async def cancel_cluster(
    aws: AWS, key: RecordKey, reason: str | None
) -> ClusterRecord[Any, Any] | None:
    """Flag the cluster, stop and count its unstarted tasks; the cluster once it ended."""
    cluster = await read_cluster(aws, key, consistent_read=True)
    await flag_cancelled(aws, cluster.key, reason)
    shards = cluster.shards
    pending: list[Entry] = []
    ended: ClusterRecord[Any, Any] | None = None

    async def flush() -> None:
        nonlocal ended
        for outcome in await settle(aws, pending):
            done = await finish_counted(aws, cluster.key, outcome)
            ended = ended or done
        pending.clear()

    waiting = (Status.PRE_FLIGHT, Status.ERROR)
    async for task in iter_task_records(aws, cluster):
        if task.status in waiting and task.status_code is not StatusCode.STOPPED:
            pending.append(Entry(cancel_update(aws, task.key), cluster.key, shards, "cancelled"))
            if len(pending) == CHUNK:
                await flush()
    if pending:
        await flush()
    return ended or await finalize_if_done(aws, cluster.key)
