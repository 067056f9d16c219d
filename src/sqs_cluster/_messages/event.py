"""Parsing Lambda SQS events into typed, lazily-linked messages. Pure: no AWS calls here."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Generic

from .._errors import MalformedEventError, ValidationError
from .._records.limits import MAX_SHARDS
from .._records.model import KEY_PREFIX, MessageRecord, RecordKey, RecordType, shown
from .._types import Body, Globals
from .outgoing import KEY_ATTRIBUTE
from .payloads import SIZE_ATTRIBUTES, PayloadRef, parse_pointer

if TYPE_CHECKING:
    from .._clusters.model import ClusterRecord

REQUIRED_FIELDS = ("messageId", "body", "eventSourceARN")


@dataclass(frozen=True)
class QueueArn:
    """The parts of ``arn:aws:sqs:<region>:<account>:<name>``."""

    partition: str
    region: str
    account: str
    name: str

    @classmethod
    def parse(cls, arn: Any, field_name: str = "eventSourceARN") -> QueueArn:
        """Parse an SQS queue ARN, or raise MalformedEventError naming ``field_name``."""
        parts = arn.split(":") if isinstance(arn, str) else []
        if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sqs" or not all(parts[3:]):
            raise MalformedEventError(
                field_name, f"expected arn:aws:sqs:<region>:<account>:<queue>, got {arn!r}"
            )
        return cls(parts[1], parts[3], parts[4], parts[5])

    @property
    def is_fifo(self) -> bool:
        """FIFO queue names end in ``.fifo``."""
        return self.name.endswith(".fifo")

    def queue_url(self, endpoint_url: str | None = None) -> str:
        """The queue URL: on the given endpoint, else the regional AWS endpoint."""
        if endpoint_url:
            return f"{endpoint_url.rstrip('/')}/{self.account}/{self.name}"
        domain = "amazonaws.com.cn" if self.partition == "aws-cn" else "amazonaws.com"
        return f"https://sqs.{self.region}.{domain}/{self.account}/{self.name}"


@dataclass(frozen=True)
class ReceivedMessage(Generic[Body, Globals]):
    """One SQS record of a Lambda event, parsed.

    ``key`` is the message's own record; for a task of a cluster ``cluster_key`` is the cluster's
    record and ``task`` the task's payload. ``body`` is JSON-decoded when it is JSON.

    The type parameter is the payload a handler works on: ``body`` for a plain message, ``task``
    for a cluster's task. ``ReceivedMessage[Order]`` types both as ``Order``; with
    ``safe_process_batch(..., model=Order)`` the payload is an ``Order`` at run time too (the
    other field stays as it came: None for a plain message's ``task``, the task's envelope for
    a task's ``body``). ``ReceivedMessage[Any]`` leaves them untyped.

    The second, optional parameter is the type of a task's cluster globals:
    ``ReceivedMessage[Task, Prices]`` types ``await message.get_globals()`` as ``Prices`` (and
    the cluster of ``get_message_cluster()`` as ``ClusterRecord[Any, Prices]``). Left out, the
    globals are ``Any``. It is not checked at run time: the globals are the JSON stored.
    """

    message_id: str
    """SQS's id of this message."""
    body: Body
    """The body, JSON-decoded when it is JSON, else the text as sent."""
    raw_body: str = field(repr=False)
    """The body exactly as SQS delivered it (left out of the repr: ``body`` shows it)."""
    type: RecordType
    """What the record tracks: a plain message or a cluster's task."""
    key: RecordKey
    """The key of this message's own record."""
    queue_url: str
    """The URL of the queue it was received from."""
    queue_arn: str
    """The ARN of that queue (the event's ``eventSourceARN``)."""
    receive_count: int
    """How many times SQS has delivered it (``ApproximateReceiveCount``)."""
    receipt_handle: str | None
    """The handle of this delivery, to delete it or change its visibility."""
    message_group_id: str | None
    """The FIFO message group, None on a standard queue."""
    tracked: bool
    """True when it was sent through sqs-cluster (it carries its record key)."""
    task: Body = None  # type: ignore[assignment]  # None for a plain message
    """For a task, the task as given to ``create_message_cluster``; None for a message."""
    task_index: int | None = None
    """For a task, its index in the cluster's task list."""
    cluster_key: RecordKey | None = None
    """For a task, the key of its cluster's record."""
    cluster_shards: int | None = None
    """For a task, how many counter shards its cluster counts into."""
    globals_location: Mapping[str, str] | None = None
    """For a task, where its cluster's globals live in S3 (``Bucket``, ``Key``)."""
    attributes: Mapping[str, Any] = field(default_factory=dict)
    """SQS's system attributes of the message."""
    message_attributes: Mapping[str, Any] = field(default_factory=dict)
    """The message attributes, the record-key attribute included."""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)
    """The Lambda SQS record as it came (left out of the repr: the fields above show it)."""
    payload: PayloadRef | None = None
    """Where the body was offloaded (S3), for a message that came as a pointer."""
    payload_pending: bool = False
    """True while ``body`` is still the pointer: ``await client.resolve_sqs_record(m)`` (and
    every consuming path of the client) loads it."""
    client: Any = field(default=None, repr=False, compare=False)

    @property
    def is_task(self) -> bool:
        """True for a task of a message cluster."""
        return self.type is RecordType.TASK

    def _bound(self) -> Any:
        if self.client is None:
            raise RuntimeError(
                "this message is not bound to a client: use client.read_sqs_record(record)"
            )
        return self.client

    async def get_message_record(self, consistent_read: bool = False) -> MessageRecord[Any]:
        """Fetch this message's record (lazily: only when asked)."""
        record: MessageRecord[Any] = await self._bound().get_message_record(
            self.key, consistent_read=consistent_read
        )
        return record

    async def get_message_cluster(
        self, consistent_read: bool = False
    ) -> ClusterRecord[Any, Globals]:
        """Fetch the cluster of a task (raises for a plain message)."""
        if self.cluster_key is None:
            raise ValueError(f"message {self.message_id} is not a task of a cluster")
        cluster: ClusterRecord[Any, Globals] = await self._bound().get_message_cluster(
            self.cluster_key, consistent_read=consistent_read
        )
        return cluster

    async def get_globals(self) -> Globals:
        """Read the cluster's globals from S3, where the task's body says they are.

        No cluster record is read. Raises ValueError for a plain message or a cluster
        created with ``omit_globals``.
        """
        if self.cluster_key is None:
            raise ValueError(f"message {self.message_id} is not a task of a cluster")
        if self.globals_location is None:
            raise ValueError(f"cluster {self.cluster_key.id} has no globals (omit_globals)")
        value: Globals = await self._bound()._globals_at(self.globals_location)
        return value


