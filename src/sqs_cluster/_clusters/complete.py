"""Fan-in: count each task exactly once, end the cluster once, run its callback once.

Counting a task is part of one TransactWriteItems per batch (``count``): the task record moves
to ``COMPLETE`` (or, on its last allowed receive, ``ERROR``/stopped) only if it has not
already, and a counter shard of its cluster counts it in the same transaction, so a crash can
never leave a task counted twice or not at all. The write that counts the last task says so,
and its caller ends the cluster with a conditional update (one winner), which leaves the
callback ``PENDING``. The callback is claimed
with a lease, like a message, so it runs once, and again only if its runner died.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._aws.clients import AWS
from .._aws.conditional import update_if
from .._concurrency import call_handler
from .._errors import ConflictError
from .._messages.event import ReceivedMessage
from .._messages.outgoing import fast_dumps
from .._messages.tracking import (
    bounded_append,
    complete_update,
    error_entry,
    error_list_clause,
    error_list_full,
    fail_update,
    lease_owner,
    stores_result,
)
from .._records.codec import from_item, key_item, now_iso
from .._records.model import STATUS_CODES, ErrorEntry, RecordKey, Status, StatusCode
from .._records.store import get_raw
from .count import Entry, Outcome
from .model import CallbackState, ClusterCallback, ClusterRecord, cluster_from_items
from .read import read_cluster, read_cluster_items, read_shards, shards_left

NOT_STOPPED = " AND statusCode <> :stopped"

if TYPE_CHECKING:
    import anyio

logger = logging.getLogger("sqs_cluster")


def not_stopped(update: dict[str, Any]) -> dict[str, Any]:
    """``update`` with the extra condition that its record is not stopped (failed for good)."""
    update = dict(update)
    update["ConditionExpression"] += NOT_STOPPED
    update["ExpressionAttributeValues"] = {
        **update["ExpressionAttributeValues"],
        ":stopped": {"N": str(int(StatusCode.STOPPED))},
    }
    return update


def task_entry(
    aws: AWS,
    message: ReceivedMessage[Any],
    *,
    error: BaseException | None = None,
    result: Any = None,
) -> Entry:
    """What settling a task writes: complete it (with its result) or, with ``error``, fail it
    for good; either way, count it once in its cluster (see ``count``)."""
    assert message.cluster_key is not None and message.cluster_shards is not None
    owner = lease_owner(message)
    key = message.key
    if error is None:

        def refit(why: str) -> dict[str, Any] | None:
            if why == "size" and (stores_result(update) or kept is not None):
                return not_stopped(complete_update(aws, key, result, task=True, drop_result=True))
            return None

        kept = _task_text(aws, message.task)
        update = not_stopped(complete_update(aws, key, result, task=True, task_text=kept))
        tally = "completed"
    else:
        entry = error_entry(error, message.receive_count)
        kept = _task_text(aws, message.task)  # a redrive sends it again
        full = False

        def refit(why: str) -> dict[str, Any] | None:
            nonlocal kept, full
            if why == "size" and kept is not None:
                kept = None  # the item is too large with it: the task stays off the record
            elif why == "errors" and not full:
                full = True
            else:
                return None
            return not_stopped(
                fail_update(aws, key, entry, final=True, owner=owner, full=full, task_text=kept)
            )

        update = not_stopped(fail_update(aws, key, entry, final=True, owner=owner, task_text=kept))
        tally = "failed"
    return Entry(update, message.cluster_key, message.cluster_shards, tally, refit)


def _task_text(aws: AWS, task: Any) -> str | None:
    """A task's value as JSON, kept on its completed record when it is small (at most
    ``Config.record_body_bytes``): ``iter_results`` gives it back beside the result."""
    text = fast_dumps(task)
    return text if len(text.encode()) <= aws.config.record_body_bytes else None


def message_entry(aws: AWS, message: ReceivedMessage[Any], result: Any = None) -> Entry:
    """What completing a plain message writes (a result that does not fit is dropped)."""
    key = message.key

    def refit(why: str) -> dict[str, Any] | None:
        if why == "size" and stores_result(update):
            return complete_update(aws, key, result, drop_result=True)
        return None

    update = complete_update(aws, key, result)
    return Entry(update, refit=refit)


async def finish_counted(
    aws: AWS, cluster: RecordKey, outcome: Outcome
) -> ClusterRecord[Any, Any] | None:
    """After a task was settled: end its cluster when this write ended the counting (or may
    have: its answer was lost), and return the cluster once every task was counted."""
    if outcome.ended:
        return await end_cluster(aws, cluster)
    if outcome.earlier:
        return await finalize_if_done(aws, cluster)
    return None


async def finalize_if_done(aws: AWS, key: RecordKey) -> ClusterRecord[Any, Any] | None:
    """If every task was counted, end the cluster (one conditional winner) and return it.

    Reads only the small top counter first, so a task that is not the last costs one GetItem;
    RecordNotFoundError when the cluster is gone. None while tasks are outstanding.
    """
    if await shards_left(aws, key) > 0:
        return None
    return await end_cluster(aws, key)


async def end_cluster(aws: AWS, key: RecordKey) -> ClusterRecord[Any, Any]:
    """Every task was counted: set the cluster's status (one conditional winner, which also
    leaves the callback ``PENDING``) and return the cluster."""
    with aws.observe.span("sqs_cluster.complete", {"sqs_cluster.cluster_id": key.id}) as span:
        cluster = await _end_cluster(aws, key)
        if span is not None:
            span.set_attribute("sqs_cluster.status", cluster.status.value)
        return cluster


async def _end_cluster(aws: AWS, key: RecordKey) -> ClusterRecord[Any, Any]:
    cluster = await read_cluster(aws, key, consistent_read=True)
    if cluster.is_finished or cluster.in_progress > 0:
        return cluster
    status = Status.COMPLETE if cluster.failed <= cluster.tolerated_failures else Status.ERROR
    if cluster.is_cancelled:
        status = Status.STOPPED
    code = STATUS_CODES[status]
    stamp = now_iso()
    ended = await update_if(
        aws,
        {
            "TableName": aws.config.table,
            "Key": key_item(cluster.key),
            "UpdateExpression": (
                "SET #s = :s, statusCode = :c, completedAt = :now, updatedAt = :now, "
                "callbackState = :pending"
            ),
            "ConditionExpression": "#s IN (:pre, :prog)",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {
                ":s": {"S": status.value},
                ":c": {"N": str(int(code))},
                ":now": {"S": stamp},
                ":pending": {"S": CallbackState.PENDING},
                ":pre": {"S": Status.PRE_FLIGHT.value},
                ":prog": {"S": Status.IN_PROGRESS.value},
            },
        },
    )
    if not ended.applied:  # another finisher ended it first
        return await read_cluster(aws, key, consistent_read=True)
    await aws.observe.cluster_ended(status.value)  # once: by the one winner
    return dataclasses.replace(
        cluster,
        status=status,
        status_code=code,
        completed_at=stamp,
        callback_state=CallbackState.PENDING,
    )


def callback_due(cluster: ClusterRecord[Any, Any]) -> bool:
    """True when the cluster ended and its callback has not run to completion."""
    return cluster.is_finished and cluster.callback_state != CallbackState.DONE


async def _claim_callback(aws: AWS, key: RecordKey, token: str) -> bool:
    now = await aws.synced_now_ms()  # AWS's clock: a skewed local clock cannot end a live lease
    claimed = await update_if(
        aws,
        {
            "TableName": aws.config.table,
            "Key": key_item(key),
            "UpdateExpression": (
                "SET callbackState = :running, callbackLeaseUntilMs = :lease, "
                "callbackToken = :token ADD callbackAttempts :one"
            ),
            "ConditionExpression": (
                "#s IN (:done, :err, :stop) AND (attribute_not_exists(callbackState) OR "
                "callbackState IN (:pending, :failed) OR "
                "(callbackState = :running AND callbackLeaseUntilMs < :now))"
            ),
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {
                ":running": {"S": CallbackState.RUNNING},
                ":pending": {"S": CallbackState.PENDING},
                ":failed": {"S": CallbackState.FAILED},
                ":lease": {"N": str(now + aws.config.callback_lease * 1000)},
                ":now": {"N": str(now)},
                ":token": {"S": token},
                ":one": {"N": "1"},
                ":stop": {"S": Status.STOPPED.value},
                ":done": {"S": Status.COMPLETE.value},
                ":err": {"S": Status.ERROR.value},
            },
        },
    )
    return claimed.applied or await _holds_callback(aws, key, token)  # answer may be lost


async def _holds_callback(aws: AWS, key: RecordKey, token: str) -> bool:
    item = await get_raw(aws, key, consistent_read=True, projection="callbackToken, callbackState")
    return _claimed_by(from_item(item or {}), token)


def _claimed_by(item: Mapping[str, Any], token: str, *, live_at: int | None = None) -> bool:
    """Whether the cluster item says the callback's claim is ``token``'s (and, with
    ``live_at``, AWS's now in ms, that its lease has not run out)."""
    return bool(
        item.get("callbackToken") == token
        and item.get("callbackState") == CallbackState.RUNNING
        and (live_at is None or int(item.get("callbackLeaseUntilMs", 0)) >= live_at)
    )


async def _settle_callback(
    aws: AWS, key: RecordKey, token: str, error: BaseException | None
) -> None:
    """Record how the callback ended, under our claim; a failure's error joins the cluster's
    bounded ``error`` list (a callback failing on every retry never outgrows the item)."""
    entry = None if error is None else error_entry(error, None)
    params = _settle_params(aws, key, token, entry, full=False)
    written = await update_if(aws, params)
    if entry is not None and not written.applied and error_list_full(written.item):
        await update_if(aws, _settle_params(aws, key, token, entry, full=True))
    # refused otherwise: taken over, or already settled by a retry


def _settle_params(
    aws: AWS, key: RecordKey, token: str, entry: ErrorEntry | None, *, full: bool
) -> dict[str, Any]:
    values: dict[str, Any] = {
        ":token": {"S": token},
        ":running": {"S": CallbackState.RUNNING},
        ":now": {"S": now_iso()},
    }
    # still running under our claim: a retry of a settle that landed changes nothing
    condition = "callbackToken = :token AND callbackState = :running"
    params: dict[str, Any] = {"TableName": aws.config.table, "Key": key_item(key)}
    if entry is None:
        expression = (
            "SET callbackState = :done, callbackCompletedAt = :now REMOVE callbackLeaseUntilMs"
        )
        values[":done"] = {"S": CallbackState.DONE}
    else:
        append, dropped, entry_values = bounded_append(entry, full)
        values.update(entry_values)
        values[":failed"] = {"S": CallbackState.FAILED}
        expression = (
            f"SET callbackState = :failed, updatedAt = :now, {append} "
            f"REMOVE callbackLeaseUntilMs{dropped}"
        )
        condition = f"{condition} AND {error_list_clause(full)}"
        params["ExpressionAttributeNames"] = {"#e": "error"}
        params["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    return {
        **params,
        "UpdateExpression": expression,
        "ConditionExpression": condition,
        "ExpressionAttributeValues": values,
    }


async def run_callback(
    aws: AWS,
    cluster: ClusterRecord[Any, Any] | None,
    callback: ClusterCallback,
    limiter: anyio.CapacityLimiter | None = None,
) -> bool:
    """Run ``callback`` if the cluster ended and nobody ran (or is running) it; True if we did.

    A failing callback records its error on the cluster, leaves it ``FAILED`` for a retry, and
    raises, so the message that triggered it returns to the queue and tries again. A runner
    whose claim lapsed before the callback started (another may have taken it over) does not
    start it, and raises ConflictError for the same retry.
    """
    if cluster is None or not callback_due(cluster):
        return False
    token = uuid.uuid4().hex
    if not await _claim_callback(aws, cluster.key, token):
        return False
    with aws.observe.span("sqs_cluster.callback", {"sqs_cluster.cluster_id": cluster.id}):
        return await _run_claimed(aws, cluster, callback, token, limiter)


async def _run_claimed(
    aws: AWS,
    cluster: ClusterRecord[Any, Any],
    callback: ClusterCallback,
    token: str,
    limiter: anyio.CapacityLimiter | None,
) -> bool:
    """Run the callback this runner claimed (``token``), renewing its lease meanwhile."""
    heartbeat = asyncio.ensure_future(_renew_callback_lease(aws, cluster.key, token))
    try:
        items = await read_cluster_items(aws, cluster.key, consistent_read=True)
        items += await read_shards(aws, items)
        fresh = dataclasses.replace(cluster_from_items(items, cluster.key), client=cluster.client)
        # a store slow enough to hold back the renewals may have let the lease lapse
        main = next(i for i in items if i.get("type") == "cluster")
        still_ours = _claimed_by(main, token, live_at=aws.now_ms())
        if still_ours:
            await call_handler(callback, fresh, fresh.get_globals, limiter=limiter)
    except Exception as exc:
        await _stop(heartbeat)
        await _settle_callback(aws, cluster.key, token, exc)
        raise
    except BaseException:  # cancelled: the lease lapses and another delivery runs it again
        await _stop(heartbeat)
        raise
    await _stop(heartbeat)
    if not still_ours:
        raise ConflictError(
            f"callback of {cluster.key.p_key}: its lease ran out before it started (renewals "
            "came too late), so it did not run here; a redelivery or a later call runs it"
        )
    await _settle_callback(aws, cluster.key, token, None)
    return True


async def _renew_callback_lease(aws: AWS, key: RecordKey, token: str) -> None:
    """While our callback runs, keep its lease ahead: only a runner that died loses it.

    Renewed every third of ``Config.callback_lease``, on condition that the claim is still
    ours; a renewal that fails is tried again at the next beat (the lease still has two thirds
    left).
    """
    period = aws.config.callback_lease / 3
    while True:
        await asyncio.sleep(period)
        until = aws.now_ms() + aws.config.callback_lease * 1000
        renewal = {
            "TableName": aws.config.table,
            "Key": key_item(key),
            "UpdateExpression": "SET callbackLeaseUntilMs = :until",
            "ConditionExpression": "callbackToken = :token AND callbackState = :running",
            "ExpressionAttributeValues": {
                ":until": {"N": str(until)},
                ":token": {"S": token},
                ":running": {"S": CallbackState.RUNNING},
            },
        }
        try:
            renewed = await update_if(aws, renewal)
        except Exception as exc:
            logger.warning("callback lease of %s not renewed: %s", key.p_key, exc)
            continue
        if not renewed.applied:
            return  # settled or taken over: nothing left to keep


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def completion_summary(cluster: ClusterRecord[Any, Any]) -> dict[str, Any]:
    """The body of a cluster's completion message (``CompletionQueue``): what a separate
    consumer needs to act on the end."""
    return {
        "type": "cluster-complete",
        "cluster": cluster.key.to_dict(),
        "id": cluster.id,
        "status": cluster.status.value,
        "total": cluster.total,
        "completed": cluster.completed,
        "failed": cluster.failed,
        "meta": cluster.meta,
        "globals": dict(cluster.globals_location) if cluster.globals_location else None,
        "results": dict(cluster.results_location) if cluster.results_location else None,
        "redrive": cluster.redrives,
    }
