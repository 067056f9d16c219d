"""Record model: keys, statuses and the typed views of the DynamoDB items (see docs/records.md)."""

from __future__ import annotations

import hashlib
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Any, Generic

from .._errors import ValidationError
from .._types import Meta, Result

KEY_PREFIX = "SQSMessage$"
"""Every item the library reads or writes has a ``pKey`` starting with this (its key space)."""
IDEMPOTENT_ID_PREFIX = "idem-"
"""The id of an idempotent send's record: this, then 64 hex digits. At 69 characters it is
longer than any cluster id (64 at most), and it has no ``.``, so it is no task's key."""
MAX_IDEMPOTENCY_KEY_LENGTH = 1024
"""The longest ``idempotency_key``, in characters (it is hashed, never stored)."""

_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 200


def shown(value: Any) -> str:
    """``repr(value)``, shortened for error messages."""
    return _repr.repr(value)


class RecordType(str, Enum):
    """What a record tracks: a plain message, a task of a cluster, or the cluster itself."""

    MESSAGE = "message"
    TASK = "task"
    CLUSTER = "cluster"


class Status(str, Enum):
    """Lifecycle of a record."""

    PRE_FLIGHT = "PRE FLIGHT"
    IN_PROGRESS = "IN PROGRESS"
    COMPLETE = "COMPLETE"
    ERROR = "ERROR"
    STOPPED = "STOPPED"
    """A cancelled cluster once it ended, and each of its tasks that never started."""


class StatusCode(IntEnum):
    """Numeric twin of :class:`Status`; ``STOPPED`` marks a record that will not be retried."""

    PRE_FLIGHT = 0
    IN_PROGRESS = 100
    COMPLETE = 200
    ERROR = 400
    STOPPED = 500


STATUS_CODES: dict[Status, StatusCode] = {
    Status.PRE_FLIGHT: StatusCode.PRE_FLIGHT,
    Status.IN_PROGRESS: StatusCode.IN_PROGRESS,
    Status.COMPLETE: StatusCode.COMPLETE,
    Status.ERROR: StatusCode.ERROR,
    Status.STOPPED: StatusCode.STOPPED,
}


@dataclass(frozen=True)
class RecordKey:
    """Primary key of a record: ``pKey`` is ``SQSMessage$<id>``, ``rKey`` ``SQSMessage$<url>``."""

    p_key: str
    r_key: str

    @classmethod
    def for_message(cls, message_id: str, queue_url: str) -> RecordKey:
        """Key of the record that tracks one message (or the cluster ``message_id``)."""
        return cls(f"{KEY_PREFIX}{message_id}", f"{KEY_PREFIX}{queue_url}")

    @classmethod
    def for_idempotency_key(
        cls, idempotency_key: str, queue_url: str, field_name: str = "idempotency_key"
    ) -> RecordKey:
        """Key of the record of a message sent with ``idempotency_key`` to ``queue_url``.

        Its id is ``idem-`` and the SHA-256 (hex) of the queue URL, a newline and the key, so
        the same key on two queues names two messages. Raises ValidationError for a key that
        is not a non-empty string of at most ``MAX_IDEMPOTENCY_KEY_LENGTH`` characters.
        """
        check_idempotency_key(idempotency_key, field_name)
        text = f"{queue_url}\n{idempotency_key}".encode()
        digest = hashlib.sha256(text).hexdigest()
        return cls.for_message(f"{IDEMPOTENT_ID_PREFIX}{digest}", queue_url)

    @classmethod
    def coerce(cls, value: Any, field_name: str = "key") -> RecordKey:
        """Accept a RecordKey, a ``{"pKey", "rKey"}`` mapping or a ``(pKey, rKey)`` pair.

        Raises ValidationError unless the key is in the library's key space (``pKey`` starts
        with ``SQSMessage$``), so no caller input can make it read or write other items.
        """
        key: RecordKey | None = None
        if isinstance(value, RecordKey):
            key = value
        elif isinstance(value, Mapping):
            p_key, r_key = value.get("pKey"), value.get("rKey")
            if isinstance(p_key, str) and isinstance(r_key, str):
                key = cls(p_key, r_key)
        elif (
            isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, str) for v in value)
        ):
            key = cls(value[0], value[1])
        if key is None:
            raise ValidationError(
                field_name,
                "expected a RecordKey, a {'pKey': str, 'rKey': str} mapping or a (pKey, rKey) "
                f"pair, got {shown(value)}",
            )
        check_key_space(key.p_key, field_name)
        return key

    @property
    def id(self) -> str:
        """The id part of ``pKey`` (the text after ``SQSMessage$``)."""
        return self.p_key.removeprefix(KEY_PREFIX)

    def to_dict(self) -> dict[str, str]:
        """The wire form ``{"pKey": ..., "rKey": ...}``."""
        return {"pKey": self.p_key, "rKey": self.r_key}