def as_record_dict(record: Any) -> Mapping[str, Any]:
    """A plain dict for a record: plain dicts as they are, Powertools' SQSRecord via raw_event."""
    raw = getattr(record, "raw_event", record)
    if not isinstance(raw, Mapping):
        raise MalformedEventError(
            "record", f"expected an SQS record mapping, got {type(record).__name__}"
        )
    return raw


def event_records(event: Any) -> list[Mapping[str, Any]]:
    """Validate a Lambda SQS event (or Powertools' SQSEvent) and return its records."""
    raw = getattr(event, "raw_event", event)
    if not isinstance(raw, Mapping) or not isinstance(raw.get("Records"), (list, tuple)):
        raise MalformedEventError("event", "expected a Lambda SQS event with a 'Records' list")
    records = [as_record_dict(r) for r in raw["Records"]]
    for index, record in enumerate(records):
        check_record(record, f"event.Records[{index}]")
    return records


def check_record(record: Mapping[str, Any], where: str = "record") -> None:
    """Raise MalformedEventError unless ``record`` is an SQS record."""
    source = record.get("eventSource")
    if source is None and "EventSource" in record:  # SNS spells it with a capital E
        raise MalformedEventError(
            f"{where}.EventSource",
            f"expected an SQS record (eventSource 'aws:sqs'), got a {record['EventSource']!r} "
            "record",
        )
    if source is not None and source != "aws:sqs":
        raise MalformedEventError(f"{where}.eventSource", f"expected 'aws:sqs', got {source!r}")
    for name in REQUIRED_FIELDS:
        if not isinstance(record.get(name), str):
            raise MalformedEventError(f"{where}.{name}", "missing or not a string")
    QueueArn.parse(record["eventSourceARN"], f"{where}.eventSourceARN")


