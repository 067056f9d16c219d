"""The concurrent write-then-send pipeline of outgoing messages.

Records are always written (BatchWriteItem, 25 a call) before their messages are sent
(SendMessageBatch, 10 a call), so a consumer never receives a message whose record is missing.
Entries are matched to SQS results by ``Id``, never by position.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .._aws.clients import AWS, error_code
from .._aws.conditional import Written, put_if
from .._aws.retry import sleep_backoff
from .._aws.sqs import MISSING_QUEUE_CODES
from .._concurrency import chunked, run_bounded
from .._errors import ConflictError, ValidationError
from .._records.model import RecordKey, Status
from .._records.store import get_records
from .errors import PartialSendError
from .outgoing import MAX_MESSAGE_BYTES, Prepared, Sizing, prepare_message
from .payloads import store_payload

SQS_BATCH = 10
MAX_BATCH_BYTES = MAX_MESSAGE_BYTES
"""SendMessageBatch's limit on the sum of its entries' sizes (as on one message)."""
DDB_BATCH = 25
UNIT = 50  # entries per pipeline step: two BatchWriteItem calls, then five SendMessageBatch calls

Progress = Callable[[int], None]
"""Called with the number of entries just confirmed sent."""


@dataclass
class SendOutcome:
    """Which entries (by index) were sent, and why the others were not."""

    sent: dict[int, RecordKey] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)
    sent_count: int = 0


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
    async with aws.slot():
        await aws.sqs.send_message(QueueUrl=queue_url, **prepared.entry)


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
    for attempt in range(aws.config.partial_retry_attempts):
        if attempt:
            await sleep_backoff(attempt)
        entries = [{"Id": i, **p.entry} for i, p in pending.items()]
        try:
            async with aws.slot():
                resp = await aws.sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)  # type: ignore[arg-type]
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
    units: Iterable[Unit],
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


async def resend_unsent(
    aws: AWS,
    error: PartialSendError,
    *,
    progress: Progress | None = None,
    sizing: Sizing | None = None,
) -> list[RecordKey]:
    """Send the entries ``error`` lists as not sent, under their record keys.

    Their records are read first (BatchGetItem): a record that exists is not written again,
    and an entry whose record a consumer has already claimed was delivered, so it is not sent
    again. Returns the keys of the whole original batch in order, or raises PartialSendError
    again, with the original indexes, for the entries that still fail.
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

    async def resolve(unit: Unit) -> Unit:
        records = await get_records(aws, [p.key for p in unit.write], consistent_read=True)
        pairs = list(zip(unit.write, records, strict=True))
        claimed = {p.index for p, r in pairs if r is not None and r.status is not Status.PRE_FLIGHT}
        delivered.update((p.index, p.key) for p, _ in pairs if p.index in claimed)
        write = [p for p, r in pairs if r is None]
        send = [p for p, _ in pairs if p.index not in claimed]
        return Unit(unit.number, write, send)

    outcome = await write_then_send(
        aws, queue_url, plain_units(prepared), progress=progress, resolve=resolve
    )
    sent = {**error.sent, **delivered, **outcome.sent}
    if outcome.failed:
        unsent = {i: replace(error.unsent[i], error=err) for i, err in outcome.failed.items()}
        raise PartialSendError(sent, outcome.failed, queue_url=queue_url, unsent=unsent)
    return [sent[i] for i in range(total)]
