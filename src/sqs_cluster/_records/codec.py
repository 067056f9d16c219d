"""Pure conversions at the edges: JSON text, DynamoDB items and record dataclasses.

``meta``, ``body``, ``task`` and user fields are stored as JSON *text*: a float such as ``1.0``
round-trips exactly (a DynamoDB number would come back as ``1``), nesting is not capped at
DynamoDB's 32 levels, and the stored size is the size we validated. Every other attribute is a
native DynamoDB type, written with boto3's TypeSerializer.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from .._errors import ValidationError
from .model import (
    KEY_PREFIX,
    ErrorEntry,
    MessageRecord,
    RecordKey,
    RecordType,
    Status,
    StatusCode,
)

_codecs: list[Any] = []


def _boto3_codecs() -> tuple[Any, Any]:
    """boto3's DynamoDB (de)serializers, imported on first use: ``import sqs_cluster`` stays
    light for Lambda cold starts (boto3 pulls in botocore's session machinery)."""
    if not _codecs:
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        _codecs.extend((TypeSerializer(), TypeDeserializer()))
    return _codecs[0], _codecs[1]


MAX_JSON_DEPTH = 64


_last_stamp: tuple[float, str] = (-1.0, "")


def now_iso() -> str:
    """UTC ISO-8601 timestamp with milliseconds, e.g. ``2026-01-01T00:00:00.000Z``.

    A fan-out stamps many records within one millisecond: the text is reused then.
    """
    global _last_stamp
    now = datetime.now(timezone.utc)
    millis = now.timestamp() * 1000 // 1
    last = _last_stamp  # one read: another thread may swap the pair meanwhile
    if millis != last[0]:
        last = (millis, now.isoformat(timespec="milliseconds").replace("+00:00", "Z"))
        _last_stamp = last
    return last[1]


def dumps(value: Any, *, field: str = "value") -> str:
    """Serialise a JSON value compactly, or raise ValidationError naming ``field``.

    The nesting depth is walked only when the text could be that deep (it has more than
    ``MAX_JSON_DEPTH`` brackets): most values never pay for the walk.
    """
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except RecursionError:
        raise ValidationError(field, f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    except (TypeError, ValueError) as exc:
        _check_depth(value, field)  # the clearer message for deep values and non-finite floats
        raise ValidationError(field, f"must be a JSON value ({exc})") from None
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH:
        _check_depth(value, field)
    return text


def _check_depth(value: Any, field: str) -> None:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ValidationError(field, f"nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValidationError(field, f"must be a JSON value (got non-finite float {item!r})")


def to_attr(value: Any) -> Any:
    """Serialise one Python value (floats allowed) to a DynamoDB AttributeValue."""
    return _boto3_codecs()[0].serialize(_floats_to_decimal(value))


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """Deserialise a DynamoDB item; numbers become int when integral, else float."""
    deserializer = _boto3_codecs()[1]
    return {k: _decimal_to_number(deserializer.deserialize(v)) for k, v in item.items()}


def _floats_to_decimal(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _floats_to_decimal(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_floats_to_decimal(v) for v in value]
    return value


def _decimal_to_number(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _decimal_to_number(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decimal_to_number(v) for v in value]
    return value


def key_item(key: RecordKey) -> dict[str, Any]:
    """The DynamoDB key of a record."""
    return {"pKey": {"S": key.p_key}, "rKey": {"S": key.r_key}}


def record_from_item(item: Mapping[str, Any]) -> MessageRecord[Any]:
    """Build a MessageRecord from a raw DynamoDB item."""
    data = from_item(item)
    key = RecordKey(data["pKey"], data["rKey"])
    kind = RecordType(data.get("type", "message"))
    cluster = data.get("clusterKey")
    cluster_key = RecordKey.coerce(cluster) if cluster else None
    task_index = data.get("taskIndex")
    head, _, index = key.p_key.rpartition(".")
    if kind is RecordType.TASK and cluster_key is None and head and index.isdigit():
        cluster_key, task_index = RecordKey(head, key.r_key), int(index)  # from the key
    fields = record_fields(data)
    fields["url"] = fields["url"] or key.r_key.removeprefix(KEY_PREFIX)
    return MessageRecord(
        key=key,
        type=kind,
        body=data.get("body"),
        consumption_count=int(data.get("consumptionCount", 0)),
        lease_until_ms=data.get("leaseUntilMs"),
        cluster_key=cluster_key,
        task_index=task_index,
        result=json.loads(data["result"]) if "result" in data else None,
        result_dropped=data.get("resultDropped"),
        body_bytes=data.get("bodyBytes"),
        body_sha256=data.get("bodySha256"),
        body_at=data.get("bodyAt"),
        task=json.loads(data["task"]) if "task" in data else None,
        sent_at=data.get("sentAt"),
        **fields,
    )


def record_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    """The fields every record has, a message's or a cluster's, from its deserialised item:
    one decoder, so both kinds read status, meta, timestamps, errors and user fields alike."""
    return {
        "url": data.get("url", ""),
        "status": Status(data.get("status", Status.PRE_FLIGHT.value)),
        "status_code": StatusCode(int(data.get("statusCode", 0))),
        "meta": json.loads(data["meta"]) if "meta" in data else None,
        "started_at": data.get("startedAt"),
        "completed_at": data.get("completedAt"),
        "updated_at": data.get("updatedAt"),
        "expires_at": data.get("expiresAt"),
        "errors": [error_entry_from(e) for e in data.get("error", [])],
        "errors_dropped": int(data.get("errorsDropped", 0)),
        "user": json.loads(data["user"]) if "user" in data else {},
        "revision": int(data.get("rev", 0)),
    }


def error_entry_from(raw: Mapping[str, Any]) -> ErrorEntry:
    """An ErrorEntry from a deserialised ``error`` list entry."""
    return ErrorEntry(
        type=str(raw.get("type", "")),
        message=str(raw.get("message", "")),
        at=str(raw.get("at", "")),
        receive_count=raw.get("receiveCount"),
        traceback=raw.get("traceback"),
    )


def error_attr(entry: ErrorEntry) -> dict[str, Any]:
    """The wire form of one error entry."""
    wire: dict[str, Any] = {"type": entry.type, "message": entry.message, "at": entry.at}
    if entry.receive_count is not None:
        wire["receiveCount"] = entry.receive_count
    if entry.traceback is not None:
        wire["traceback"] = entry.traceback
    attr: dict[str, Any] = to_attr(wire)
    return attr
