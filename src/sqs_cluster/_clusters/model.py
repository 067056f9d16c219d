"""Cluster records: keys, the typed view, counters and the failure policy. Pure, no AWS calls.

A cluster's items share its ``pKey``: the cluster item itself (``rKey`` = ``SQSMessage$<url>``),
its top counter (``rKey`` = ``SQSMessage$counter#0``) and a fan-out progress item
(``rKey`` = ``SQSMessage$progress``, which also holds the fan-out lease). Its counter shards
have partitions of their own (``<pKey>#<n>`` / ``SQSMessage$shard``, see ``shards``). Tasks
are ordinary records keyed ``SQSMessage$<cluster id>.<index>``, so no item grows with the
number of tasks. When the progress item cannot be written, a unit's progress goes to a marker
item keyed ``SQSMessage$<cluster id>.unit<n>`` / ``SQSMessage$progress``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Generic

from typing_extensions import NamedTuple

from .._errors import RecordNotFoundError, ValidationError
from .._records.codec import record_fields
from .._records.model import (
    KEY_PREFIX,
    ErrorEntry,
    MessageRecord,
    RecordKey,
    Status,
    StatusCode,
)
from .._types import Globals, Meta, Result, Task
from .bound import OnComplete, on_complete_from
from .shards import SHARD_R_KEY

COUNTER_PREFIX = f"{KEY_PREFIX}counter#"
PROGRESS_R_KEY = f"{KEY_PREFIX}progress"
CLUSTER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


FINISHED = (Status.COMPLETE, Status.ERROR, Status.STOPPED)
"""The statuses of a cluster that ended."""


class CallbackState:
    """Where ``on_cluster_complete``'s callback stands (stored as ``callbackState``)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"


def validate_cluster_id(cluster_id: Any) -> str:
    """Cluster ids are 1-64 letters, digits, ``-`` or ``_`` (they become keys and S3 names)."""
    if not isinstance(cluster_id, str) or not CLUSTER_ID.match(cluster_id):
        raise ValidationError(
            "cluster_id", f"expected 1-64 characters of [A-Za-z0-9_-], got {cluster_id!r}"
        )
    return cluster_id


def cluster_key(cluster_id: str, queue_url: str) -> RecordKey:
    """The cluster record's key."""
    return RecordKey.for_message(cluster_id, queue_url)


def task_key(cluster: RecordKey, index: int) -> RecordKey:
    """The record key of task ``index``: derivable, so tasks can be listed without an index."""
    return RecordKey(f"{cluster.p_key}.{index}", cluster.r_key)


def counter_key(cluster: RecordKey, shard: int = 0) -> RecordKey:
    """The cluster's top counter: its total and queue (which claim the id), its number of
    counter shards and how many of them still have room (``shards``)."""
    return RecordKey(cluster.p_key, f"{COUNTER_PREFIX}{shard}")


def progress_key(cluster: RecordKey) -> RecordKey:
    """The fan-out progress item (which units were confirmed sent)."""
    return RecordKey(cluster.p_key, PROGRESS_R_KEY)


def progress_marker_key(cluster: RecordKey, unit: int) -> RecordKey:
    """Unit ``unit``'s progress marker, written only when the progress item cannot be.

    It has a partition of its own (``<cluster pKey>.unit<n>``), away from the progress item
    whose writes failed, and is read with the unit's task records when a create resumes.
    """
    return RecordKey(f"{cluster.p_key}.unit{unit}", PROGRESS_R_KEY)


def results_object_key(key: RecordKey) -> str:
    """The S3 key of a cluster's results (``results="s3"``)."""
    return f"{key.p_key}-results.jsonl"


def globals_object_key(cluster: RecordKey) -> str:
    """S3 key of the cluster's globals: ``<pKey>-globals.json``."""
    return f"{cluster.p_key}-globals.json"


