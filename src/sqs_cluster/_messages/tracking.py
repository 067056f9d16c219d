"""Claim, complete and fail a received message: the conditional writes behind ``is_complete``.

A claim is one UpdateItem that moves the record to ``IN PROGRESS`` with a lease, only if the
record is absent (a message sent with the plain SDK), not complete, and not leased by a live
delivery. Completing is one more write: two DynamoDB writes per successful message.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from dataclasses import dataclass
from enum import Enum
from typing import Any

from .._aws.clients import AWS, item_too_large
from .._aws.conditional import delete_if, update_if
from .._config import Config
from .._errors import ValidationError
from .._records.codec import dumps, error_attr, key_item, now_iso, record_from_item
from .._records.limits import (
    ERRORS_KEPT,
    MAX_ERROR_MESSAGE_BYTES,
    MAX_RESULT_BYTES,
    MAX_TRACEBACK_BYTES,
    tail_utf8,
    truncate_utf8,
)
from .._records.model import ErrorEntry, MessageRecord, RecordKey, RecordType, Status, StatusCode
from .._records.store import get_raw
from .._records.write_tokens import new_token
from .errors import MessageInProgressError
from .event import ReceivedMessage
from .outgoing import body_attributes

logger = logging.getLogger("sqs_cluster")

SETTLE_ATTRIBUTE = "settleToken"
"""Attribute holding the token of the last complete or fail write: a write whose answer was
lost and whose retry then failed its condition recognises itself by it."""


class ClaimOutcome(str, Enum):
    """Result of trying to claim a delivery."""

    CLAIMED = "claimed"
    """This delivery owns the message: process it, then complete or fail it."""
    COMPLETE = "complete"
    """Already settled (processed, or a task already counted failed): skip it, delete it."""
    IN_PROGRESS = "in_progress"
    """Another delivery holds a live lease: return this one to the queue."""


@dataclass(frozen=True)
class Claim:
    """A claim's outcome and the record as it stands after the attempt (None if unknown)."""

    outcome: ClaimOutcome
    record: MessageRecord[Any] | None


def lease_owner(message: ReceivedMessage[Any]) -> str:
    """Who holds a claim: this delivery (its receipt handle is unique per receive)."""
    return message.receipt_handle or f"{message.message_id}#{message.receive_count}"


def _claim_condition(message: ReceivedMessage[Any]) -> str:
    """Claimable: not complete, not a task failed for good, not leased by a live delivery.

    Only a message from a plain SDK may get its record created by the claim. A tracked one's
    record was written before it was sent, so if it is gone the message was settled long ago
    (its record expired, or was deleted on completion): re-creating it would run it again.
    """
    claimable = (
        "(#s <> :done AND (#t <> :task OR statusCode <> :stopped) AND "
        "(#s <> :prog OR leaseUntilMs < :now))"
    )
    if message.tracked:
        return f"attribute_exists(pKey) AND {claimable}"
    return f"attribute_not_exists(pKey) OR {claimable}"


