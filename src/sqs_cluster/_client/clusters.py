"""The cluster half of :class:`MessageClient`: create, read, update, globals and fan-in."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .._clusters.bound import (
    CallbackImportError,
    CompletionQueue,
    OnComplete,
    completion_key,
    import_callback,
)
from .._clusters.cancel import cancel_cluster
from .._clusters.complete import (
    callback_due,
    completion_summary,
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
from .._clusters.model import ClusterCallback, ClusterRecord, TaskResult, globals_object_key
from .._clusters.plan import collect_tasks, plan_cluster
from .._clusters.read import cluster_ended, coerce_cluster_key, iter_task_records, read_cluster
from .._clusters.sources import read_tasks, write_results
from .._concurrency import call_handler
from .._errors import ConfigError, RecordNotFoundError, ValidationError
from .._messages.event import ReceivedMessage
from .._messages.outgoing import prepare_message
from .._messages.sending import Progress, send_keyed
from .._messages.tracking import complete_message
from .._records.model import MessageRecord, RecordKey, Status
from .._records.store import Changes, ChangesFn, update_record

logger = logging.getLogger("sqs_cluster")

if TYPE_CHECKING:
    import anyio

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
        :meth:`tasks_from_s3`): it is read to its end first, so the total is fixed before the
        first write and the cluster can never end early; resuming takes the same tasks again.

        Every task is validated before anything is written (errors name ``tasks[i]``). Then the
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
            await collect_tasks(tasks),
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

    async def cancel_message_cluster(
        self, key: ClusterKeyLike, reason: str | None = None
    ) -> ClusterRecord[Any, Any]:
        """Cancel a cluster: its tasks that have not started will not run; returns it.

        Tasks already running finish and are counted as usual. The others are stopped and
        counted ``cancelled`` now (a write per task, in transactions of 20), and their
        deliveries are deleted without running. The cluster then ends ``STOPPED`` (with
        ``reason`` as ``cancel_reason``) and its completion runs once, as for any end: it can
        tell by ``cluster.status`` / ``is_cancelled``. Calling it again finishes what a first
        call left; an ended cluster, or one still being fanned out, raises ValidationError.
        """
        cluster_key = coerce_cluster_key(key)
        if reason is not None and not isinstance(reason, str):
            raise ValidationError("reason", f"expected a string or None, got {reason!r}")
        ended = self._bind(await cancel_cluster(self._aws, cluster_key, reason))
        if ended is not None:
            await self._run_callback(ended, None)  # a bound completion runs here
        return await self.get_message_cluster(cluster_key, consistent_read=True)

    def tasks_from_s3(
        self, bucket: str, key: str, *, format: str | None = None
    ) -> AsyncIterator[Any]:
        """Tasks read from an S3 object, for ``create_message_cluster`` (Step Functions'
        ItemReader): JSON Lines (one JSON value a line; blank lines skipped) or CSV (one dict
        a row, keyed by the header), by ``format`` (``"jsonl"`` or ``"csv"``) or else by the
        key's extension. A line that does not parse raises ValidationError naming it."""
        return read_tasks(self._aws, bucket, key, format)

    def iter_results(self, key: ClusterKeyLike) -> AsyncIterator[TaskResult]:
        """``(index, task, result)`` of every completed task, in index order, 100 task records
        per request: never the whole cluster in memory."""
        return self._results(key)

    async def _results(self, key: ClusterKeyLike) -> AsyncIterator[TaskResult]:
        cluster = await self.get_message_cluster(key, consistent_read=True)
        async for record in iter_task_records(self._aws, cluster, Status.COMPLETE):
            assert record.task_index is not None
            yield TaskResult(record.task_index, record.task, record.result)

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

    async def update_message_cluster_globals(self, key: ClusterKeyLike, value_or_fn: Any) -> Any:
        """Replace the globals, or pass ``fn(old) -> new`` for a safe read-modify-write.

        The function form writes with If-Match on the ETag it read and retries on conflict,
        so concurrent updaters never lose each other's changes. Returns the new globals.
        """
        return await update_globals(self._aws, self._globals_location(key), value_or_fn)

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

    async def _after_task(
        self,
        message: ReceivedMessage[Any],
        callback: ClusterCallback | None,
        limiter: anyio.CapacityLimiter | None = None,
    ) -> None:
        """For a task seen complete again: end its cluster and run a due callback (recovery).

        A late copy may outlive its cluster (every record expired): there is nothing left to
        end, and the copy is settled rather than retried into the dead-letter queue.
        """
        assert message.cluster_key is not None
        try:
            cluster = await finalize_if_done(self._aws, message.cluster_key)
        except RecordNotFoundError:
            logger.warning(
                "message %s: its cluster %s is gone (expired): a late duplicate of a settled "
                "task, with no cluster left to end",
                message.message_id,
                message.cluster_key.id,
            )
            return
        await self._run_callback(self._bind(cluster), callback, limiter)

    async def _run_callback(
        self,
        cluster: ClusterRecord[Any, Any] | None,
        callback: ClusterCallback | None,
        limiter: anyio.CapacityLimiter | None = None,
    ) -> None:
        """Run a due callback; a sync one in a worker thread under the batch's ``limiter``.

        The completion bound at creation wins over the consumer's ``callback``. Results asked
        for in S3 are written first, so the completion finds them."""
        due = cluster is not None and callback_due(cluster)
        if (
            due
            and cluster is not None
            and cluster.results_to == "s3"
            and not cluster.results_location
        ):
            location = await write_results(self._aws, cluster)
            cluster = dataclasses.replace(cluster, results_location=location)
        callback = self._callback_for(cluster, callback)
        if callback is not None:
            await run_callback(self._aws, cluster, callback, limiter)

    def _callback_for(
        self, cluster: ClusterRecord[Any, Any] | None, callback: ClusterCallback | None
    ) -> ClusterCallback | None:
        """The callback an ended cluster runs: its bound ``on_complete``, else ``callback``.

        An import path that does not import here becomes a callback that raises, so the error
        is recorded on the cluster (and retried), never skipped in silence.
        """
        if cluster is None or not callback_due(cluster):
            return callback
        bound = cluster.on_complete
        if isinstance(bound, CompletionQueue):
            queue_url = bound.queue_url

            async def send(done: ClusterRecord[Any, Any], get_globals: Any) -> None:
                await self._send_completion(queue_url, done)

            return send
        if isinstance(bound, str):
            try:
                return import_callback(bound)
            except CallbackImportError as exc:
                error = exc

                def fail(done: ClusterRecord[Any, Any], get_globals: Any) -> None:
                    raise error

                return fail
        if callback is None and cluster.callback_attempts == 0:  # the end, or a late copy
            logger.warning(
                "cluster %s ended with no completion: pass on_complete to "
                "create_message_cluster (or on_cluster_complete to safe_process_batch)",
                cluster.id,
            )
        return callback

    async def _send_completion(self, queue_url: str, cluster: ClusterRecord[Any, Any]) -> None:
        """Send the cluster's completion message under its derived key (effectively once)."""
        prepared = prepare_message(
            0,
            queue_url,
            completion_summary(cluster),
            meta_text=None,
            ttl_seconds=self._aws.config.record_ttl_seconds,
            field_name="on_complete",
            key=completion_key(cluster.key, queue_url),
        )
        await send_keyed(self._aws, queue_url, prepared)

    async def wait_for_message_cluster(
        self,
        key: ClusterKeyLike,
        timeout: float | None = None,  # noqa: ASYNC109 (the name Celery's get() uses)
        *,
        poll_seconds: float = 2.0,
        progress: Callable[[ClusterRecord[Any, Any]], Any] | None = None,
    ) -> ClusterRecord[Any, Any]:
        """Wait until the cluster ended; returns it (with its counts). Like Celery's
        ``GroupResult.get()``.

        Each poll reads the cluster's own item only (one GetItem), unless ``progress`` is given:
        then the counts are read too and ``progress(cluster)`` is called each poll. Raises
        :class:`TimeoutError`, with the counts so far, after ``timeout`` seconds.
        """
        if poll_seconds <= 0:
            raise ValidationError("poll_seconds", f"must be > 0, got {poll_seconds!r}")
        cluster_key = coerce_cluster_key(key)
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        while True:
            if progress is not None:
                cluster = await self.get_message_cluster(cluster_key, consistent_read=True)
                await call_handler(progress, cluster)
                ended = cluster.is_finished
            else:
                ended = await cluster_ended(self._aws, cluster_key)
            if ended:
                return await self.get_message_cluster(cluster_key, consistent_read=True)
            left = None if deadline is None else deadline - asyncio.get_running_loop().time()
            if left is not None and left <= 0:
                now = await self.get_message_cluster(cluster_key, consistent_read=True)
                raise TimeoutError(
                    f"cluster {now.id} has not ended after {timeout} s: {now.completed} "
                    f"completed, {now.failed} failed, {now.in_progress} of {now.total} left"
                )
            await asyncio.sleep(poll_seconds if left is None else min(poll_seconds, left))


__all__ = ["ClusterKeyLike", "ClusterOperations"]
