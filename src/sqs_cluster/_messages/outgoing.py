"""Outgoing messages: validation, and the record item and SQS batch entry of each.

Pure functions, no IO: :mod:`.sending` writes and sends what these prepare.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._errors import ValidationError
from .._records.codec import dumps, now_iso
from .._records.limits import check_record_data
from .._records.model import (
    IDEMPOTENT_ID_PREFIX,
    RecordKey,
    RecordType,
    Status,
    StatusCode,
    shown,
)
from .payloads import (
    SIZE_ATTRIBUTES,
    PayloadRef,
    payload_key,
    pointer_body,
    size_attribute,
)

KEY_ATTRIBUTE = "sqsClusterKey"
KEY_ATTRIBUTE_OVERHEAD = len(KEY_ATTRIBUTE) + len("String")
"""Bytes the key attribute's name and type add to a message's size (its JSON value aside)."""
MAX_MESSAGE_ATTRIBUTES = 10
MAX_MESSAGE_BYTES = 1_048_576
"""SQS's largest message (body plus attributes) since August 2025; a queue may set less."""
UNKNOWN_QUEUE_LIMIT = 262_144
"""The limit assumed when a queue's own may not be read: older queues' default."""
MAX_DELAY_SECONDS = 900
IDEMPOTENCY_ATTRIBUTE = "idempotencySha256"
"""The record attribute holding :func:`idempotency_digest` of a message sent with a key."""
SENT_ATTRIBUTE = "sentAt"
"""The record attribute set once the message of an idempotent send was confirmed sent."""


@dataclass(frozen=True)
class Message:
    """An outgoing message with per-message SQS parameters (for ``send_message_batch``).

    ``idempotency_key`` makes the send idempotent: its record key derives from the key and the
    queue URL, and a later send of the same key to the same queue sends nothing (see
    ``MessageClient.send_message``).
    """

    body: Any
    delay_seconds: int | None = None
    message_group_id: str | None = None
    message_deduplication_id: str | None = None
    message_attributes: Mapping[str, Any] | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Sizing:
    """How large a message may be on its queue, and what happens to a larger one.

    ``limit`` is the queue's MaximumMessageSize; a message above ``offload_above`` bytes
    goes to S3 in ``bucket`` (None: never offloaded, refused above ``limit``). A record
    copies a body of at most ``record_body_bytes``.
    """

    limit: int = MAX_MESSAGE_BYTES
    offload_above: int | None = None
    bucket: str | None = None
    record_body_bytes: int = 4096


def sizing_for(config: Any, queue_limit: int | None) -> Sizing:
    """The sizing of one queue under ``config`` (a :class:`~sqs_cluster.Config`)."""
    limit = min(queue_limit or UNKNOWN_QUEUE_LIMIT, MAX_MESSAGE_BYTES)
    offload = None
    if config.offload_payloads and config.bucket:
        offload = min(config.offload_threshold_bytes or limit, limit)
    return Sizing(limit, offload, config.bucket, config.record_body_bytes)


@dataclass
class Prepared:
    """One validated entry: its record item and its SQS batch entry (``Id`` added at send).

    ``payload`` is the offloaded body and where it goes, for a message sent as a pointer:
    it is stored before the message is sent. ``idempotency_key`` is the caller's key of an
    idempotent send (its record then holds ``idempotencySha256``).
    """

    index: int
    key: RecordKey
    item: dict[str, Any]
    entry: dict[str, Any]
    size: int
    payload: tuple[PayloadRef, bytes] | None = None
    idempotency_key: str | None = None
    room: int | None = None
    """Bytes left under the queue's limit (what a trace attribute may take)."""


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


class SentKeys(list[RecordKey]):
    """The record keys of a batch in the order of its entries: a list, plus ``already_sent``.

    ``already_sent`` holds the indexes of the entries whose ``idempotency_key`` had been sent
    to the queue before: nothing was sent for them this time, and their keys are those of the
    earlier sends. It is empty when no entry was.
    """

    def __init__(self, keys: Iterable[RecordKey] = (), already_sent: Iterable[int] = ()) -> None:
        super().__init__(keys)
        self.already_sent: frozenset[int] = frozenset(already_sent)