def parse_record(
    record: Any, *, endpoint_url: str | None = None, bucket: str | None = None
) -> ReceivedMessage[Any]:
    """Parse one SQS record (plain dict or Powertools' SQSRecord) into a ReceivedMessage."""
    raw = as_record_dict(record)
    check_record(raw)
    arn = QueueArn.parse(raw["eventSourceARN"])
    attributes = _mapping(raw, "attributes")
    message_attributes = _mapping(raw, "messageAttributes")
    text = raw["body"]
    queue_url = arn.queue_url(endpoint_url)
    pointer = parse_pointer(text, message_attributes)
    body: Any = None if pointer is not None else _json_or_text(text)
    base: dict[str, Any] = {
        "message_id": raw["messageId"],
        "body": body,
        "raw_body": text,
        "queue_url": queue_url,
        "queue_arn": raw["eventSourceARN"],
        "receive_count": _int(attributes.get("ApproximateReceiveCount"), 1),
        "receipt_handle": raw.get("receiptHandle"),
        "message_group_id": attributes.get("MessageGroupId"),
        "attributes": attributes,
        "message_attributes": message_attributes,
        "raw": raw,
    }
    key = _attribute_key(message_attributes)
    if pointer is not None:  # offloaded: what the body is becomes known once it is loaded
        base.update(payload=pointer, payload_pending=True)
    elif key is not None and _is_task_body(body):
        cluster = check_task_body(body, key, bucket)
        return ReceivedMessage(
            type=RecordType.TASK,
            key=key,
            tracked=True,
            task=body.get("task"),
            task_index=body["index"],
            cluster_key=cluster,
            cluster_shards=body["shards"],
            globals_location=_globals_location(body, cluster),
            **base,
        )
    if key is not None:
        return ReceivedMessage(type=RecordType.MESSAGE, key=key, tracked=True, **base)
    untracked = RecordKey.for_message(raw["messageId"], queue_url)
    return ReceivedMessage(type=RecordType.MESSAGE, key=untracked, tracked=False, **base)


def with_payload(
    message: ReceivedMessage[Any],
    text: str,
    *,
    endpoint_url: str | None = None,
    bucket: str | None = None,
) -> ReceivedMessage[Any]:
    """The message as if its offloaded body ``text`` had come inline (the size attribute
    dropped, as AWS's extended clients do), remembering where the body lives."""
    attributes = {k: v for k, v in message.message_attributes.items() if k not in SIZE_ATTRIBUTES}
    raw = {**message.raw, "body": text, "messageAttributes": attributes}
    loaded = parse_record(raw, endpoint_url=endpoint_url, bucket=bucket)
    return replace(loaded, payload=message.payload, payload_pending=False, client=message.client)


def check_task_body(body: Mapping[str, Any], key: RecordKey, bucket: str | None) -> RecordKey:
    """A task body must agree with the record key it travels with, and name only its own
    cluster's globals, so a crafted body cannot count into (or read from) anything else.

    Returns the cluster's key: the task's ``pKey`` without ``.<index>``, the same ``rKey``.
    A body of sqs-cluster 0.1 also names the cluster (``pKey``, ``rKey``): it must be this one.
    """
    index = body.get("index")
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise MalformedEventError("body.index", f"expected a task index >= 0, got {index!r}")
    prefix, _, own_index = key.p_key.rpartition(".")
    if own_index != str(index) or not prefix.startswith(KEY_PREFIX):
        raise MalformedEventError(
            "body.index",
            f"the body says task {index}, the message's key {key.p_key!r} says {own_index!r}",
        )
    if ("pKey" in body or "rKey" in body) and (
        body.get("pKey") != prefix or body.get("rKey") != key.r_key
    ):
        raise MalformedEventError(
            "body.pKey",
            f"the body names cluster {body.get('pKey')!r}, but the message belongs to {prefix!r}",
        )
    shards = body.get("shards")
    if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= MAX_SHARDS:
        raise MalformedEventError(
            "body.shards",
            f"expected the cluster's counter shards, 1 to {MAX_SHARDS}, got {shards!r} (a task "
            "sent by sqs-cluster 0.1 has none: let 0.1 consumers finish its cluster)",
        )
    _check_globals(body.get("globals"), prefix, bucket)
    return RecordKey(prefix, key.r_key)


