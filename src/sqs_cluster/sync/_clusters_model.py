# Generated — do not edit: scripts/gen_sync.py writes this from sqs_cluster._clusters.model.
# Body digest: e4cdcec8921227ab (gen_sync.py --check tells hand edits from stale files).
"""Blocking twin of ``sqs_cluster._clusters.model`` (generated)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Generic

from .._clusters.bound import OnComplete
from .._clusters.model import ClusterRecord as _AsyncClusterRecord
from .._facade import runtime as _facade
from .._records.model import ErrorEntry, MessageRecord, RecordKey, Status, StatusCode
from .._types import Globals, Meta


class ClusterRecord(
    _facade.View[_AsyncClusterRecord[Meta, Globals]],
    Generic[Meta, Globals],
    core_type=_AsyncClusterRecord,
):
    """A cluster as stored: status, meta, counts and where its globals live.

    ``get_globals()`` reads the globals from S3 only when called; ``iter_tasks()`` pages through
    the task records (100,000 tasks never live in one item).

    Blocking view generated from :class:`sqs_cluster.ClusterRecord`: fields are the async object's;
    its async methods block and return the result. See docs/sync.md.
    """

    __slots__ = ()

    @property
    def key(self) -> RecordKey:
        """The key of the cluster's record."""
        return self._core.key

    @property
    def url(self) -> str:
        """The queue its tasks were sent to."""
        return self._core.url

    @property
    def status(self) -> Status:
        """``PRE FLIGHT`` while fanning out, ``IN PROGRESS``, then ``COMPLETE`` or ``ERROR`` (or
        ``STOPPED`` once cancelled).
        """
        return self._core.status

    @property
    def status_code(self) -> StatusCode:
        """The numeric form of ``status``."""
        return self._core.status_code

    @property
    def total(self) -> int:
        """How many tasks the cluster has."""
        return self._core.total

    @property
    def sent(self) -> int:
        """Tasks confirmed sent so far."""
        return self._core.sent

    @property
    def completed(self) -> int:
        """Tasks completed, each counted once."""
        return self._core.completed

    @property
    def failed(self) -> int:
        """Tasks failed for good (their last allowed receive failed), each counted once."""
        return self._core.failed

    @property
    def tolerated_failures(self) -> int:
        """Failed tasks allowed before the cluster ends ``ERROR``."""
        return self._core.tolerated_failures

    @property
    def meta(self) -> Meta | None:
        """The ``meta`` given at creation (or changed since)."""
        return self._core.meta

    @property
    def globals_location(self) -> Mapping[str, str] | None:
        """Where the globals live in S3 (``Bucket``, ``Key``); None without globals."""
        return self._core.globals_location

    @property
    def started_at(self) -> str | None:
        """When the cluster was created (ISO 8601)."""
        return self._core.started_at

    @property
    def updated_at(self) -> str | None:
        """When the cluster record last changed (ISO 8601)."""
        return self._core.updated_at

    @property
    def completed_at(self) -> str | None:
        """When the last task was counted (ISO 8601)."""
        return self._core.completed_at

    @property
    def expires_at(self) -> int | None:
        """When DynamoDB may delete the record (epoch seconds)."""
        return self._core.expires_at

    @property
    def callback_state(self) -> str | None:
        """Where its completion callback stands: a ``CallbackState`` value, None before the end."""
        return self._core.callback_state

    @property
    def callback_attempts(self) -> int:
        """How many times a runner claimed the callback."""
        return self._core.callback_attempts

    @property
    def errors(self) -> list[ErrorEntry]:
        """Errors recorded on the cluster (a failed callback's among them): the first and the latest
        ones (``ERRORS_KEPT``).
        """
        return self._core.errors

    @property
    def errors_dropped(self) -> int:
        """Errors left out of ``errors``."""
        return self._core.errors_dropped

    @property
    def user(self) -> dict[str, Any]:
        """Your own fields, set with ``update_message_cluster``."""
        return self._core.user

    @property
    def revision(self) -> int:
        """The record's revision, raised by each conditional update."""
        return self._core.revision

    @property
    def on_complete(self) -> OnComplete | None:
        """The completion bound at creation (``create_message_cluster(on_complete=...)``)."""
        return self._core.on_complete

    @property
    def cancelled(self) -> int:
        """Tasks cancelled before they started (``cancel_message_cluster``), each counted once."""
        return self._core.cancelled

    @property
    def cancelled_at(self) -> str | None:
        """When ``cancel_message_cluster`` was called (ISO 8601); None if it never was."""
        return self._core.cancelled_at

    @property
    def cancel_reason(self) -> str | None:
        """The ``reason`` given to ``cancel_message_cluster``."""
        return self._core.cancel_reason

    @property
    def results_to(self) -> str | None:
        """``"s3"`` when created with ``results="s3"``."""
        return self._core.results_to

    @property
    def results_location(self) -> Mapping[str, str] | None:
        """Where every result was written as JSON Lines (``Bucket``, ``Key``), once it ended."""
        return self._core.results_location

    @property
    def redrives(self) -> int:
        """How many times it was redriven (``redrive_message_cluster``): 0 for the first run, so
        a completion can tell which end it is for.
        """
        return self._core.redrives

    @property
    def redriving(self) -> bool:
        """True while a redrive is under way (or stopped midway: calling it again finishes it)."""
        return self._core.redriving

    @property
    def shards(self) -> int:
        """How many counter shards it counts into (``shards``)."""
        return self._core.shards

    @property
    def streaming(self) -> bool:
        """True while the tasks of a cluster created from a long stream are still being read:
        ``total`` is then what was sent so far, and the cluster cannot end.
        """
        return self._core.streaming

    @property
    def id(self) -> str:
        """The cluster id (``pKey`` without ``SQSMessage$``)."""
        return self._core.id

    @property
    def in_progress(self) -> int:
        """Tasks not yet counted as completed, failed or cancelled."""
        return self._core.in_progress

    @property
    def is_finished(self) -> bool:
        """True once every task was counted (the cluster is ``COMPLETE``, ``ERROR`` or, once
        cancelled, ``STOPPED``).
        """
        return self._core.is_finished

    @property
    def is_cancelled(self) -> bool:
        """True once ``cancel_message_cluster`` was called on it."""
        return self._core.is_cancelled

    @property
    def succeeded(self) -> bool:
        """True when the cluster ended ``COMPLETE`` (failures within ``tolerated_failures``)."""
        return self._core.succeeded

    def get_globals(self) -> Globals:
        """The globals object, read from S3 now (ValueError if created with omit_globals)."""
        return self._call(self._core.get_globals)

    def iter_tasks(self, status: Status | None = None) -> Iterator[MessageRecord[Any]]:
        """Task records of this cluster in index order, optionally only those in ``status``."""
        return self._iterate(self._core.iter_tasks, status)