def unsent_message(prepared: Prepared, error: str) -> UnsentMessage:
    """What resending a prepared entry under its key needs (the key attribute is re-added)."""
    entry = prepared.entry
    dropped = (KEY_ATTRIBUTE, *SIZE_ATTRIBUTES) if prepared.payload else (KEY_ATTRIBUTE,)
    attributes = {k: v for k, v in entry["MessageAttributes"].items() if k not in dropped}
    body = prepared.payload[1].decode() if prepared.payload else entry["MessageBody"]
    message = Message(
        body=body,
        delay_seconds=entry.get("DelaySeconds"),
        message_group_id=entry.get("MessageGroupId"),
        message_deduplication_id=entry.get("MessageDeduplicationId"),
        message_attributes=attributes or None,
        idempotency_key=prepared.idempotency_key,
    )
    meta = prepared.item.get("meta")
    return UnsentMessage(prepared.key, message, None if meta is None else meta["S"], error)


def check_unique_idempotency_keys(entries: Sequence[Any]) -> None:
    """ValidationError when two entries of one batch carry the same idempotency key."""
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        key = entry.idempotency_key if isinstance(entry, Message) else None
        if not isinstance(key, str):
            continue
        if key in seen:
            raise ValidationError(
                f"entries[{index}].idempotency_key",
                f"{shown(key)} is also the key of entries[{seen[key]}]: a batch sends each "
                "idempotency key once",
            )
        seen[key] = index


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


def check_message_size(size: int, sizing: Sizing, field_name: str) -> None:
    """ValidationError when a message (body plus attributes, UTF-8 bytes) is over the limit."""
    if size > sizing.limit:
        why = (
            "set Config.bucket to send larger ones through S3"
            if sizing.bucket is None
            else "Config.offload_payloads is off"
        )
        raise ValidationError(
            field_name,
            f"message is {size} bytes; the queue's limit is {sizing.limit} bytes ({why})",
        )


def fast_dumps(value: Any) -> str:
    """Serialise a value already validated (``codec.dumps`` checked it): no depth walk."""
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
    for name in (KEY_ATTRIBUTE, *SIZE_ATTRIBUTES):
        if name in attrs:
            raise ValidationError(field_name, f"attribute name {name!r} is reserved")
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


