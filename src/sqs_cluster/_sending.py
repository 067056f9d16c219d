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
from dataclasses import dataclass, field, replace
from typing import Any

from ._aws import AWS, error_code
from ._codec import dumps, now_iso
from ._concurrency import chunked, run_bounded
from ._errors import PartialSendError, ValidationError
from ._limits import MAX_RECORD_DATA_BYTES
from ._queue_ops import MISSING_QUEUE_CODES
from ._records import RecordKey, RecordType, Status, StatusCode
from ._retry import sleep_backoff
from ._store import get_records

KEY_ATTRIBUTE = "sqsClusterKey"
KEY_ATTRIBUTE_OVERHEAD = len(KEY_ATTRIBUTE) + len("String")
"""Bytes the key attribute's name and type add to a message's size (its JSON value aside)."""
MAX_MESSAGE_ATTRIBUTES = 10
MAX_MESSAGE_BYTES = 262_144
"""A plain message's size cap (body plus attributes), lowered by a smaller queue limit."""
MAX_DELAY_SECONDS = 900
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


@dataclass(frozen=True)
class UnsentMessage:
    """An entry of ``send_message_batch`` that was not sent, as it was prepared.

    ``key`` is its record key, ``message`` its body (the exact text that was to be sent) with
    its SQS parameters and attributes, ``meta_json`` the record's ``meta`` as JSON text and
    ``error`` the last error. ``MessageClient.resend_unsent`` sends it under the same key.
    """

    key: RecordKey
    message: Message
    meta_json: str | None
    error: str


def unsent_message(prepared: Prepared, error: str) -> UnsentMessage:
    """What resending a prepared entry under its key needs (the key attribute is re-added)."""
    entry = prepared.entry
    attributes = {k: v for k, v in entry["MessageAttributes"].items() if k != KEY_ATTRIBUTE}
    message = Message(
        body=entry["MessageBody"],
        delay_seconds=entry.get("DelaySeconds"),
        message_group_id=entry.get("MessageGroupId"),
        message_deduplication_id=entry.get("MessageDeduplicationId"),
        message_attributes=attributes or None,
    )
    meta = prepared.item.get("meta")
    return UnsentMessage(prepared.key, message, None if meta is None else meta["S"], error)


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


def check_delay_seconds(value: Any, field_name: str) -> int:
    """SQS's DelaySeconds: a whole number of seconds from 0 to 900."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 900:
        raise ValidationError(
            field_name,
            f"DelaySeconds must be a whole number of seconds from 0 to {MAX_DELAY_SECONDS}, "
            f"got {value!r}",
        )
    return value


def check_queue_limit(prepared: Iterable[Prepared], limit: int | None, field_name: str) -> None:
    """Each message must fit the queue's MaximumMessageSize when it is below the library's cap.

    ``field_name`` is ``"body"`` for a single message, else the entries' list name.
    """
    if limit is None or limit >= MAX_MESSAGE_BYTES:
        return
    for p in prepared:
        if p.size > limit:
            where = field_name if field_name == "body" else f"{field_name}[{p.index}]"
            raise ValidationError(
                where, f"message is {p.size} bytes; the queue's limit is {limit} bytes"
            )


def fast_dumps(value: Any) -> str:
    """Serialise a value already validated (``_codec.dumps`` checked it): no depth walk."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def body_text(body: Any, field_name: str) -> str:
    """A string body is sent as it is; any other JSON value is serialised."""
    return body if isinstance(body, str) else dumps(body, field=field_name)


def message_attributes(
    given: Mapping[str, Any] | None, key: RecordKey, field_name: str, key_json: str | None = None
) -> dict[str, Any]:
    """The caller's attributes plus the record-key attribute (SQS allows 10 in all).

    ``key_json`` is the key's JSON when the caller has it already (a cluster's task templates).
    """
    if not given:
        key_json = key_json or json.dumps(key.to_dict(), separators=(",", ":"), ensure_ascii=False)
        return {KEY_ATTRIBUTE: {"DataType": "String", "StringValue": key_json}}
    attrs = dict(given)
    if KEY_ATTRIBUTE in attrs:
        raise ValidationError(field_name, f"attribute name {KEY_ATTRIBUTE!r} is reserved")
    if len(attrs) >= MAX_MESSAGE_ATTRIBUTES:
        raise ValidationError(
            field_name,
            f"{len(attrs)} message attributes given; SQS allows {MAX_MESSAGE_ATTRIBUTES} and "
            "sqs-cluster needs one for the record key, "
            f"so pass at most {MAX_MESSAGE_ATTRIBUTES - 1}",
        )
    key_json = key_json or json.dumps(key.to_dict(), separators=(",", ":"), ensure_ascii=False)
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
    key_json: str | None = None,
    meta_bytes: int = 0,
) -> Prepared:
    """Validate one outgoing message and build its record item and batch entry.

    ``meta_bytes`` is the size of ``meta_text``: the record holds both it and the body.
    """
    out = message if isinstance(message, Message) else Message(body=message)
    key = key or RecordKey.for_message(uuid.uuid4().hex, queue_url)
    if validated:  # checked already (a cluster validates every task first): serialise once
        text = out.body if isinstance(out.body, str) else fast_dumps(out.body)
    else:
        text = body_text(
            out.body, f"{field_name}.body" if isinstance(message, Message) else field_name
        )
    attrs = message_attributes(
        out.message_attributes, key, f"{field_name}.message_attributes", key_json
    )
    body_bytes = len(text.encode())
    size = body_bytes + _attributes_size(attrs)
    if size > max_bytes:
        raise ValidationError(
            field_name, f"message is {size} bytes; the queue's limit is {max_bytes} bytes"
        )
    if body_bytes + meta_bytes > MAX_RECORD_DATA_BYTES:
        raise ValidationError(
            field_name,
            f"the record would hold {body_bytes} bytes of body and {meta_bytes} of meta; "
            f"a record holds at most {MAX_RECORD_DATA_BYTES} bytes of both (DynamoDB's 400 KB "
            "item limit, less room for the record's other attributes)",
        )
    entry: dict[str, Any] = {"MessageBody": text, "MessageAttributes": attrs}
    if out.delay_seconds is not None:
        entry["DelaySeconds"] = check_delay_seconds(
            out.delay_seconds, f"{field_name}.delay_seconds"
        )
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
    aws: AWS, error: PartialSendError, *, progress: Progress | None = None
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
