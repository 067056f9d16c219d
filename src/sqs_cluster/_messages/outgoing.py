"""Outgoing messages: validation, and the record item and SQS batch entry of each.

Pure functions, no IO: :mod:`.sending` writes and sends what these prepare.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .._errors import ValidationError
from .._records.codec import dumps, now_iso
from .._records.limits import check_record_data
from .._records.model import RecordKey, RecordType, Status, StatusCode

KEY_ATTRIBUTE = "sqsClusterKey"
KEY_ATTRIBUTE_OVERHEAD = len(KEY_ATTRIBUTE) + len("String")
"""Bytes the key attribute's name and type add to a message's size (its JSON value aside)."""
MAX_MESSAGE_ATTRIBUTES = 10
MAX_MESSAGE_BYTES = 262_144
"""A plain message's size cap (body plus attributes), lowered by a smaller queue limit."""
MAX_DELAY_SECONDS = 900


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
        where = field_name if field_name == "body" else f"{field_name}[{p.index}]"
        check_message_size(p.size, limit, where)


def check_message_size(size: int, limit: int, field_name: str) -> None:
    """ValidationError when a message (body plus attributes) is over ``limit`` bytes."""
    if size > limit:
        raise ValidationError(
            field_name, f"message is {size} bytes; the queue's limit is {limit} bytes"
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
    check_message_size(size, max_bytes, field_name)
    check_record_data(body_bytes + meta_bytes, field_name, parts="body and meta")
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