async def claim(
    aws: AWS,
    message: ReceivedMessage[Any],
    *,
    lease_seconds: float | None = None,
    want_record: bool = True,
) -> Claim:
    """Take the message's lease, ``Config.lease_seconds`` long or ``lease_seconds`` when that
    is shorter, creating the record for untracked messages.

    ``want_record=False`` leaves the record out of a successful claim (``Claim.record`` is
    None): the batch path does not read it, and parsing it back is about a tenth of the
    claim's client CPU. A refused claim always comes with the record as it stood."""
    cfg = aws.config
    now = await aws.synced_now_ms()  # AWS's clock: a skewed local clock cannot end a live lease
    lease = min(lease_seconds or cfg.lease_seconds, cfg.lease_seconds)
    token = uuid.uuid4().hex  # one per claim call: botocore's retries resend the same token
    values = {
        ":prog": {"S": Status.IN_PROGRESS.value},
        ":progc": {"N": str(int(StatusCode.IN_PROGRESS))},
        ":done": {"S": Status.COMPLETE.value},
        ":now": {"N": str(now)},
        ":lease": {"N": str(now + int(lease * 1000))},
        ":stamp": {"S": now_iso()},
        ":one": {"N": "1"},
        ":owner": {"S": lease_owner(message)},
        ":token": {"S": token},
        ":task": {"S": RecordType.TASK.value},
        ":stopped": {"N": str(int(StatusCode.STOPPED))},
    }
    sets = (
        "SET #s = :prog, statusCode = :progc, leaseUntilMs = :lease, leaseOwner = :owner, "
        "claimToken = :token, updatedAt = :stamp, startedAt = if_not_exists(startedAt, :stamp)"
    )
    names = {"#s": "status", "#t": "type"}
    if not message.tracked:  # its record is created here: what a sender would have written
        sets += _first_claim_sets(message, values, now, cfg)
        names["#url"] = "url"
    written = await update_if(
        aws,
        dict(
            TableName=cfg.table,
            Key=key_item(message.key),
            UpdateExpression=f"{sets} ADD consumptionCount :one",
            ConditionExpression=_claim_condition(message),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW" if want_record else "NONE",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        ),
    )
    if written.applied:
        record = record_from_item(written.item) if written.item is not None else None
        return Claim(ClaimOutcome.CLAIMED, record)
    return await _lost_claim(aws, message, written.item, token)


def _first_claim_sets(
    message: ReceivedMessage[Any], values: dict[str, Any], now: int, cfg: Config
) -> str:
    """The attributes a claim writes when it creates the record of an untracked message (a
    tracked one's were written before it was sent: a claim never rewrites its body)."""
    body = message.raw_body if message.payload is None else ""
    stored = body_attributes(
        body,
        len(body.encode()) if message.payload is None else message.payload.size or 0,
        cfg.record_body_bytes,
        message.payload,
    )
    names = []
    for n, (name, value) in enumerate(stored.items()):
        values[f":b{n}"] = value
        names.append(f"{name} = if_not_exists({name}, :b{n})")
    values.update(
        {
            ":type": {"S": message.type.value},
            ":url": {"S": message.queue_url},
            ":id": {"S": message.key.id},
            ":exp": {"N": str(int(now / 1000) + cfg.record_ttl_seconds)},
        }
    )
    return (
        ", #t = if_not_exists(#t, :type), #url = if_not_exists(#url, :url), "
        "id = if_not_exists(id, :id), expiresAt = if_not_exists(expiresAt, :exp), "
        + ", ".join(names)
    )


def is_settled(record: MessageRecord[Any]) -> bool:
    """Whether a record is done for good: complete, or a task counted already (failed for good,
    or cancelled), which stays counted and is never run again."""
    counted = record.type is RecordType.TASK and record.status_code is StatusCode.STOPPED
    return record.status is Status.COMPLETE or counted


async def _lost_claim(
    aws: AWS, message: ReceivedMessage[Any], item: dict[str, Any] | None, token: str
) -> Claim:
    """A refused claim: why, from the item as it stood (read once if not returned)."""
    if item is None:
        item = await get_raw(aws, message.key, consistent_read=True)
    if item is None and message.tracked:
        _log_settled_elsewhere(message)
        return Claim(ClaimOutcome.COMPLETE, None)
    if item is None:  # deleted in between: treat as a live competitor; SQS will redeliver
        return Claim(ClaimOutcome.IN_PROGRESS, None)
    record = record_from_item(item)
    if is_settled(record):
        return Claim(ClaimOutcome.COMPLETE, record)
    if record.status is Status.IN_PROGRESS and item.get("claimToken", {}).get("S") == token:
        # this very call's claim went through, but its answer was lost and the retry found it
        return Claim(ClaimOutcome.CLAIMED, record)
    return Claim(ClaimOutcome.IN_PROGRESS, record)


def _log_settled_elsewhere(message: ReceivedMessage[Any]) -> None:
    """A tracked message without its record: its record was written before it was sent, so
    it was settled and its record expired (or was deleted on completion). Running it again
    would run it twice (and count a task twice): it is skipped."""
    logger.warning(
        "message %s: its record %s is gone (expired or deleted after it was settled): a late "
        "duplicate, skipped without running it",
        message.message_id,
        message.key.p_key,
        extra={
            "message_id": message.message_id,
            "record_key": message.key.to_dict(),
            "cluster_key": message.cluster_key.to_dict() if message.cluster_key else None,
        },
    )


def raise_if_in_progress(result: Claim, key: RecordKey) -> bool:
    """``is_complete``'s answer: True when complete, raise when leased elsewhere, else False."""
    if result.outcome is ClaimOutcome.IN_PROGRESS:
        lease = result.record.lease_until_ms if result.record else None
        raise MessageInProgressError(key, lease)
    return result.outcome is ClaimOutcome.COMPLETE


def complete_update(
    aws: AWS,
    key: RecordKey,
    result: Any = None,
    *,
    task: bool = False,
    drop_result: bool = False,
    task_text: str | None = None,
) -> dict[str, Any]:
    """The UpdateItem parameters that mark a record complete (once: conditional).

    A handler's non-None ``result`` is stored (as JSON text) in the same write, unless it is
    too large for the record (or ``drop_result``: DynamoDB refused the item's size): it is then
    dropped with a warning, and ``resultDropped`` holds its size in bytes. The write carries a
    fresh settle token (see :func:`landed`). A task's ``task_text`` (its value as JSON, when
    small) is kept beside its result, for ``iter_results``. A plain message's record is then kept
    ``completed_retention_seconds``; a task's keeps the expiry it was created with, its
    cluster's, so a late duplicate of the task always finds it while the cluster lives.
    """
    cfg = aws.config
    text = result_text(result, key)
    dropped = None
    if text is not None and (drop_result or len(text.encode()) > MAX_RESULT_BYTES):
        dropped, text = len(text.encode()), None
        _log_dropped(key, dropped)
    if drop_result:
        task_text = None
    extra = ", #r = :result" if text is not None else ""
    extra += ", resultDropped = :dropped" if dropped is not None else ""
    extra += ", #task = :task" if task_text is not None else ""
    expiry = "expiresAt = if_not_exists(expiresAt, :exp)" if task else "expiresAt = :exp"
    retention = cfg.record_ttl_seconds if task else cfg.completed_retention_seconds
    update: dict[str, Any] = {
        "TableName": cfg.table,
        "Key": key_item(key),
        "UpdateExpression": (
            "SET #s = :done, statusCode = :donec, completedAt = :stamp, updatedAt = :stamp, "
            f"{expiry}, #settle = :settle{extra} "
            "REMOVE leaseUntilMs, leaseOwner, claimToken"
        ),
        "ConditionExpression": "attribute_exists(pKey) AND #s <> :done",
        "ExpressionAttributeNames": {"#s": "status", "#settle": SETTLE_ATTRIBUTE},
        "ExpressionAttributeValues": {
            ":done": {"S": Status.COMPLETE.value},
            ":donec": {"N": str(int(StatusCode.COMPLETE))},
            ":stamp": {"S": now_iso()},
            ":exp": {"N": str(aws.now_ms() // 1000 + retention)},
            ":settle": {"S": new_token()},
        },
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    if text is not None:
        update["ExpressionAttributeNames"]["#r"] = "result"
        update["ExpressionAttributeValues"][":result"] = {"S": text}
    if dropped is not None:
        update["ExpressionAttributeValues"][":dropped"] = {"N": str(dropped)}
    if task_text is not None:
        update["ExpressionAttributeNames"]["#task"] = "task"
        update["ExpressionAttributeValues"][":task"] = {"S": task_text}
    return update


def stores_result(update: dict[str, Any]) -> bool:
    """Whether a completion ``update`` stores a result (one to drop if the item grows too big)."""
    return ":result" in update["ExpressionAttributeValues"]


def _log_dropped(key: RecordKey, size: int) -> None:
    logger.warning(
        "not storing the result of %s: %d bytes as JSON do not fit its record (DynamoDB's "
        "400 KB item limit); the message is complete, its record says resultDropped",
        key.p_key,
        size,
        extra={"record_key": key.to_dict(), "result_bytes": size},
    )


def landed(update: dict[str, Any], item: dict[str, Any] | None) -> bool:
    """Whether ``item`` (as it stood when ``update``'s condition failed) carries the settle
    token of ``update``: the write landed earlier, its answer was lost, and botocore's retry of
    the same request then failed the condition against that very write."""
    token = update["ExpressionAttributeValues"][":settle"]["S"]
    return item is not None and item.get(SETTLE_ATTRIBUTE, {}).get("S") == token


def result_text(result: Any, key: RecordKey) -> str | None:
    """The handler's result as JSON text; None (and a warning) when there is none or it is not
    JSON. The work is done either way, and an unstorable return value must not make the
    message fail forever."""
    if result is None:
        return None
    try:
        return dumps(result, field="result")
    except ValidationError as exc:
        logger.warning("not storing the result of %s: %s", key.p_key, exc)
        return None


async def complete_message(aws: AWS, key: RecordKey, result: Any = None) -> bool:
    """Mark a plain message complete; False if it already was (or its record is gone)."""
    update = None if aws.config.delete_completed else complete_update(aws, key, result)
    if update is None:
        deleted = await delete_if(
            aws,
            {
                "TableName": aws.config.table,
                "Key": key_item(key),
                "ConditionExpression": "attribute_exists(pKey)",
            },
        )
        return deleted.applied
    try:
        written = await update_if(aws, update)
    except Exception as exc:
        if not (item_too_large(exc) and stores_result(update)):
            raise
        update = complete_update(aws, key, result, drop_result=True)
        written = await update_if(aws, update)
    return written.applied or landed(update, written.item)


def error_entry(exc: BaseException, receive_count: int | None) -> ErrorEntry:
    """The error entry recorded for a failed attempt, with the end of its traceback when it
    was raised (an exception built but never raised has none)."""
    trace = None
    if exc.__traceback__ is not None:
        trace = traceback_text(exc)
    return ErrorEntry(
        type=type(exc).__name__,
        message=truncate_utf8(str(exc), MAX_ERROR_MESSAGE_BYTES),
        at=now_iso(),
        receive_count=receive_count,
        traceback=trace,
    )


TRACEBACK_HEADER = "Traceback (most recent call last):\n"


def traceback_text(exc: BaseException) -> str:
    """The exception's traceback as Python prints it, within ``MAX_TRACEBACK_BYTES``: its
    innermost frames (the outer ones are cut first) and a last line whose message is cut to
    a few hundred bytes (the entry's ``message`` has it at length)."""
    last = f"{type(exc).__name__}: {truncate_utf8(str(exc), 300)}\n"
    room = MAX_TRACEBACK_BYTES - len(TRACEBACK_HEADER) - len(last.encode())
    frames = "".join(traceback.format_tb(exc.__traceback__))
    return TRACEBACK_HEADER + tail_utf8(frames, room) + last


def bounded_append(entry: ErrorEntry, full: bool) -> tuple[str, str, dict[str, Any]]:
    """How to append ``entry`` to a record's bounded ``error`` list (``#e``): the SET clause,
    the ADD clause (empty, or counting a dropped entry) and their values.

    While there is room the entry is appended; with the list at ``ERRORS_KEPT`` (``full``), the
    first entry stays, the latest ones shift down over the oldest of them, the entry goes last
    and ``errorsDropped`` counts the one dropped. Pair it with :func:`error_list_clause`.
    """
    values: dict[str, Any] = {":cap": {"N": str(ERRORS_KEPT)}}
    if full:
        shifts = [f"#e[{i}] = #e[{i + 1}]" for i in range(1, ERRORS_KEPT - 1)]
        values[":entry"] = error_attr(entry)
        values[":one"] = {"N": "1"}
        return (
            ", ".join([*shifts, f"#e[{ERRORS_KEPT - 1}] = :entry"]),
            " ADD errorsDropped :one",
            values,
        )
    values[":empty"] = {"L": []}
    values[":entry"] = {"L": [error_attr(entry)]}
    return "#e = list_append(if_not_exists(#e, :empty), :entry)", "", values


def error_list_clause(full: bool) -> str:
    """The condition on the ``error`` list's length that goes with :func:`fail_update`'s form:
    room left to append (``full`` False), or at its cap (``full`` True)."""
    return "size(#e) >= :cap" if full else "(attribute_not_exists(#e) OR size(#e) < :cap)"


def error_list_full(item: dict[str, Any] | None) -> bool:
    """Whether ``item`` (a raw record, as a refused write returned it) has its ``error`` list at
    the cap: the refusal may be only that, so the write is worth trying in its full form."""
    return item is not None and len(item.get("error", {}).get("L", [])) >= ERRORS_KEPT


def fail_update(
    aws: AWS,
    key: RecordKey,
    entry: ErrorEntry,
    *,
    final: bool,
    owner: str,
    full: bool = False,
    task_text: str | None = None,
) -> dict[str, Any]:
    """UpdateItem parameters recording a failure and releasing the lease.

    Only the delivery holding the lease (or none) may fail the record: a delivery whose lease
    expired and was taken over must not release the new owner's lease. The write carries a
    fresh settle token and is conditional on its absence, so a retry of a write that landed
    does not append the error twice (see :func:`landed`).

    The ``error`` list is bounded (``ERRORS_KEPT``): this form appends while there is room;
    refused with the list at its cap (:func:`error_list_full`), the ``full`` form keeps the
    first entry, shifts the latest ones down over the oldest of them, puts this one last and
    counts the dropped one in ``errorsDropped``. A task failed for good keeps its
    ``task_text`` (its value as JSON, when small), so a redrive can send it again.
    """
    code = StatusCode.STOPPED if final else StatusCode.ERROR
    values: dict[str, Any] = {
        ":err": {"S": Status.ERROR.value},
        ":errc": {"N": str(int(code))},
        ":done": {"S": Status.COMPLETE.value},
        ":stamp": {"S": entry.at},
        ":exp": {"N": str(aws.now_ms() // 1000 + aws.config.record_ttl_seconds)},
        ":owner": {"S": owner},
        ":settle": {"S": new_token()},
    }
    append, dropped, entry_values = bounded_append(entry, full)
    values.update(entry_values)
    names = {"#s": "status", "#e": "error", "#settle": SETTLE_ATTRIBUTE}
    kept = ""
    if task_text is not None:
        kept, values[":task"], names["#task"] = ", #task = :task", {"S": task_text}, "task"
    return {
        "TableName": aws.config.table,
        "Key": key_item(key),
        "UpdateExpression": (
            "SET #s = :err, statusCode = :errc, updatedAt = :stamp, expiresAt = :exp, "
            f"{append}, #settle = :settle{kept} "
            f"REMOVE leaseUntilMs, leaseOwner, claimToken{dropped}"
        ),
        "ConditionExpression": (
            "attribute_exists(pKey) AND #s <> :done AND "
            "(attribute_not_exists(leaseOwner) OR leaseOwner = :owner) AND "
            "(attribute_not_exists(#settle) OR #settle <> :settle) AND "
            f"{error_list_clause(full)}"
        ),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }


async def fail_message(
    aws: AWS, message: ReceivedMessage[Any], exc: BaseException, *, final: bool = False
) -> bool:
    """Append the error to the record, set ``ERROR`` and release this delivery's lease."""
    entry = error_entry(exc, message.receive_count)
    owner = lease_owner(message)
    update = fail_update(aws, message.key, entry, final=final, owner=owner)
    written = await update_if(aws, update)
    if not written.applied and error_list_full(written.item):
        update = fail_update(aws, message.key, entry, final=final, owner=owner, full=True)
        written = await update_if(aws, update)
    return written.applied or landed(update, written.item)
