"""Record model: keys, statuses and the typed views of the DynamoDB items (see docs/records.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Any, Generic

from ._types import Meta

KEY_PREFIX = "SQSMessage$"


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
    def coerce(cls, value: Any) -> RecordKey:
        """Accept a RecordKey, a ``{"pKey", "rKey"}`` mapping or a ``(pKey, rKey)`` pair."""
        if isinstance(value, RecordKey):
            return value
        if isinstance(value, dict) and isinstance(value.get("pKey"), str):
            r_key = value.get("rKey")
            if isinstance(r_key, str):
                return cls(value["pKey"], r_key)
        if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, str) for v in value):
            return cls(value[0], value[1])
        raise TypeError(f"key: expected a RecordKey or {{'pKey', 'rKey'}}, got {value!r}")

    @property
    def id(self) -> str:
        """The id part of ``pKey`` (the text after ``SQSMessage$``)."""
        return self.p_key.removeprefix(KEY_PREFIX)

    def to_dict(self) -> dict[str, str]:
        """The wire form ``{"pKey": ..., "rKey": ...}``."""
        return {"pKey": self.p_key, "rKey": self.r_key}


@dataclass(frozen=True)
class ErrorEntry:
    """One failed attempt, appended to a record's ``error`` list."""

    type: str
    message: str
    at: str
    receive_count: int | None = None


@dataclass(frozen=True)
class MessageRecord(Generic[Meta]):
    """A message's (or task's) record as stored in DynamoDB."""

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
    result: Any = None

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
