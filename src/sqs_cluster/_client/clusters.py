"""The cluster half of :class:`MessageClient`: create, read, update, globals and fan-in
(counting a settled task); what happens around the end is in ``lifecycle``."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
)
from typing import TYPE_CHECKING, Any

from typing_extensions import overload

from .._clusters.bound import (
    OnComplete,
)
from .._clusters.complete import (
    finalize_if_done,
    finish_counted,
    message_entry,
    run_callback,
    task_entry,
)
from .._clusters.count import Entry, Outcome, settle
from .._clusters.create import create_cluster
from .._clusters.fanin import FanIn
from .._clusters.globals import read_globals, update_globals
from .._clusters.model import ClusterCallback, ClusterRecord, globals_object_key
from .._clusters.plan import plan_cluster
from .._clusters.read import coerce_cluster_key, iter_task_records, read_cluster
from .._clusters.stream import read_tasks
from .._errors import ConfigError
from .._messages.event import ReceivedMessage
from .._messages.sending import Progress
from .._messages.tracking import complete_message
from .._records.model import MessageRecord, RecordKey, Status
from .._records.store import Changes, ChangesFn, update_record
from .._types import Value

logger = logging.getLogger("sqs_cluster")

if TYPE_CHECKING:
    from .._aws.clients import AWS
    from .._aws.preflight import Preflight

ClusterKeyLike = RecordKey | Mapping[str, str] | str
"""A RecordKey, a ``{"pKey", "rKey"}`` mapping, or just the cluster's ``pKey`` string."""