def check_idempotency_key(value: Any, field_name: str = "idempotency_key") -> str:
    """Raise ValidationError unless ``value`` is a non-empty string of at most
    ``MAX_IDEMPOTENCY_KEY_LENGTH`` characters."""
    if not isinstance(value, str) or not value:
        raise ValidationError(
            field_name, f"expected a non-empty string (the send's own key), got {shown(value)}"
        )
    if len(value) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise ValidationError(
            field_name,
            f"{len(value)} characters; an idempotency key has at most "
            f"{MAX_IDEMPOTENCY_KEY_LENGTH} (hash a longer one yourself)",
        )
    return value


def check_key_space(p_key: str, field_name: str = "key") -> None:
    """Raise ValidationError unless ``p_key`` is in the library's key space."""
    if not p_key.startswith(KEY_PREFIX):
        raise ValidationError(
            field_name,
            f"pKey {shown(p_key)} is outside sqs-cluster's key space: "
            f"every record's pKey starts with {KEY_PREFIX!r} followed by its id",
        )


@dataclass(frozen=True)
class ErrorEntry:
    """One failed attempt, appended to a record's ``error`` list."""

    type: str
    message: str
    at: str
    receive_count: int | None = None
    traceback: str | None = None
    """The end of the exception's formatted traceback (``MAX_TRACEBACK_BYTES``), when known."""


@dataclass(frozen=True)
class MessageRecord(Generic[Meta, Result]):
    """A message's (or task's) record as stored in DynamoDB.

    ``Meta`` types ``meta``; the second, optional parameter types ``result``, what the handler
    returned: ``MessageRecord[None, Receipt]``. Left out, ``result`` is ``Any``. Neither is
    checked at run time (they are the JSON stored), and ``result`` is None until the message
    completes: write ``MessageRecord[None, Receipt | None]`` to have that checked too.
    """

    key: RecordKey
    type: RecordType
    url: str
    status: Status
    status_code: StatusCode
    meta: Meta | None = None
    body: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    updated_at: str | None = None
    expires_at: int | None = None
    consumption_count: int = 0
    lease_until_ms: int | None = None
    errors: list[ErrorEntry] = field(default_factory=list)
    cluster_key: RecordKey | None = None
    task_index: int | None = None
    user: dict[str, Any] = field(default_factory=dict)
    revision: int = 0
    result: Result = None  # type: ignore[assignment]  # None until completed
    """What the handler returned, once completed (None if it returned nothing or it was
    dropped)."""
    result_dropped: int | None = None
    """The size in bytes of a handler's result too large to store (dropped), else None."""
    errors_dropped: int = 0
    """Failures left out of ``errors`` (it keeps the first and the latest ones)."""
    body_bytes: int | None = None
    """For a body the record does not copy (``Config.record_body_bytes``): its UTF-8 size."""
    body_sha256: str | None = None
    """... its SHA-256 (hex), to check a copy against."""
    body_at: str | None = None
    """... where it lives: ``s3://bucket/key`` when offloaded, ``sqs`` when only the message
    holds it. ``get_message_record(key, load_body=True)`` loads an offloaded one."""
    task: Any = None
    """For a completed task, the task as given to ``create_message_cluster`` (kept when at
    most ``Config.record_body_bytes`` as JSON), else None."""
    sent_at: str | None = None
    """For a message sent with an ``idempotency_key``: when its send was confirmed (a retry
    with the key then sends nothing); None before that, and for every other message."""

    @property
    def p_key(self) -> str:
        """Shortcut for ``key.p_key``."""
        return self.key.p_key

    @property
    def r_key(self) -> str:
        """Shortcut for ``key.r_key``."""
        return self.key.r_key

    @property
    def is_complete(self) -> bool:
        """True once the message was processed successfully."""
        return self.status is Status.COMPLETE