def tolerated_count(tolerated: int | str | None, total: int) -> int:
    """Turn ``tolerated_failures`` (a count, or a percentage such as ``"10%"``) into a count."""
    if tolerated is None:
        return 0
    if isinstance(tolerated, bool):
        raise ValidationError("tolerated_failures", "expected a count or a percentage like '5%'")
    if isinstance(tolerated, int):
        if tolerated < 0:
            raise ValidationError("tolerated_failures", f"must be >= 0, got {tolerated}")
        return tolerated
    if isinstance(tolerated, str) and tolerated.endswith("%"):
        try:  # exact decimal arithmetic: "9.2%" of 750 is 69, not float's 68.99999...
            percent = Decimal(tolerated[:-1].strip())
        except InvalidOperation:
            percent = Decimal(-1)
        if percent.is_finite() and 0 <= percent <= 100:
            return int(total * percent / 100)  # int() truncates: the floor of a value >= 0
    raise ValidationError(
        "tolerated_failures",
        f"expected a count >= 0 or a percentage '0%'-'100%', got {tolerated!r}",
    )


@dataclass(frozen=True)
class ClusterRecord(Generic[Meta, Globals]):
    """A cluster as stored: status, meta, counts and where its globals live.

    ``get_globals()`` reads the globals from S3 only when called; ``iter_tasks()`` pages through
    the task records (100,000 tasks never live in one item).
    """

    key: RecordKey
    """The key of the cluster's record."""
    url: str
    """The queue its tasks were sent to."""
    status: Status
    """``PRE FLIGHT`` while fanning out, ``IN PROGRESS``, then ``COMPLETE`` or ``ERROR`` (or
    ``STOPPED`` once cancelled)."""
    status_code: StatusCode
    """The numeric form of ``status``."""
    total: int
    """How many tasks the cluster has."""
    sent: int
    """Tasks confirmed sent so far."""
    completed: int
    """Tasks completed, each counted once."""
    failed: int
    """Tasks failed for good (their last allowed receive failed), each counted once."""
    tolerated_failures: int
    """Failed tasks allowed before the cluster ends ``ERROR``."""
    meta: Meta | None = None
    """The ``meta`` given at creation (or changed since)."""
    globals_location: Mapping[str, str] | None = None
    """Where the globals live in S3 (``Bucket``, ``Key``); None without globals."""
    started_at: str | None = None
    """When the cluster was created (ISO 8601)."""
    updated_at: str | None = None
    """When the cluster record last changed (ISO 8601)."""
    completed_at: str | None = None
    """When the last task was counted (ISO 8601)."""
    expires_at: int | None = None
    """When DynamoDB may delete the record (epoch seconds)."""
    callback_state: str | None = None
    """Where its completion callback stands: a ``CallbackState`` value, None before the end."""
    callback_attempts: int = 0
    """How many times a runner claimed the callback."""
    errors: list[ErrorEntry] = field(default_factory=list)
    """Errors recorded on the cluster (a failed callback's among them): the first and the latest
    ones (``ERRORS_KEPT``)."""
    errors_dropped: int = 0
    """Errors left out of ``errors``."""
    user: dict[str, Any] = field(default_factory=dict)
    """Your own fields, set with ``update_message_cluster``."""
    revision: int = 0
    """The record's revision, raised by each conditional update."""
    on_complete: OnComplete | None = None
    """The completion bound at creation (``create_message_cluster(on_complete=...)``)."""
    cancelled: int = 0
    """Tasks cancelled before they started (``cancel_message_cluster``), each counted once."""
    cancelled_at: str | None = None
    """When ``cancel_message_cluster`` was called (ISO 8601); None if it never was."""
    cancel_reason: str | None = None
    """The ``reason`` given to ``cancel_message_cluster``."""
    results_to: str | None = None
    """``"s3"`` when created with ``results="s3"``."""
    results_location: Mapping[str, str] | None = None
    """Where every result was written as JSON Lines (``Bucket``, ``Key``), once it ended."""
    redrives: int = 0
    """How many times it was redriven (``redrive_message_cluster``): 0 for the first run, so
    a completion can tell which end it is for."""
    redriving: bool = False
    """True while a redrive is under way (or stopped midway: calling it again finishes it)."""
    shards: int = 1
    """How many counter shards it counts into (``shards``)."""
    streaming: bool = False
    """True while the tasks of a cluster created from a long stream are still being read:
    ``total`` is then what was sent so far, and the cluster cannot end."""
    client: Any = field(default=None, repr=False, compare=False)

    @property
    def id(self) -> str:
        """The cluster id (``pKey`` without ``SQSMessage$``)."""
        return self.key.id

    @property
    def in_progress(self) -> int:
        """Tasks not yet counted as completed, failed or cancelled."""
        return max(0, self.total - self.completed - self.failed - self.cancelled)

    @property
    def is_finished(self) -> bool:
        """True once every task was counted (the cluster is ``COMPLETE``, ``ERROR`` or, once
        cancelled, ``STOPPED``)."""
        return self.status in FINISHED

    @property
    def is_cancelled(self) -> bool:
        """True once ``cancel_message_cluster`` was called on it."""
        return self.cancelled_at is not None

    @property
    def succeeded(self) -> bool:
        """True when the cluster ended ``COMPLETE`` (failures within ``tolerated_failures``)."""
        return self.status is Status.COMPLETE

    async def get_globals(self) -> Globals:
        """The globals object, read from S3 now (ValueError if created with omit_globals)."""
        if self.globals_location is None:
            raise ValueError(f"cluster {self.id} has no globals (omit_globals)")
        value: Globals = await self._bound()._globals_at(self.globals_location)
        return value

    def iter_tasks(self, status: Status | None = None) -> AsyncIterator[MessageRecord[Any]]:
        """Task records of this cluster in index order, optionally only those in ``status``."""
        iterator: AsyncIterator[MessageRecord[Any]] = self._bound().iter_tasks(self, status=status)
        return iterator

    def _bound(self) -> Any:
        if self.client is None:
            raise RuntimeError("this cluster record is not bound to a client")
        return self.client