def _check_globals(location: Any, p_key: str, bucket: str | None) -> None:
    """``globals`` is absent, the bucket's name, or (0.1) ``{"Bucket", "Key"}`` with the
    cluster's own key; with ``bucket`` known, it must be that bucket."""
    if location is None:
        return
    expected_key = f"{p_key}-globals.json"
    named: Any
    if isinstance(location, str):
        named, where = location, location
    elif isinstance(location, Mapping) and location.get("Key") == expected_key:
        named, where = location.get("Bucket"), f"{location.get('Bucket')}/{location.get('Key')}"
    else:
        named, where = None, shown(location)
    if not isinstance(named, str) or (bucket is not None and named != bucket):
        raise MalformedEventError(
            "body.globals",
            f"names {where}; a task's globals are {bucket or '<bucket>'}/{expected_key}",
        )


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _int(value: Any, default: Any) -> Any:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _mapping(record: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = record.get(name) or {}
    if not isinstance(value, Mapping):
        raise MalformedEventError(name, f"expected a mapping, got {type(value).__name__}")
    return value


def _attribute_key(message_attributes: Mapping[str, Any]) -> RecordKey | None:
    """The record key a tracked message carries; None for a message sent without one.

    A key attribute that is present but malformed, or names a key outside the library's key
    space, rejects the message rather than processing it as untracked.
    """
    if KEY_ATTRIBUTE not in message_attributes:
        return None
    where = f"messageAttributes.{KEY_ATTRIBUTE}"
    attr = message_attributes[KEY_ATTRIBUTE]
    value = attr.get("stringValue", attr.get("StringValue")) if isinstance(attr, Mapping) else None
    if not isinstance(value, str):
        raise MalformedEventError(
            where, 'expected a String attribute holding JSON {"pKey": ..., "rKey": ...}'
        )
    try:
        data = json.loads(value)
    except ValueError:
        raise MalformedEventError(
            where, f'expected JSON {{"pKey": ..., "rKey": ...}}, got {shown(value)}'
        ) from None
    try:
        key = RecordKey.coerce(data, where)
    except ValidationError as exc:
        raise MalformedEventError(where, str(exc).removeprefix(f"{where}: ")) from None
    if not key.r_key.startswith(KEY_PREFIX):
        raise MalformedEventError(
            where,
            f"rKey {shown(key.r_key)} is outside sqs-cluster's key space: "
            f"it starts with {KEY_PREFIX!r}",
        )
    return key


def _is_task_body(body: Any) -> bool:
    """A task's body: ``"type": "task"``, naming no cluster (the key attribute does), or, as
    sqs-cluster 0.1 wrote it, naming one by ``pKey`` and ``rKey`` in the library's key space;
    a body naming something else is a plain message's."""
    if not isinstance(body, dict) or body.get("type") != RecordType.TASK.value:
        return False
    if "pKey" not in body and "rKey" not in body:
        return True
    p_key, r_key = body.get("pKey"), body.get("rKey")
    return (
        isinstance(p_key, str)
        and isinstance(r_key, str)
        and p_key.startswith(KEY_PREFIX)
        and r_key.startswith(KEY_PREFIX)
    )


def _globals_location(body: Mapping[str, Any], cluster: RecordKey) -> Mapping[str, str] | None:
    """Where a checked task body's globals are: its bucket, under its cluster's key."""
    location = body.get("globals")
    if isinstance(location, Mapping):
        location = location.get("Bucket")
    if not isinstance(location, str):
        return None
    return {"Bucket": location, "Key": f"{cluster.p_key}-globals.json"}
