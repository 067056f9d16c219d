"""The concurrent write-then-send pipeline of outgoing messages.

Records are always written (BatchWriteItem, 25 a call) before their messages are sent
(SendMessageBatch, 10 a call), so a consumer never receives a message whose record is missing.
Entries are matched to SQS results by ``Id``, never by position.

A message sent with an idempotency key has a record key derived from it: its record is
written with a conditional PutItem (the only write that can tell "new" from "there"), and once
SQS accepted the message a second write sets ``sentAt``. A later send under the key that
finds ``sentAt`` (or a consumer's claim) sends nothing; one that finds the record without it
(the first send died between the two) sends the message again, and the consumer's claim
absorbs the copy, since both carry the same record key.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from .._aws.clients import AWS, error_code
from .._aws.conditional import Written, put_if, update_if
from .._aws.retry import sleep_backoff
from .._aws.sqs import MISSING_QUEUE_CODES
from .._concurrency import chunked, run_bounded
from .._errors import ConflictError, ValidationError
from .._observe import with_trace
from .._records.codec import key_item, now_iso
from .._records.model import RecordKey, Status
from .._records.store import get_raw, get_records
from .errors import IdempotencyConflictError, PartialSendError
from .outgoing import (
    IDEMPOTENCY_ATTRIBUTE,
    MAX_MESSAGE_BYTES,
    SENT_ATTRIBUTE,
    Prepared,
    SentKeys,
    Sizing,
    prepare_message,
)
from .payloads import store_payload

logger = logging.getLogger("sqs_cluster")

SQS_BATCH = 10
MAX_BATCH_BYTES = MAX_MESSAGE_BYTES
"""SendMessageBatch's limit on the sum of its entries' sizes (as on one message)."""
DDB_BATCH = 25
UNIT = 50  # entries per pipeline step: two BatchWriteItem calls, then five SendMessageBatch calls

Progress = Callable[[int], None]
"""Called with the number of entries just confirmed sent."""


@dataclass
class SendOutcome:
    """Which entries (by index) were sent, and why the others were not; ``already_sent``:
    those of ``sent`` whose idempotency key had been sent before (nothing sent for them)."""

    sent: dict[int, RecordKey] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)
    sent_count: int = 0
    already_sent: set[int] = field(default_factory=set)


async def send_one(aws: AWS, queue_url: str, prepared: Prepared) -> None:
    """``send_message``: the record (PutItem), then the message (SendMessage).

    The record's key is new to this call, so a refused write can only have met this call's own
    write, landed by an attempt whose answer was lost: checked, then taken as written.
    """
    put = await _put_new(aws, prepared)
    if not put.applied and put.item != prepared.item:
        raise ConflictError(
            f"send_message: a record with the new key {prepared.key} exists and is not "
            "the one this call wrote; nothing was sent"
        )
    await _deliver(aws, queue_url, prepared)


async def send_keyed(aws: AWS, queue_url: str, prepared: Prepared) -> bool:
    """Send a message under a key derived from what it is about (a cluster's completion):
    its record is written once; a second call finds it and sends the message again, which
    the consumer's claim recognises as a duplicate. True when this call wrote the record."""
    put = await _put_new(aws, prepared)
    await _deliver(aws, queue_url, prepared)
    return put.applied


class Found(str, Enum):
    """What an idempotent send found under its record key."""

    TO_SEND = "to_send"
    """The record is new, or its message was never confirmed sent: send it."""
    SENT = "sent"
    """The message was confirmed sent (``sentAt``) or a consumer claimed it: send nothing."""
    CONFLICT = "conflict"
    """The record is another message's (its digest differs): an error."""


async def reserve(aws: AWS, prepared: Prepared) -> Found:
    """Write an idempotent send's record unless its key has one; say what is left to do.

    A refused write returns the record as it stood: the digest of what it was sent with
    decides between the same message and another one. A write that landed but whose answer
    was lost, then refused on botocore's retry, finds its own record: still to send.
    """
    put = await _put_new(aws, prepared)
    if put.applied:
        return Found.TO_SEND
    item = put.item
    if item is None:
        item = await get_raw(aws, prepared.key, consistent_read=True)
    if item is None:  # there, then gone: settled and deleted (delete_completed), or expired
        return Found.SENT
    if item.get(IDEMPOTENCY_ATTRIBUTE) != prepared.item[IDEMPOTENCY_ATTRIBUTE]:
        return Found.CONFLICT
    unclaimed = item.get("status") == {"S": Status.PRE_FLIGHT.value}
    return Found.TO_SEND if unclaimed and SENT_ATTRIBUTE not in item else Found.SENT


async def mark_sent(aws: AWS, prepared: Prepared) -> None:
    """Set ``sentAt`` on an idempotent send's record once SQS accepted its message.

    Only if the record still exists (a consumer may have completed and deleted it already).
    A failure is logged, not raised: the message was sent, and a retry that sends it again
    is a duplicate the consumer's claim absorbs.
    """
    try:
        await update_if(
            aws,
            {
                "TableName": aws.config.table,
                "Key": key_item(prepared.key),
                "UpdateExpression": f"SET {SENT_ATTRIBUTE} = if_not_exists({SENT_ATTRIBUTE}, :now)",
                "ConditionExpression": "attribute_exists(pKey)",
                "ExpressionAttributeValues": {":now": {"S": now_iso()}},
            },
        )
    except Exception as exc:
        logger.warning(
            "message %s was sent, but marking it sent failed (%s: %s): a retry under its "
            "idempotency key sends it again, and its consumer's claim skips the copy",
            prepared.key.id,
            type(exc).__name__,
            exc,
            extra={"record_key": prepared.key.to_dict()},
        )


async def send_once(aws: AWS, queue_url: str, prepared: Prepared) -> bool:
    """``send_message`` with an idempotency key: the record (unless there), the message
    (unless confirmed sent), then ``sentAt``. True when it had been sent: nothing was sent.

    Raises :class:`IdempotencyConflictError` when the key's record is another message's.
    """
    assert prepared.idempotency_key is not None
    found = await reserve(aws, prepared)
    if found is Found.CONFLICT:
        raise IdempotencyConflictError("idempotency_key", prepared.idempotency_key, prepared.key)
    if found is Found.SENT:
        logger.info(
            "message %s was sent to %s before under its idempotency key: not sent again",
            prepared.key.id,
            queue_url,
            extra={"record_key": prepared.key.to_dict(), "already_sent": True},
        )
        return True
    await _deliver(aws, queue_url, prepared)
    await mark_sent(aws, prepared)
    return False


async def _put_new(aws: AWS, prepared: Prepared) -> Written:
    """PutItem the record unless one exists under its key (then the item as it stood)."""
    return await put_if(
        aws,
        {
            "TableName": aws.config.table,
            "Item": prepared.item,
            "ConditionExpression": "attribute_not_exists(pKey)",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        },
    )


async def _deliver(aws: AWS, queue_url: str, prepared: Prepared) -> None:
    """Store an offloaded body, then send the message that points at it (or carries it)."""
    if prepared.payload is not None:
        await store_payload(aws, *prepared.payload)
    entry = prepared.entry
    traceparent = aws.observe.traceparent()  # the producer's span, when tracing is on
    if traceparent is not None:
        entry = with_trace(entry, traceparent, prepared.room)
    async with aws.slot():
        await aws.sqs.send_message(QueueUrl=queue_url, **entry)


async def write_records(aws: AWS, batch: list[Prepared]) -> dict[int, str]:
    """BatchWriteItem one chunk (≤ 25), retrying UnprocessedItems; returns failed indexes."""
    table = aws.config.table
    pending = {_key_of(p.item): p for p in batch}
    last_error = "UnprocessedItems after retries"
    for attempt in range(aws.config.partial_retry_attempts):
        if attempt:
            await sleep_backoff(attempt)
        requests = [{"PutRequest": {"Item": p.item}} for p in pending.values()]
        try:
            async with aws.slot():
                resp = await aws.ddb.batch_write_item(RequestItems={table: requests})  # type: ignore[dict-item]
        except Exception as exc:
            if error_code(exc) in {"ResourceNotFoundException", "ValidationException"}:
                raise
            last_error = f"{type(exc).__name__}: {exc}"
            continue
        unprocessed = resp.get("UnprocessedItems", {}).get(table, [])
        pending = {k: pending[k] for k in (_key_of(r["PutRequest"]["Item"]) for r in unprocessed)}
        if not pending:
            return {}
    return {p.index: last_error for p in pending.values()}


def _key_of(item: Mapping[str, Any]) -> tuple[str, str]:
    return (item["pKey"]["S"], item["rKey"]["S"])


async def send_batch(aws: AWS, queue_url: str, batch: list[Prepared]) -> dict[int, str]:
    """SendMessageBatch one chunk (≤ 10), retrying non-sender failures; returns failed indexes.

    An entry refused with ``SenderFault: true`` is refused for good: it is not retried, and it
    stays failed whatever later attempts of the other entries answer.
    """
    pending = {str(p.index): p for p in batch}
    refused: dict[int, str] = {}  # SenderFault: never retried, never forgotten
    failed: dict[int, str] = {}  # the last attempt's retryable failures
    traceparent = aws.observe.traceparent()  # one context for every entry of the call
    for attempt in range(aws.config.partial_retry_attempts):
        if attempt:
            await sleep_backoff(attempt)
        entries = _batch_entries(pending, traceparent)
        try:
            async with aws.slot():
                resp = await aws.sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        except Exception as exc:
            if error_code(exc) in MISSING_QUEUE_CODES:
                raise
            failed = {p.index: f"{type(exc).__name__}: {exc}" for p in pending.values()}
            continue
        retry: dict[str, Prepared] = {}
        failed = {}
        for fault in resp.get("Failed", []):
            prepared = pending[fault["Id"]]
            message = f"{fault.get('Code')}: {fault.get('Message', '')}".strip()
            if fault.get("SenderFault"):
                refused[prepared.index] = message
            else:
                retry[fault["Id"]] = prepared
                failed[prepared.index] = message
        pending = retry
        if not pending:
            break
    return {**failed, **refused}


def _batch_entries(pending: Mapping[str, Prepared], traceparent: str | None) -> list[Any]:
    """The SendMessageBatch entries, each carrying ``traceparent`` when tracing is on."""
    if traceparent is None:
        return [{"Id": i, **p.entry} for i, p in pending.items()]
    return [{"Id": i, **with_trace(p.entry, traceparent, p.room)} for i, p in pending.items()]


async def store_payloads(aws: AWS, batch: list[Prepared]) -> dict[int, str]:
    """Store the offloaded bodies of entries about to be sent; returns the failed indexes.

    An entry whose payload could not be stored is not sent (it is reported unsent, and a
    resend stores it again); the others go on.
    """
    offloaded = [p for p in batch if p.payload is not None]
    if not offloaded:
        return {}

    async def one(prepared: Prepared) -> tuple[int, str] | None:
        assert prepared.payload is not None
        try:
            await store_payload(aws, *prepared.payload)
        except Exception as exc:
            return prepared.index, f"storing the payload failed: {type(exc).__name__}: {exc}"
        return None

    results = await asyncio.gather(*(one(p) for p in offloaded))
    return dict(r for r in results if r is not None)


def pack_sqs_batches(items: list[Prepared]) -> list[list[Prepared]]:
    """Split into SendMessageBatch calls of ≤ 10 entries and ≤ 1 MiB each."""
    batches: list[list[Prepared]] = []
    current: list[Prepared] = []
    size = 0
    for item in items:
        if current and (len(current) == SQS_BATCH or size + item.size > MAX_BATCH_BYTES):
            batches.append(current)
            current, size = [], 0
        current.append(item)
        size += item.size
    if current:
        batches.append(current)
    return batches


@dataclass
class Unit:
    """One pipeline step: records to write, then messages to send (normally the same entries).

    ``number`` identifies the step (the entries' index // UNIT) so progress can be persisted.
    """

    number: int
    write: list[Prepared]
    send: list[Prepared]


UnitHook = Callable[[Unit, dict[int, str]], Awaitable[None]]
"""Called after a unit ran, with the unit and the entries (index -> error) that failed."""

Gate = Callable[[Unit, list[Prepared]], Awaitable[str | None]]
"""Called with a unit and the entries about to be written or sent: None lets them go on, a
reason holds them back (they then count as failed with that reason)."""


def plain_units(prepared: Iterable[Prepared]) -> Iterator[Unit]:
    """Chunk entries into units of ``UNIT`` where every entry is both written and sent."""
    for number, items in enumerate(chunked(prepared, UNIT)):
        yield Unit(number, items, items)


async def write_then_send(
    aws: AWS,
    queue_url: str,
    units: Iterable[Unit] | AsyncIterable[Unit],
    *,
    progress: Progress | None = None,
    resolve: Callable[[Unit], Awaitable[Unit]] | None = None,
    before_write: Gate | None = None,
    before_send: Gate | None = None,
    after_unit: UnitHook | None = None,
    collect_keys: bool = True,
) -> SendOutcome:
    """Run units concurrently (bounded): each writes its records, then sends its messages.

    Units are pulled lazily, so memory stays bounded by the concurrency; ``collect_keys=False``
    keeps only counts and failures in the outcome (for very large fan-outs). ``before_write``
    and ``before_send`` may hold a unit back before its records are written, or before the
    entries whose records were written are sent (see :data:`Gate`).
    """
    outcome = SendOutcome()

    async def run(unit: Unit) -> None:
        if resolve is not None:
            unit = await resolve(unit)
        failed: dict[int, str] = {}
        held = await before_write(unit, unit.write) if before_write and unit.write else None
        if held is not None:
            failed = {p.index: held for p in unit.send}
        writes = [] if held is not None else chunked(unit.write, DDB_BATCH)
        for result in await _gather(write_records(aws, c) for c in writes):
            failed.update(result)
        ready = [p for p in unit.send if p.index not in failed]
        held = await before_send(unit, ready) if before_send and ready else None
        if held is not None:
            failed.update((p.index, held) for p in ready)
            ready = []
        stored = await store_payloads(aws, ready)
        if stored:
            failed.update(stored)
            ready = [p for p in ready if p.index not in stored]
        for result in await _gather(send_batch(aws, queue_url, b) for b in pack_sqs_batches(ready)):
            failed.update(result)
        if after_unit is not None:
            await after_unit(unit, failed)
        outcome.failed.update(failed)
        done = [p for p in ready if p.index not in failed]
        outcome.sent_count += len(done)
        if collect_keys:
            outcome.sent.update((p.index, p.key) for p in done)
        if progress is not None and done:
            progress(len(done))

    workers = max(1, aws.config.max_concurrency // 2)
    await run_bounded(units, run, concurrency=workers)
    return outcome


async def _gather(coros: Iterable[Awaitable[dict[int, str]]]) -> list[dict[int, str]]:
    return list(await asyncio.gather(*coros))


@dataclass
class Reserved:
    """What the idempotent entries of a batch found: ``sent`` (already, by index), ``failed``
    (their record could not be written) and ``conflicts`` (another message's records)."""

    sent: dict[int, RecordKey] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)
    conflicts: list[Prepared] = field(default_factory=list)


async def reserve_all(aws: AWS, entries: list[Prepared]) -> Reserved:
    """:func:`reserve` each idempotent entry, concurrently (one conditional PutItem each)."""
    reserved = Reserved()

    async def one(prepared: Prepared) -> None:
        try:
            found = await reserve(aws, prepared)
        except Exception as exc:
            if error_code(exc) in {"ResourceNotFoundException", "ValidationException"}:
                raise
            reserved.failed[prepared.index] = (
                f"writing the record failed: {type(exc).__name__}: {exc}"
            )
            return
        if found is Found.SENT:
            reserved.sent[prepared.index] = prepared.key
        elif found is Found.CONFLICT:
            reserved.conflicts.append(prepared)

    await run_bounded(entries, one, concurrency=aws.config.max_concurrency)
    return reserved


def conflict_error(conflicts: list[Prepared]) -> IdempotencyConflictError:
    """The error naming every entry whose key's record is another message's."""
    ordered = sorted(conflicts, key=lambda p: p.index)
    first = ordered[0]
    return IdempotencyConflictError(
        f"entries[{first.index}].idempotency_key",
        first.idempotency_key or "",
        first.key,
        [p.index for p in ordered],
    )


def keyed_units(prepared: Iterable[Prepared]) -> Iterator[Unit]:
    """Units where only entries without an idempotency key are written (the others' records
    were written by :func:`reserve_all`) and every entry is sent."""
    for number, items in enumerate(chunked(prepared, UNIT)):
        yield Unit(number, [p for p in items if p.idempotency_key is None], items)


async def send_entries(
    aws: AWS,
    queue_url: str,
    prepared: list[Prepared],
    *,
    progress: Progress | None = None,
    resolve: Callable[[Unit], Awaitable[Unit]] | None = None,
) -> SendOutcome:
    """Send a batch's entries; those with an idempotency key are reserved first.

    Without such entries this is :func:`write_then_send` alone: no request more. With them,
    each is reserved (:func:`reserve_all`); one whose key is another message's raises
    :class:`IdempotencyConflictError` before any message is sent, one found sent is reported
    in ``already_sent`` (and counted by ``progress``), and the rest go through the pipeline,
    where each idempotent entry accepted by SQS gets ``sentAt``.
    """
    keyed = [p for p in prepared if p.idempotency_key is not None]
    if not keyed:
        return await write_then_send(
            aws, queue_url, plain_units(prepared), progress=progress, resolve=resolve
        )
    reserved = await reserve_all(aws, keyed)
    if reserved.conflicts:
        raise conflict_error(reserved.conflicts)
    done = reserved.sent.keys() | reserved.failed.keys()

    async def mark(unit: Unit, failed: dict[int, str]) -> None:
        sent = [p for p in unit.send if p.idempotency_key is not None and p.index not in failed]
        await asyncio.gather(*(mark_sent(aws, p) for p in sent))

    outcome = await write_then_send(
        aws,
        queue_url,
        keyed_units(p for p in prepared if p.index not in done),
        progress=progress,
        resolve=resolve,
        after_unit=mark,
    )
    outcome.failed.update(reserved.failed)
    outcome.sent.update(reserved.sent)
    outcome.sent_count += len(reserved.sent)
    outcome.already_sent.update(reserved.sent)
    if reserved.sent:
        _log_already_sent(queue_url, sorted(reserved.sent), len(prepared))
        if progress is not None:
            progress(len(reserved.sent))
    return outcome


def _log_already_sent(queue_url: str, indexes: list[int], total: int) -> None:
    logger.info(
        "%d of %d entries were sent to %s before under their idempotency keys: not sent again",
        len(indexes),
        total,
        queue_url,
        extra={"queue_url": queue_url, "already_sent": indexes},
    )


async def resend_unsent(
    aws: AWS,
    error: PartialSendError,
    *,
    progress: Progress | None = None,
    sizing: Sizing | None = None,
) -> SentKeys:
    """Send the entries ``error`` lists as not sent, under their record keys.

    Their records are read first (BatchGetItem): a record that exists is not written again,
    and an entry whose record a consumer has already claimed was delivered, so it is not sent
    again. An entry with an idempotency key is reserved as in the first send instead. Returns
    the keys of the whole original batch in order, or raises PartialSendError again, with the
    original indexes, for the entries that still fail.
    """
    queue_url = error.queue_url
    if queue_url is None or set(error.unsent) != set(error.failed):
        raise ValidationError(
            "error",
            "this PartialSendError does not carry its unsent entries; only one raised by "
            "send_message_batch or resend_unsent can be resent",
        )
    total = len(error.sent) + len(error.failed)
    prepared = [
        prepare_message(
            index,
            queue_url,
            unsent.message,
            meta_text=unsent.meta_json,
            ttl_seconds=aws.config.record_ttl_seconds,
            field_name=f"entries[{index}]",
            key=unsent.key,
            validated=True,
            meta_bytes=len(unsent.meta_json.encode()) if unsent.meta_json else 0,
            sizing=sizing,
        )
        for index, unsent in sorted(error.unsent.items())
    ]
    delivered: dict[int, RecordKey] = {}

    async def resolve(unit: Unit) -> Unit:  # the entries to write: those without a key
        if not unit.write:
            return unit
        records = await get_records(aws, [p.key for p in unit.write], consistent_read=True)
        pairs = list(zip(unit.write, records, strict=True))
        claimed = {p.index for p, r in pairs if r is not None and r.status is not Status.PRE_FLIGHT}
        delivered.update((p.index, p.key) for p, _ in pairs if p.index in claimed)
        write = [p for p, r in pairs if r is None]
        send = [p for p in unit.send if p.index not in claimed]
        return Unit(unit.number, write, send)

    outcome = await send_entries(aws, queue_url, prepared, progress=progress, resolve=resolve)
    sent = {**error.sent, **delivered, **outcome.sent}
    already = error.already_sent | outcome.already_sent
    if outcome.failed:
        unsent = {i: replace(error.unsent[i], error=err) for i, err in outcome.failed.items()}
        raise PartialSendError(
            sent, outcome.failed, queue_url=queue_url, unsent=unsent, already_sent=already
        )
    return SentKeys((sent[i] for i in range(total)), already)