ClusterCallback = Callable[
    [ClusterRecord[Any, Any], Callable[[], Awaitable[Any]]], Awaitable[Any] | Any
]
"""``callback(cluster, get_globals)``: sync or async; runs once when the cluster ends."""


class TaskResult(NamedTuple, Generic[Task, Result]):
    """A completed task's outcome: ``for index, task, result in client.iter_results(key)``.

    ``TaskResult[Order, Receipt]`` types ``task`` and ``result`` (both ``Any`` when left out):
    annotate the iterator, ``results: AsyncIterator[TaskResult[Order, Receipt]] =
    client.iter_results(key)``. Nothing is checked at run time.
    """

    task_index: int
    """The task's index in the cluster's task list."""
    task: Task
    """The task as given (None when it was larger than ``Config.record_body_bytes``)."""
    result: Result
    """What its handler returned (None when it returned nothing, or it was dropped)."""


def cluster_from_items(
    items: Sequence[Mapping[str, Any]], key: RecordKey
) -> ClusterRecord[Any, Any]:
    """Build a ClusterRecord from the deserialised items of the cluster's partition.

    ``key`` may carry only the ``pKey``: the cluster item is recognised by its type.
    """
    main: Mapping[str, Any] | None = None
    completed = failed = cancelled = sent = 0
    redriving = False
    shards = 1
    for item in items:
        r_key = item["rKey"]
        if item.get("type") == "cluster":
            main = item
            key = RecordKey(item["pKey"], r_key)
        elif r_key.startswith(COUNTER_PREFIX):
            redriving = "redriveHold" in item
            shards = int(item.get("shards", 1))
        elif r_key == SHARD_R_KEY:
            completed += int(item.get("completed", 0))
            failed += int(item.get("failed", 0))
            cancelled += int(item.get("cancelled", 0))
        elif r_key == PROGRESS_R_KEY:
            sent = int(item.get("sentCount", 0))
    if main is None:
        raise RecordNotFoundError(key)
    location = main.get("globals")
    sent = max(sent, int(main.get("sentCount", 0)))
    streaming = "total" not in main and bool(main.get("stream"))
    return ClusterRecord(
        key=key,
        total=sent if streaming else int(main.get("total", 0)),
        streaming=streaming,
        shards=shards,
        sent=sent,
        completed=completed,
        failed=failed,
        tolerated_failures=int(main.get("toleratedFailures", 0)),
        globals_location=dict(location) if isinstance(location, Mapping) else None,
        callback_state=main.get("callbackState"),
        callback_attempts=int(main.get("callbackAttempts", 0)),
        on_complete=on_complete_from(main.get("onComplete")),
        cancelled=cancelled,
        cancelled_at=main.get("cancelledAt"),
        cancel_reason=main.get("cancelReason"),
        results_to=main.get("resultsTo"),
        results_location=dict(main["results"])
        if isinstance(main.get("results"), Mapping)
        else None,
        redrives=int(main.get("redrives", 0)),
        redriving=redriving,
        **record_fields(main),
    )
