"""The lifecycle half of :class:`MessageClient`: a cluster's end (its completion, bound or
given, and its results in S3), waiting for it, cancelling and redriving it, tasks from S3 and
results."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._clusters.bound import CallbackImportError, CompletionQueue, completion_key, import_callback
from .._clusters.cancel import cancel_cluster
from .._clusters.complete import callback_due, completion_summary, finalize_if_done, run_callback
from .._clusters.model import ClusterCallback, ClusterRecord, TaskResult
from .._clusters.plan import collect_tasks
from .._clusters.read import cluster_ended, coerce_cluster_key, iter_task_records
from .._clusters.redrive import Target, find_targets, redrive, redrive_number, reopen
from .._clusters.sources import read_tasks, write_results
from .._concurrency import call_handler
from .._errors import RecordNotFoundError, ValidationError
from .._messages.event import ReceivedMessage
from .._messages.outgoing import prepare_message, sizing_for
from .._messages.sending import send_keyed
from .._records.model import Status
from .clusters import ClusterKeyLike, ClusterOperations

logger = logging.getLogger("sqs_cluster")

if TYPE_CHECKING:
    import anyio


class LifecycleOperations(ClusterOperations):
    """What happens around a cluster's end; mixed into MessageClient."""

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

    async def redrive_message_cluster(self, key: ClusterKeyLike, tasks: Any = None) -> int:
        """Run again the tasks of an ended cluster that failed for good or were cancelled
        (Step Functions' redrive); returns how many were sent again (0: nothing to redrive).

        The cluster goes back to ``IN PROGRESS``, those tasks move from ``failed`` /
        ``cancelled`` back to outstanding, and it ends again once they ended, its completion
        running once more (``cluster.redrives`` says which redrive it is). A failed task's
        record keeps its value when it is at most ``Config.record_body_bytes``; cancelled
        tasks, and larger ones, need ``tasks``: the cluster's task list again (a list or an
        iterable, as given to ``create_message_cluster``). A redrive that stopped midway (a
        crash, RedriveError) goes on where it stopped when called again. On a FIFO queue each
        task is its own message group. ValidationError for a cluster that has not ended.
        """
        cluster = await self.get_message_cluster(coerce_cluster_key(key), consistent_read=True)
        number = redrive_number(cluster)
        targets = await find_targets(self._aws, cluster, number)
        if not targets and not cluster.redriving:
            logger.info(
                "cluster %s: no task failed or was cancelled, nothing to redrive", cluster.id
            )
            return 0
        given = await self._redrive_tasks(cluster, targets, tasks)
        sizing = sizing_for(self._aws.config, await self._preflight.queue_max_bytes(cluster.url))
        if not cluster.redriving:
            await reopen(self._aws, cluster, number)
        await redrive(self._aws, cluster, number, targets, given, sizing)
        ended = self._bind(await finalize_if_done(self._aws, cluster.key))
        if ended is not None:
            await self._run_callback(ended, None)  # a bound completion runs here
        return len(targets)

    async def _redrive_tasks(
        self, cluster: ClusterRecord[Any, Any], targets: list[Target], tasks: Any
    ) -> Sequence[Any] | None:
        """The caller's task list, checked, when some target's record did not keep its value."""
        missing = [t.index for t in targets if not t.kept]
        if tasks is None:
            if missing:
                shown = ", ".join(map(str, missing[:5])) + (" ..." if len(missing) > 5 else "")
                raise ValidationError(
                    "tasks",
                    f"{len(missing)} of the {len(targets)} tasks to redrive (indexes {shown}) "
                    "were cancelled before they ran, or were larger than "
                    "Config.record_body_bytes, so their records do not hold them: pass "
                    "tasks=, the cluster's task list",
                )
            return None
        given = await collect_tasks(tasks)
        if isinstance(given, (str, bytes, Mapping)) or not isinstance(given, Sequence):
            raise ValidationError(
                "tasks", f"expected a list or an iterable, got {type(tasks).__name__}"
            )
        if len(given) != cluster.total:
            raise ValidationError(
                "tasks", f"expected the cluster's {cluster.total} tasks, got {len(given)}"
            )
        return given

    def tasks_from_s3(
        self, bucket: str, key: str, *, format: str | None = None
    ) -> AsyncIterator[Any]:
        """Tasks read from an S3 object, for ``create_message_cluster`` (Step Functions'
        ItemReader): JSON Lines (one JSON value a line; blank lines skipped) or CSV (one dict
        a row, keyed by the header), by ``format`` (``"jsonl"`` or ``"csv"``) or else by the
        key's extension. A line that does not parse raises ValidationError naming it."""
        return read_tasks(self._aws, bucket, key, format)

    def iter_results(self, key: ClusterKeyLike) -> AsyncIterator[TaskResult[Any, Any]]:
        """``(index, task, result)`` of every completed task, in index order, 100 task records
        per request: never the whole cluster in memory."""
        return self._results(key)

    async def _results(self, key: ClusterKeyLike) -> AsyncIterator[TaskResult[Any, Any]]:
        cluster = await self.get_message_cluster(key, consistent_read=True)
        async for record in iter_task_records(self._aws, cluster, Status.COMPLETE):
            assert record.task_index is not None
            yield TaskResult(record.task_index, record.task, record.result)

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
        if cluster is not None and _results_due(cluster):
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
            key=completion_key(cluster.key, queue_url, cluster.redrives),
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
                if cluster.is_finished:
                    return cluster
            elif await cluster_ended(self._aws, cluster_key):
                return await self.get_message_cluster(cluster_key, consistent_read=True)
            left = None if deadline is None else deadline - asyncio.get_running_loop().time()
            if left is not None and left <= 0:
                now = await self.get_message_cluster(cluster_key, consistent_read=True)
                raise TimeoutError(
                    f"cluster {now.id} has not ended after {timeout} s: {now.completed} "
                    f"completed, {now.failed} failed, {now.in_progress} of {now.total} left"
                )
            await asyncio.sleep(poll_seconds if left is None else min(poll_seconds, left))


def _results_due(cluster: ClusterRecord[Any, Any]) -> bool:
    """Results asked for in S3, the cluster ended, and they are not written yet."""
    return cluster.results_to == "s3" and not cluster.results_location and callback_due(cluster)


__all__ = ["LifecycleOperations"]
