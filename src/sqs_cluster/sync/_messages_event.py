# Generated — do not edit: scripts/gen_sync.py writes this from sqs_cluster._messages.event.
# Body digest: 8aa53042e07c7f71 (gen_sync.py --check tells hand edits from stale files).
"""Blocking twin of ``sqs_cluster._messages.event`` (generated)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, cast

from .._facade import runtime as _facade
from .._messages.event import ReceivedMessage as _AsyncReceivedMessage
from .._messages.payloads import PayloadRef
from .._records.model import MessageRecord, RecordKey, RecordType
from .._types import Body, Globals
from ._clusters_model import ClusterRecord


class ReceivedMessage(
    _facade.View[_AsyncReceivedMessage[Body, Globals]],
    Generic[Body, Globals],
    core_type=_AsyncReceivedMessage,
):
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

    Blocking view generated from :class:`sqs_cluster.ReceivedMessage`: fields are the async
    object's; its async methods block and return the result. See docs/sync.md.
    """

    __slots__ = ()

    @property
    def message_id(self) -> str:
        """SQS's id of this message."""
        return self._core.message_id

    @property
    def body(self) -> Body:
        """The body, JSON-decoded when it is JSON, else the text as sent."""
        return self._core.body

    @property
    def raw_body(self) -> str:
        """The body exactly as SQS delivered it (left out of the repr: ``body`` shows it)."""
        return self._core.raw_body

    @property
    def type(self) -> RecordType:
        """What the record tracks: a plain message or a cluster's task."""
        return self._core.type

    @property
    def key(self) -> RecordKey:
        """The key of this message's own record."""
        return self._core.key

    @property
    def queue_url(self) -> str:
        """The URL of the queue it was received from."""
        return self._core.queue_url

    @property
    def queue_arn(self) -> str:
        """The ARN of that queue (the event's ``eventSourceARN``)."""
        return self._core.queue_arn

    @property
    def receive_count(self) -> int:
        """How many times SQS has delivered it (``ApproximateReceiveCount``)."""
        return self._core.receive_count

    @property
    def receipt_handle(self) -> str | None:
        """The handle of this delivery, to delete it or change its visibility."""
        return self._core.receipt_handle

    @property
    def message_group_id(self) -> str | None:
        """The FIFO message group, None on a standard queue."""
        return self._core.message_group_id

    @property
    def tracked(self) -> bool:
        """True when it was sent through sqs-cluster (it carries its record key)."""
        return self._core.tracked

    @property
    def task(self) -> Body:
        """For a task, the task as given to ``create_message_cluster``; None for a message."""
        return self._core.task

    @property
    def task_index(self) -> int | None:
        """For a task, its index in the cluster's task list."""
        return self._core.task_index

    @property
    def cluster_key(self) -> RecordKey | None:
        """For a task, the key of its cluster's record."""
        return self._core.cluster_key

    @property
    def cluster_shards(self) -> int | None:
        """For a task, how many counter shards its cluster counts into."""
        return self._core.cluster_shards

    @property
    def globals_location(self) -> Mapping[str, str] | None:
        """For a task, where its cluster's globals live in S3 (``Bucket``, ``Key``)."""
        return self._core.globals_location

    @property
    def attributes(self) -> Mapping[str, Any]:
        """SQS's system attributes of the message."""
        return self._core.attributes

    @property
    def message_attributes(self) -> Mapping[str, Any]:
        """The message attributes, the record-key attribute included."""
        return self._core.message_attributes

    @property
    def raw(self) -> Mapping[str, Any]:
        """The Lambda SQS record as it came (left out of the repr: the fields above show it)."""
        return self._core.raw

    @property
    def payload(self) -> PayloadRef | None:
        """Where the body was offloaded (S3), for a message that came as a pointer."""
        return self._core.payload

    @property
    def payload_pending(self) -> bool:
        """True while ``body`` is still the pointer: ``await client.resolve_sqs_record(m)`` (and
        every consuming path of the client) loads it.
        """
        return self._core.payload_pending

    @property
    def is_task(self) -> bool:
        """True for a task of a message cluster."""
        return self._core.is_task

    def get_message_record(self, consistent_read: bool = False) -> MessageRecord[Any]:
        """Fetch this message's record (lazily: only when asked)."""
        return self._call(self._core.get_message_record, consistent_read)

    def get_message_cluster(self, consistent_read: bool = False) -> ClusterRecord[Any, Globals]:
        """Fetch the cluster of a task (raises for a plain message)."""
        return cast(
            "ClusterRecord[Any, Globals]",
            self._call(self._core.get_message_cluster, consistent_read),
        )

    def get_globals(self) -> Globals:
        """Read the cluster's globals from S3, where the task's body says they are.

        No cluster record is read. Raises ValueError for a plain message or a cluster
        created with ``omit_globals``.
        """
        return self._call(self._core.get_globals)
