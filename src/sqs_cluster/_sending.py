"""Outgoing messages: validation, record items and the concurrent write-then-send pipeline.

Records are always written (BatchWriteItem, 25 a call) before their messages are sent
(SendMessageBatch, 10 a call), so a consumer never receives a message whose record is missing.
Entries are matched to SQS results by ``Id``, never by position.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._aws import AWS, error_code
from ._codec import dumps, now_iso
from ._concurrency import chunked, run_bounded
from ._errors import ValidationError
from ._queue_ops import MISSING_QUEUE_CODES
from ._records import RecordKey, RecordType, Status, StatusCode
from ._retry import sleep_backoff

KEY_ATTRIBUTE = "sqsClusterKey"
MAX_MESSAGE_ATTRIBUTES = 10
MAX_MESSAGE_BYTES = 262_144
MAX_BATCH_BYTES = 262_144
SQS_BATCH = 10
DDB_BATCH = 25
UNIT = 50  # entries per pipeline step: two BatchWriteItem calls, then five SendMessageBatch calls
RETRYABLE_SQS_CODES = {
    "ServiceUnavailable",
    "InternalError",
    "ThrottlingException",
    "RequestThrottled",
}

Progress = Callable[[int], None]
"""Called with the number of entries just confirmed sent."""


@dataclass(frozen=True)
class Message:
    """An outgoing message with per-message SQS parameters (for ``send_message_batch``)."""

    body: Any
    delay_seconds: int | None = None
    message_group_id: str | None = None
    message_deduplication_id: str | None = None
    message_attributes: Mapping[str, Any] | None = None


@dataclass
class Prepared:
    """One validated entry: its record item and its SQS batch entry (``Id`` added at send)."""

    index: int
    key: RecordKey
    item: dict[str, Any]
    entry: dict[str, Any]
    size: int


@dataclass
class SendOutcome:
    """Which entries (by index) were sent, and why the others were not."""

    sent: dict[int, RecordKey] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)
    sent_count: int = 0


def validate_queue_url(queue_url: Any, field_name: str = "queue_url") -> str:
    """Accept an SQS queue URL (``http(s)://host/<account>/<name>``)."""
    if not isinstance(queue_url, str) or not queue_url.startswith(("https://", "http://")):
        raise ValidationError(field_name, f"expected an SQS queue URL, got {queue_url!r}")
    parts = queue_url.rstrip("/").split("/")
    if len(parts) < 5 or not parts[-1] or not parts[-2]:
        raise ValidationError(
            field_name,
            f"expected https://sqs.<region>.amazonaws.com/<account>/<name>, got {queue_url!r}",
        )
    return queue_url


def _fast_dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def body_text(body: Any, field_name: str) -> str:
    """A string body is sent as it is; any other JSON value is serialised."""
    return body if isinstance(body, str) else dumps(body, field=field_name)


def message_attributes(
    given: Mapping[str, Any] | None, key: RecordKey, field_name: str
) -> dict[str, Any]:
    """The caller's attributes plus the record-key attribute (SQS allows 10 in all)."""
    attrs = dict(given or {})
    if KEY_ATTRIBUTE in attrs:
        raise ValidationError(field_name, f"attribute name {KEY_ATTRIBUTE!r} is reserved")
    if len(attrs) >= MAX_MESSAGE_ATTRIBUTES:
        raise ValidationError(
            field_name,
            f"{len(attrs)} message attributes given; SQS allows {MAX_MESSAGE_ATTRIBUTES} and "
            "sqs-cluster needs one for the record key, "
            f"so pass at most {MAX_MESSAGE_ATTRIBUTES - 1}",
        )
    key_json = json.dumps(key.to_dict(), separators=(",", ":"), ensure_ascii=False)
    attrs[KEY_ATTRIBUTE] = {"DataType": "String", "StringValue": key_json}
    return attrs


def _attributes_size(attrs: Mapping[str, Any]) -> int:
    size = 0
    for name, value in attrs.items():
        size += len(name.encode()) + len(str(value.get("DataType", "")).encode())
        size += len(str(value.get("StringValue", "")).encode()) + len(value.get("BinaryValue", b""))
    return size


def record_item(
    key: RecordKey,
    *,
    record_type: RecordType,
    queue_url: str,
    body: str,
    meta_text: str | None,
    ttl_seconds: int,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    # ``extra`` holds ready DynamoDB attribute values (the hot path of a fan-out builds them
    # once, not through the generic serializer per item)
    """The DynamoDB item of a fresh (``PRE FLIGHT``) record."""
    stamp = now_iso()
    item: dict[str, Any] = {
        "pKey": {"S": key.p_key},
        "rKey": {"S": key.r_key},
        "id": {"S": key.id},
        "type": {"S": record_type.value},
        "url": {"S": queue_url},
        "status": {"S": Status.PRE_FLIGHT.value},
        "statusCode": {"N": str(int(StatusCode.PRE_FLIGHT))},
        "startedAt": {"S": stamp},
        "updatedAt": {"S": stamp},
        "expiresAt": {"N": str(int(time.time()) + ttl_seconds)},
        "consumptionCount": {"N": "0"},
        "body": {"S": body},
    }
    if meta_text is not None:
        item["meta"] = {"S": meta_text}
    item.update(extra or {})
    return item


def prepare_message(
    index: int,
    queue_url: str,
    message: Any,
    *,
    meta_text: str | None,
    ttl_seconds: int,
    field_name: str,
    key: RecordKey | None = None,
    record_type: RecordType = RecordType.MESSAGE,
    extra: Mapping[str, Any] | None = None,
    max_bytes: int = MAX_MESSAGE_BYTES,
    validated: bool = False,
) -> Prepared:
    """Validate one outgoing message and build its record item and batch entry."""
    out = message if isinstance(message, Message) else Message(body=message)
    key = key or RecordKey.for_message(uuid.uuid4().hex, queue_url)
    if validated:  # checked already (a cluster validates every task first): serialise once
        text = out.body if isinstance(out.body, str) else _fast_dumps(out.body)
    else:
        text = body_text(
            out.body, f"{field_name}.body" if isinstance(message, Message) else field_name
        )
    attrs = message_attributes(out.message_attributes, key, f"{field_name}.message_attributes")
    size = len(text.encode()) + _attributes_size(attrs)
    if size > max_bytes:
        raise ValidationError(
            field_name, f"message is {size} bytes; the queue's limit is {max_bytes} bytes"
        )
    entry: dict[str, Any] = {"MessageBody": text, "MessageAttributes": attrs}
    if out.delay_seconds is not None:
        entry["DelaySeconds"] = out.delay_seconds
    if out.message_group_id is not None:
        entry["MessageGroupId"] = out.message_group_id
    if out.message_deduplication_id is not None:
        entry["MessageDeduplicationId"] = out.message_deduplication_id
    item = record_item(
        key,
        record_type=record_type,
        queue_url=queue_url,
        body=text,
        meta_text=meta_text,
        ttl_seconds=ttl_seconds,
        extra=extra,
    )
    return Prepared(index=index, key=key, item=item, entry=entry, size=size)


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
    """SendMessageBatch one chunk (≤ 10), retrying non-sender failures; returns failed indexes."""
    pending = {str(p.index): p for p in batch}
    failed: dict[int, str] = {}
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
                failed[prepared.index] = message
            else:
                retry[fault["Id"]] = prepared
                failed[prepared.index] = message
        pending = retry
        if not pending:
            break
    return failed


def pack_sqs_batches(items: list[Prepared]) -> list[list[Prepared]]:
    """Split into SendMessageBatch calls of ≤ 10 entries and ≤ 256 KiB each."""
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
    after_unit: UnitHook | None = None,
    collect_keys: bool = True,
) -> SendOutcome:
    """Run units concurrently (bounded): each writes its records, then sends its messages.

    Units are pulled lazily, so memory stays bounded by the concurrency; ``collect_keys=False``
    keeps only counts and failures in the outcome (for very large fan-outs).
    """
    outcome = SendOutcome()

    async def run(unit: Unit) -> None:
        if resolve is not None:
            unit = await resolve(unit)
        failed: dict[int, str] = {}
        for result in await _gather(write_records(aws, c) for c in chunked(unit.write, DDB_BATCH)):
            failed.update(result)
        ready = [p for p in unit.send if p.index not in failed]
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