class ClusterOperations:
    """Cluster methods; mixed into MessageClient, which provides ``_aws``."""

    _aws: AWS
    _preflight: Preflight

    async def create_message_cluster(
        self,
        queue_url: str,
        tasks: Iterable[Any] | AsyncIterable[Any],
        *,
        globals: Any = None,
        meta: Any = None,
        omit_globals: bool = False,
        cluster_id: str | None = None,
        progress: Progress | None = None,
        tolerated_failures: int | str | None = None,
        message_group_id: str | Callable[[Any], str] | None = None,
        on_complete: OnComplete | None = None,
        results: str | None = None,
    ) -> RecordKey:
        """Fan out one message per task, fan back in with ``on_cluster_complete``.

        ``tasks`` is a list, or any iterable or async iterable (a generator,
        :meth:`tasks_from_s3`). A stream of up to ``Config.stream_tasks_above`` tasks (16,000)
        is read whole first; a longer one is fanned out as it is read, in bounded memory, and
        its total is fixed when it ends: the cluster cannot end before (``streaming``). Resuming
        takes the same tasks again, from the start.

        Every task is validated before anything is written (errors name ``tasks[i]``), except
        those of a long stream, checked as they are read: a bad one stops the fan-out with
        ClusterSendError naming it, and a resume with the stream fixed goes on. Then the
        cluster record, the globals object (``<pKey>-globals.json``, SSE-encrypted), the task
        records and the messages are written, concurrently under the client's semaphore.
        ``progress(n)`` is called as tasks are confirmed sent. If it fails (ClusterSendError
        names the id) or the process dies, call it again with the same ``cluster_id`` to resume
        without resending what was sent. One call fans a cluster out at a time: a second call
        waits for the first (at most one fan-out lease, ``min(lease_seconds, 30)`` seconds),
        then resumes what is left, or returns while the first is still sending.
        ``tolerated_failures`` (a count or ``"10%"``) decides whether the cluster ends
        ``COMPLETE`` or ``ERROR`` when tasks fail their last allowed receive.

        On a FIFO queue (its URL ends in ``.fifo``) each task goes to the message group
        ``message_group_id`` names (a string, or a function of the task returning one; by
        default one group per task), with a deduplication id made of the cluster id and the
        task's index, so a resume within SQS's 5-minute window sends no duplicate.
        ``message_group_id`` on a standard queue, or a group id that is not a string of 1-128
        characters, raises ValidationError before anything is written.

        ``on_complete`` binds the completion to the cluster, so whichever consumer ends it
        runs it, whatever it passes to ``safe_process_batch``: ``"package.module:function"``
        (imported here first: a path that does not import raises ValidationError) is called
        like an ``on_cluster_complete`` callback, exactly once; ``CompletionQueue(url)``
        sends one tracked message with the cluster's summary to that queue.
        ``results="s3"`` writes every result as one JSON Lines object in ``Config.bucket``
        when the cluster ends, before its completion runs (``ClusterRecord.results_location``).
        """
        plan = await plan_cluster(
            self._aws,
            queue_url,
            await read_tasks(tasks, self._aws.config.stream_tasks_above),
            globals_value=globals,
            meta=meta,
            omit_globals=omit_globals,
            cluster_id=cluster_id,
            tolerated_failures=tolerated_failures,
            queue_max_bytes=self._preflight.queue_max_bytes,
            message_group_id=message_group_id,
            on_complete=on_complete,
            results=results,
        )
        if plan.location is None:
            await self._preflight.table()
        else:  # independent reads: one round trip, not two
            await asyncio.gather(self._preflight.table(), self._preflight.bucket())
        return await create_cluster(self._aws, plan, progress=progress)

    async def get_message_cluster(
        self, key: ClusterKeyLike, consistent_read: bool = False
    ) -> ClusterRecord[Any, Any]:
        """The cluster record with its counts; ``get_globals()`` and ``iter_tasks()`` are lazy."""
        cluster = await read_cluster(
            self._aws, coerce_cluster_key(key), consistent_read=consistent_read
        )
        return dataclasses.replace(cluster, client=self)

    def iter_tasks(
        self, cluster: ClusterRecord[Any, Any], status: Status | None = None
    ) -> AsyncIterator[MessageRecord[Any]]:
        """Task records of ``cluster`` in index order (100 per request), filtered by status."""
        return iter_task_records(self._aws, cluster, status)

    def _globals_location(self, key: ClusterKeyLike) -> dict[str, str]:
        bucket = self._aws.config.bucket
        if not bucket:
            raise ConfigError("bucket: cluster globals need Config.bucket")
        return {"Bucket": bucket, "Key": globals_object_key(coerce_cluster_key(key))}

    async def _globals_at(self, location: Mapping[str, str]) -> Any:
        """The globals at a stored ``{"Bucket", "Key"}`` location."""
        value, _ = await read_globals(self._aws, location)
        return value

    async def get_message_cluster_globals(self, key: ClusterKeyLike) -> Any:
        """The cluster's globals, read from S3 (accepts the key or just the ``pKey``)."""
        value, _ = await read_globals(self._aws, self._globals_location(key))
        return value

    @overload
    async def update_message_cluster_globals(
        self, key: ClusterKeyLike, value_or_fn: Callable[[Value], Awaitable[Value]]
    ) -> Value: ...
    @overload
    async def update_message_cluster_globals(
        self, key: ClusterKeyLike, value_or_fn: Callable[[Value], Value]
    ) -> Value: ...
    @overload
    async def update_message_cluster_globals(
        self, key: ClusterKeyLike, value_or_fn: Value
    ) -> Value: ...
    async def update_message_cluster_globals(self, key: ClusterKeyLike, value_or_fn: Any) -> Any:
        """Replace the globals, or pass ``fn(old) -> new`` for a safe read-modify-write.

        The function form writes with If-Match on the ETag it read and retries on conflict,
        so concurrent updaters never lose each other's changes. Returns the new globals, typed
        as the value given or as what the function returns (``fn(old: Prices) -> Prices``
        returns ``Prices``).
        """
        return await update_globals(self._aws, self._globals_location(key), value_or_fn)

    @overload
    async def update_cluster_globals(
        self, key: ClusterKeyLike, value_or_fn: Callable[[Value], Awaitable[Value]]
    ) -> Value: ...
    @overload
    async def update_cluster_globals(
        self, key: ClusterKeyLike, value_or_fn: Callable[[Value], Value]
    ) -> Value: ...
    @overload
    async def update_cluster_globals(self, key: ClusterKeyLike, value_or_fn: Value) -> Value: ...
    async def update_cluster_globals(self, key: ClusterKeyLike, value_or_fn: Any) -> Any:
        """Alias of :meth:`update_message_cluster_globals` (the design documents' name)."""
        return await self.update_message_cluster_globals(key, value_or_fn)

    async def update_message_cluster(
        self, key: ClusterKeyLike, changes_or_fn: Changes | ChangesFn
    ) -> ClusterRecord[Any, Any]:
        """Change the cluster's ``meta`` or your own fields, conditionally (like records)."""
        key = coerce_cluster_key(key)
        await self._preflight.table()
        cluster = await self.get_message_cluster(key)
        await update_record(self._aws, cluster.key, changes_or_fn, expected_type="cluster")
        return await self.get_message_cluster(cluster.key, consistent_read=True)

    async def on_cluster_complete(self, key: ClusterKeyLike, callback: ClusterCallback) -> bool:
        """Run ``callback(cluster, get_globals)`` if the cluster ended and it has not run yet.

        Returns True if this call ran it. Exactly one caller runs it even when many workers
        finish together; if its runner died, a later call (or redelivery) runs it again. A
        failing callback's error is recorded on the cluster and raised; ConflictError means
        this call's claim lapsed before the callback started (call again).
        """
        cluster = await finalize_if_done(self._aws, coerce_cluster_key(key))
        return await run_callback(self._aws, self._bind(cluster), callback)

    async def _finish_task(
        self,
        message: ReceivedMessage[Any],
        error: BaseException | None = None,
        result: Any = None,
    ) -> tuple[bool, ClusterRecord[Any, Any] | None]:
        """Count a task (complete, or failed for good) and end its cluster if it was the last.

        Returns whether this call counted it, and the cluster once every task was counted.
        """
        (outcome,) = await settle(
            self._aws, [task_entry(self._aws, message, error=error, result=result)]
        )
        return outcome.applied, await self._after_settled(message, outcome)

    def _fan_in(self) -> FanIn:
        """A batch's group commit: what its messages settle together is one transaction."""
        return FanIn(self._aws)

    def _entry_for(
        self, message: ReceivedMessage[Any], *, error: BaseException | None, result: Any
    ) -> Entry | None:
        """What settling ``message`` writes in the batch's transaction; None when it is written
        on its own (a plain message's record deleted on completion)."""
        if message.is_task:
            return task_entry(self._aws, message, error=error, result=result)
        if self._aws.config.delete_completed or error is not None:
            return None
        return message_entry(self._aws, message, result)

    async def _after_settled(
        self, message: ReceivedMessage[Any], outcome: Outcome
    ) -> ClusterRecord[Any, Any] | None:
        """After a task's settlement: its cluster, bound to this client, once every task was
        counted. A task that this call did not count was settled by another delivery: look
        whether that one ended the cluster (it may have died before ending it)."""
        if not message.is_task:
            return None
        assert message.cluster_key is not None
        if outcome.applied:
            ended = await finish_counted(self._aws, message.cluster_key, outcome)
        else:
            ended = await finalize_if_done(self._aws, message.cluster_key)
        return self._bind(ended)

    async def _settle_alone(
        self, message: ReceivedMessage[Any], *, error: BaseException | None, result: Any
    ) -> ClusterRecord[Any, Any] | None:
        """Settle a message outside the batch's transaction (see ``_entry_for``)."""
        if message.is_task:
            _, cluster = await self._finish_task(message, error, result)
            return cluster
        await complete_message(self._aws, message.key, result)
        return None

    def _bind(self, cluster: ClusterRecord[Any, Any] | None) -> ClusterRecord[Any, Any] | None:
        return None if cluster is None else dataclasses.replace(cluster, client=self)


__all__ = ["ClusterKeyLike", "ClusterOperations"]