def idempotency_digest(
    text: str,
    meta_text: str | None,
    attributes: Mapping[str, Any] | None,
    message_group_id: str | None,
) -> str:
    """What a second send under the same idempotency key must repeat, as one SHA-256 (hex):
    the body as sent, ``meta`` as JSON, the caller's message attributes and MessageGroupId.
    DelaySeconds and MessageDeduplicationId are not part of it."""
    parts = [text, meta_text, _plain(dict(attributes or {})), message_group_id]
    canonical = json.dumps(parts, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _plain(value: Any) -> Any:
    """Attribute values as JSON: binary values in base64."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def _attributes_size(attrs: Mapping[str, Any]) -> int:
    size = 0
    for name, value in attrs.items():
        size += len(name.encode()) + len(str(value.get("DataType", "")).encode())
        size += len(str(value.get("StringValue", "")).encode()) + len(value.get("BinaryValue", b""))
    return size


def body_attributes(
    body: str, body_bytes: int, keep_bytes: int, where: PayloadRef | None
) -> dict[str, Any]:
    """How a record holds a body: the body itself when it is at most ``keep_bytes``, else
    its size, SHA-256 and where it lives (the S3 object, or only the message: ``sqs``)."""
    if body_bytes <= keep_bytes and where is None:
        return {"body": {"S": body}}
    digest = hashlib.sha256(body.encode()).hexdigest()
    return {
        "bodyBytes": {"N": str(body_bytes)},
        "bodySha256": {"S": digest},
        "bodyAt": {"S": where.uri if where is not None else "sqs"},
    }


def record_item(
    key: RecordKey,
    *,
    record_type: RecordType,
    queue_url: str,
    body: Mapping[str, Any],
    meta_text: str | None,
    ttl_seconds: int,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    # ``extra`` holds ready DynamoDB attribute values (the hot path of a fan-out builds them
    # once, not through the generic serializer per item)
    """The DynamoDB item of a fresh (``PRE FLIGHT``) record; ``body`` from
    :func:`body_attributes`.

    Only what cannot be derived: the id and queue URL are in the key, a task's cluster and
    index in its ``pKey``, the consumption count starts at none (see ``record_from_item``).
    Every write to a record costs a write unit per KB of it, and a fan-out writes one per task.
    """
    item: dict[str, Any] = {
        "pKey": {"S": key.p_key},
        "rKey": {"S": key.r_key},
        "type": {"S": record_type.value},
        "status": {"S": Status.PRE_FLIGHT.value},
        "statusCode": {"N": str(int(StatusCode.PRE_FLIGHT))},
        "startedAt": {"S": now_iso()},
        "expiresAt": {"N": str(int(time.time()) + ttl_seconds)},
        **body,
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
    sizing: Sizing | None = None,
    validated: bool = False,
    key_json: str | None = None,
    meta_bytes: int = 0,
) -> Prepared:
    """Validate one outgoing message and build its record item and batch entry.

    ``meta_bytes`` is the size of ``meta_text``: the record holds both it and the body.
    A message over ``sizing``'s offload threshold is prepared as a pointer to its payload.
    """
    sizing = sizing or Sizing()
    out = message if isinstance(message, Message) else Message(body=message)
    key = key or _new_key(out, queue_url, field_name)
    if validated:  # checked already (a cluster validates every task first): serialise once
        text = out.body if isinstance(out.body, str) else fast_dumps(out.body)
    else:
        text = body_text(
            out.body, f"{field_name}.body" if isinstance(message, Message) else field_name
        )
    attrs = message_attributes(
        out.message_attributes, key, f"{field_name}.message_attributes", key_json
    )
    data = text.encode()
    body_bytes = len(data)
    size = body_bytes + _attributes_size(attrs)
    payload: tuple[PayloadRef, bytes] | None = None
    sent = text
    if sizing.offload_above is not None and sizing.bucket and size > sizing.offload_above:
        if len(attrs) >= MAX_MESSAGE_ATTRIBUTES:
            raise ValidationError(
                f"{field_name}.message_attributes",
                f"{len(attrs) - 1} message attributes given; a message of {size} bytes goes "
                f"through S3 and then carries two of the library's (its record key and "
                f"{SIZE_ATTRIBUTES[0]}) among SQS's {MAX_MESSAGE_ATTRIBUTES}, so pass at "
                f"most {MAX_MESSAGE_ATTRIBUTES - 2}",
            )
        ref = PayloadRef(sizing.bucket, payload_key(key), body_bytes)
        payload = (ref, data)
        sent = pointer_body(ref)
        attrs[SIZE_ATTRIBUTES[0]] = size_attribute(body_bytes)
        size = len(sent) + _attributes_size(attrs)
    check_message_size(size, sizing, field_name)
    where = payload[0] if payload else None
    if record_type is not RecordType.TASK:
        body = body_attributes(text, body_bytes, sizing.record_body_bytes, where)
    else:  # its message carries it; the record is the task's state (and where it went)
        body = body_attributes(text, body_bytes, 0, where) if where else {}
    stored = body_bytes if "body" in body else 0
    check_record_data(stored + meta_bytes, field_name, parts="body and meta")
    entry = _entry(out, sent, attrs, field_name, fifo_deduplication_id(out, queue_url, key))
    if out.idempotency_key is not None:
        digest = idempotency_digest(text, meta_text, out.message_attributes, out.message_group_id)
        extra = {**(extra or {}), IDEMPOTENCY_ATTRIBUTE: {"S": digest}}
    item = record_item(
        key,
        record_type=record_type,
        queue_url=queue_url,
        body=body,
        meta_text=meta_text,
        ttl_seconds=ttl_seconds,
        extra=extra,
    )
    return Prepared(
        index=index,
        key=key,
        item=item,
        entry=entry,
        size=size,
        payload=payload,
        idempotency_key=out.idempotency_key,
        room=sizing.limit - size,
    )


def _new_key(out: Message, queue_url: str, field_name: str) -> RecordKey:
    """A random key, or the one an idempotency key derives (checked, naming the field)."""
    if out.idempotency_key is None:
        return RecordKey.for_message(uuid.uuid4().hex, queue_url)
    return RecordKey.for_idempotency_key(
        out.idempotency_key, queue_url, f"{field_name}.idempotency_key"
    )


def fifo_deduplication_id(out: Message, queue_url: str, key: RecordKey) -> str | None:
    """The MessageDeduplicationId to send: the caller's; else, for an idempotent send to a
    FIFO queue, the key's digest, so SQS itself drops a resend within its 5-minute window."""
    if out.message_deduplication_id is not None:
        return out.message_deduplication_id
    if out.idempotency_key is None or not queue_url.endswith(".fifo"):
        return None
    return key.id.removeprefix(IDEMPOTENT_ID_PREFIX)


def _entry(
    out: Message, sent: str, attrs: dict[str, Any], field_name: str, dedup: str | None
) -> dict[str, Any]:
    """The SendMessage(Batch) entry of a prepared message (``Id`` is added at send)."""
    entry: dict[str, Any] = {"MessageBody": sent, "MessageAttributes": attrs}
    if out.delay_seconds is not None:
        entry["DelaySeconds"] = check_delay_seconds(
            out.delay_seconds, f"{field_name}.delay_seconds"
        )
    if out.message_group_id is not None:
        entry["MessageGroupId"] = out.message_group_id
    if dedup is not None:
        entry["MessageDeduplicationId"] = dedup
    return entry
