# Generated — do not edit: scripts/gen_sync.py writes this from sqs_cluster._client.client.
# Body digest: a16f6e9406625b67 (gen_sync.py --check tells hand edits from stale files).
"""Blocking twin of ``sqs_cluster._client.client`` (generated)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, cast, overload

from .._aws.clients import RequestHook
from .._client.client import MessageClient as _AsyncMessageClient
from .._client.clusters import ClusterKeyLike
from .._clusters.bound import OnComplete
from .._clusters.model import TaskResult
from .._config import Config
from .._facade import runtime as _facade
from .._messages.batch import DEFAULT_BATCH_CONCURRENCY, PartialBatchResponse
from .._messages.errors import PartialSendError
from .._messages.outgoing import SentKeys
from .._messages.retry import Backoff
from .._messages.sending import Progress
from .._messages.tracking import Claim
from .._records.model import MessageRecord, RecordKey, Status
from .._records.store import Changes, ChangesFn
from .._types import Body, Value
from ._callbacks import ClusterCallback, FailureHook, Handler, RecordLike, SuccessHook
from ._clusters_model import ClusterRecord
from ._messages_event import ReceivedMessage


class MessageClient(_facade.ClientFacade[_AsyncMessageClient]):
    """Tracked SQS messages and message clusters; use as ``with MessageClient(cfg) as c``.

    Holds one session and one long-lived client per service for its whole life (open it once
    per Lambda container, outside the handler, to keep connections warm). Every AWS request of
    every method shares one semaphore of ``config.max_concurrency`` slots.

    ``metrics`` takes a Powertools ``Metrics`` (``aws_lambda_powertools.metrics.Metrics``):
    batch and fan-out metrics are added to it (flushed by its ``log_metrics``), a cluster's
    end is written as its own EMF line. ``Config.metrics_namespace`` does the same through
    ``aws-embedded-metrics`` instead; give one or the other. Off when neither is given.

    Blocking client generated from :class:`sqs_cluster.MessageClient`: each method runs its async
    twin on this client's own event-loop thread, which starts on first use and stops in ``close()``
    (or at exit). See docs/sync.md.
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        session: Any = None,
        clients: Mapping[str, Any] | None = None,
        metrics: Any = None,
    ) -> None:
        super().__init__(
            _AsyncMessageClient, config, session=session, clients=clients, metrics=metrics
        )

    @property
    def config(self) -> Config:
        return self._core.config

    @property
    def request_counts(self) -> Mapping[str, int]:
        """AWS requests issued so far, keyed ``"service.Operation"`` (retries not counted)."""
        return self._core.request_counts

    def add_request_hook(self, hook: RequestHook) -> Callable[[], None]:
        """Call ``hook(service, operation, params)`` before each request; returns a remover."""
        return self._plain(self._core.add_request_hook, hook)

    def send_message(
        self,
        queue_url: str,
        body: Any,
        *,
        meta: Any = None,
        idempotency_key: str | None = None,
        **sqs_params: Any,
    ) -> RecordKey:
        """Write a record, then send ``body``; returns the record's key.

        ``body`` is sent unchanged when it is a string, else as JSON. ``meta`` is stored on the
        record only. ``sqs_params`` are SendMessage parameters (``DelaySeconds``,
        ``MessageGroupId``, ``MessageAttributes`` ... up to 9 attributes: one carries the key).

        With ``idempotency_key`` (a non-empty string of at most 1,024 characters) the record
        key derives from it and the queue URL, and a second call with the same key sends
        nothing and returns the same key (logged at INFO): a producer retried by its own
        trigger sends its message once. A call that died between the record and the message
        is completed by the next one. The same key with another body, ``meta``, attributes or
        MessageGroupId raises :class:`IdempotencyConflictError`. On a FIFO queue the key also
        gives the MessageDeduplicationId, unless one is passed. To learn whether a message
        had been sent before, send it with ``send_message_batch`` (``SentKeys.already_sent``).
        """
        return self._call(
            self._core.send_message,
            queue_url,
            body,
            meta=meta,
            idempotency_key=idempotency_key,
            **sqs_params,
        )

    def send_message_batch(
        self,
        queue_url: str,
        entries: Sequence[Any],
        *,
        meta: Any = None,
        progress: Progress | None = None,
    ) -> SentKeys:
        """Send any number of messages: records first (25 a call), then messages (10 a call).

        Each entry is a body or a :class:`Message`. Partial failures are retried with jittered
        back-off; what still fails raises :class:`PartialSendError`, which lists the indexes sent
        and not sent: ``resend_unsent(error)`` sends just the unsent ones under their record
        keys, completing the batch without duplicates or records left behind.

        Returns the keys in the order of ``entries`` (a :class:`SentKeys` list). An entry
        with ``Message.idempotency_key`` is sent as by ``send_message(idempotency_key=...)``:
        ``already_sent`` lists those found sent before (nothing was sent for them). Two entries
        with one key are a ValidationError; a key whose record is another message's raises
        :class:`IdempotencyConflictError` before any message of the batch is sent.
        """
        return self._call(
            self._core.send_message_batch, queue_url, entries, meta=meta, progress=progress
        )

    def resend_unsent(
        self, error: PartialSendError, *, progress: Progress | None = None
    ) -> SentKeys:
        """Send the entries a :class:`PartialSendError` lists as not sent, under their keys.

        Returns the keys of the whole original batch, in order, once every entry was sent; if
        some still fail it raises PartialSendError again, with the original batch's indexes, so
        it can be passed here again. Records are not written twice, and an entry whose message
        a consumer has already received is not sent again. ``already_sent`` lists the entries
        of the batch whose idempotency key had been sent before it.
        """
        return self._call(self._core.resend_unsent, error, progress=progress)

    def get_message_record(
        self,
        key: RecordKey | Mapping[str, str],
        consistent_read: bool = False,
        *,
        load_body: bool = False,
    ) -> MessageRecord[Any]:
        """The record of a message or task; raises RecordNotFoundError.

        A body the record does not copy (see ``MessageRecord.body_at``) is loaded from S3 when
        ``load_body`` is True and it was offloaded (PayloadMissingError once it is deleted).
        """
        return self._call(self._core.get_message_record, key, consistent_read, load_body=load_body)

    def get_message_records(
        self, keys: Iterable[RecordKey | Mapping[str, str]]
    ) -> list[MessageRecord[Any] | None]:
        """Many records with BatchGetItem (100 keys a call); None where a record is missing."""
        return self._call(self._core.get_message_records, keys)

    def update_message_record(
        self, key: RecordKey | Mapping[str, str], changes_or_fn: Changes | ChangesFn
    ) -> MessageRecord[Any]:
        """Change ``meta`` or your own fields; a function gets the record and returns changes.

        The write is conditional on the record's revision and retried on conflict, so
        concurrent updaters never lose each other's changes.
        """
        return self._call(self._core.update_message_record, key, changes_or_fn)

    def claim(self, record: RecordLike) -> Claim:
        """Try to take the message's lease; see :class:`ClaimOutcome`.

        The lease lasts ``Config.lease_seconds``, capped by the queue's visibility timeout (less
        a margin), so a redelivery after a crash can take the message over.
        """
        return self._call(self._core.claim, record)

    def is_complete(self, record: RecordLike) -> bool:
        """True if the message was already processed (skip it); False once this call claims it.

        Claiming is the side effect that makes duplicates safe: the first delivery gets False
        and a lease. Raises :class:`MessageInProgressError` while another delivery holds a live
        lease: let it propagate so this delivery returns to the queue.
        """
        return self._call(self._core.is_complete, record)

    def mark_complete(self, record: RecordLike, result: Any = None) -> bool:
        """Mark the message complete; False if it already was (a duplicate completion).

        A JSON ``result`` is stored on the record in the same write (``MessageRecord.result``).
        For a task of a cluster the task is also counted in its cluster, exactly once, and
        the cluster ends if it was the last one.
        """
        return self._call(self._core.mark_complete, record, result)

    def mark_failed(self, record: RecordLike, error: BaseException) -> bool:
        """Append ``error`` to the record, set ``ERROR`` and release the lease for a retry.

        On the message's last allowed receive (``Config.max_receive_count`` or the queue's
        redrive policy) the record is marked stopped, and a task is counted as failed in its
        cluster so the cluster still ends.
        """
        return self._call(self._core.mark_failed, record, error)

    def is_last_receive(self, record: RecordLike) -> bool:
        """True when this delivery is the last one SQS will make before the DLQ."""
        return self._call(self._core.is_last_receive, record)

    def safe_process_batch(
        self,
        event: Any,
        handler: Handler[Body],
        *,
        model: type[Body] | None = None,
        track: bool = True,
        concurrency: int = DEFAULT_BATCH_CONCURRENCY,
        delete_succeeded: bool = False,
        on_cluster_complete: ClusterCallback | None = None,
        context: Any = None,
        retry: Backoff | None = None,
        deadline_margin_seconds: float | None = None,
        raise_on_entire_batch_failure: bool = False,
        on_success: SuccessHook | None = None,
        on_failure: FailureHook | None = None,
    ) -> PartialBatchResponse:
        """Run ``handler`` on each record and return Lambda's partial batch response.

        With ``track`` each record is claimed first (duplicates and completed messages are
        skipped), completed on success and failed on error; ``track=False`` skips DynamoDB.
        At most ``concurrency`` records run at once. FIFO queues stop a message group at its
        first failure. ``delete_succeeded`` deletes successes itself (for event sources without
        ReportBatchItemFailures). A malformed event raises before any side effect.
        ``on_cluster_complete`` runs once per cluster, when the batch ends that cluster's last
        task (or finds an ended cluster whose callback has not run).

        While a handler runs, its message's lease is renewed every third of its length, so a
        duplicate delivery never takes over a live handler. The lease is ``Config.lease_seconds``
        capped by the queue's visibility timeout and, given Lambda's ``context`` (or the local
        worker's), by the invocation's remaining time: a delivery that dies mid-handler leaves a
        lease that has ended by the time SQS delivers the message again.

        ``retry=Backoff(...)`` sets each failed message's visibility timeout to an exponential
        back-off from its receive count before returning (one ChangeMessageVisibilityBatch per
        10 failures; best effort), and a handler may raise ``RetryAfter(seconds)``. Given a
        ``context``, no message starts once less than ``deadline_margin_seconds`` are left
        (default: 5 s, or a tenth of the time left at the start when that is shorter; 0 turns
        it off): those not started are reported as failed. ``raise_on_entire_batch_failure``
        raises :class:`BatchFailedError` when every message failed. ``on_success(message,
        result)`` and ``on_failure(message, error)`` run after each message that ran; what
        they raise is logged and ignored.

        ``model`` (a dataclass or a pydantic model class) parses each payload before the handler
        sees it: a plain message's ``body``, a cluster task's ``task``. A payload that does not
        parse fails its message alone, like a handler error, with a ``ValidationError`` naming
        the field (``body.amount``, ``task.amount``). The handler's annotation types the
        message: ``handler(message: ReceivedMessage[Order])``.
        """
        return self._call(
            self._core.safe_process_batch,
            event,
            self._callback(handler),
            model=model,
            track=track,
            concurrency=concurrency,
            delete_succeeded=delete_succeeded,
            on_cluster_complete=self._callback(on_cluster_complete),
            context=context,
            retry=retry,
            deadline_margin_seconds=deadline_margin_seconds,
            raise_on_entire_batch_failure=raise_on_entire_batch_failure,
            on_success=self._callback(on_success),
            on_failure=self._callback(on_failure),
        )

    def process_dead_letters(
        self,
        event: Any,
        *,
        on_cluster_complete: ClusterCallback | None = None,
        concurrency: int = DEFAULT_BATCH_CONCURRENCY,
    ) -> PartialBatchResponse:
        """Settle a dead-letter queue's batch; returns Lambda's partial batch response.

        For messages whose receives ran out with nothing recorded (the worker died on the last
        allowed receive, or no receive got as far as the claim): each tracked record that is
        neither complete nor failed for good is marked failed for good (error type
        ``ReceivesExhausted``), and a task is counted as failed in its cluster exactly once,
        ending the cluster and running ``on_cluster_complete`` when it was the last. Records
        already settled, and untracked messages, succeed with nothing written. A record whose
        lease is still live is reported as a failure, so it returns after the lease. An event
        from the queue a tracked message was sent to (not a dead-letter queue) raises
        ValidationError before any write.
        """
        return self._call(
            self._core.process_dead_letters,
            event,
            on_cluster_complete=self._callback(on_cluster_complete),
            concurrency=concurrency,
        )

    def log_failure(self, message: ReceivedMessage[Any], exc: BaseException) -> None:
        """Log a failed record with structured fields (Powertools' Logger renders them)."""
        self._plain(self._core.log_failure, message, exc)

    def delete_messages(self, messages: Sequence[ReceivedMessage[Any]]) -> list[str]:
        """DeleteMessageBatch (10 a call); returns the ids that could not be deleted.

        Best effort by design: a message left undeleted is redelivered, found complete by its
        claim, and deleted then.
        """
        return self._call(self._core.delete_messages, messages)

    def receive_messages(
        self,
        queue_url: str,
        *,
        max_messages: int = 10,
        wait_seconds: int = 20,
        visibility_timeout: int | None = None,
    ) -> list[dict[str, Any]]:
        """ReceiveMessage with all attributes, as SQS returns them (for local workers)."""
        return self._call(
            self._core.receive_messages,
            queue_url,
            max_messages=max_messages,
            wait_seconds=wait_seconds,
            visibility_timeout=visibility_timeout,
        )

    def change_visibility(
        self, queue_url: str, receipt_handles: Sequence[str], timeout: int
    ) -> list[str]:
        """Extend (or, with 0, release) received messages' visibility, 10 per request.

        Returns the receipt handles whose visibility was not changed: those SQS refused (an
        expired handle's message is visible again anyway) or that kept failing after retries.
        """
        return self._call(self._core.change_visibility, queue_url, receipt_handles, timeout)

    def queue_visibility_timeout(self, queue_url: str) -> int:
        """The queue's visibility timeout in seconds, read once per process.

        Once read, it caps the leases taken on messages of this queue (see
        ``MessageClient.claim``).
        """
        return self._call(self._core.queue_visibility_timeout, queue_url)

    def max_receive_count(self, queue_url: str) -> int | None:
        """The receive limit: ``config.max_receive_count``, else the queue's redrive policy."""
        return self._call(self._core.max_receive_count, queue_url)

    def cancel_message_cluster(
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
        return cast(
            "ClusterRecord[Any, Any]", self._call(self._core.cancel_message_cluster, key, reason)
        )

    def redrive_message_cluster(self, key: ClusterKeyLike, tasks: Any = None) -> int:
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
        return self._call(self._core.redrive_message_cluster, key, tasks)

    def tasks_from_s3(self, bucket: str, key: str, *, format: str | None = None) -> Iterator[Any]:
        """Tasks read from an S3 object, for ``create_message_cluster`` (Step Functions'
        ItemReader): JSON Lines (one JSON value a line; blank lines skipped) or CSV (one dict
        a row, keyed by the header), by ``format`` (``"jsonl"`` or ``"csv"``) or else by the
        key's extension. A line that does not parse raises ValidationError naming it.
        """
        return self._iterate(self._core.tasks_from_s3, bucket, key, format=format)

    def iter_results(self, key: ClusterKeyLike) -> Iterator[TaskResult[Any, Any]]:
        """``(index, task, result)`` of every completed task, in index order, 100 task records
        per request: never the whole cluster in memory.
        """
        return self._iterate(self._core.iter_results, key)

    def wait_for_message_cluster(
        self,
        key: ClusterKeyLike,
        timeout: float | None = None,
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
        return cast(
            "ClusterRecord[Any, Any]",
            self._call(
                self._core.wait_for_message_cluster,
                key,
                timeout,
                poll_seconds=poll_seconds,
                progress=progress,
            ),
        )

    def create_message_cluster(
        self,
        queue_url: str,
        tasks: Iterable[Any] | Iterable[Any],
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
        return self._call(
            self._core.create_message_cluster,
            queue_url,
            tasks,
            globals=globals,
            meta=meta,
            omit_globals=omit_globals,
            cluster_id=cluster_id,
            progress=progress,
            tolerated_failures=tolerated_failures,
            message_group_id=message_group_id,
            on_complete=on_complete,
            results=results,
        )

    def get_message_cluster(
        self, key: ClusterKeyLike, consistent_read: bool = False
    ) -> ClusterRecord[Any, Any]:
        """The cluster record with its counts; ``get_globals()`` and ``iter_tasks()`` are lazy."""
        return cast(
            "ClusterRecord[Any, Any]",
            self._call(self._core.get_message_cluster, key, consistent_read),
        )

    def iter_tasks(
        self, cluster: ClusterRecord[Any, Any], status: Status | None = None
    ) -> Iterator[MessageRecord[Any]]:
        """Task records of ``cluster`` in index order (100 per request), filtered by status."""
        return self._iterate(self._core.iter_tasks, cluster, status)

    def get_message_cluster_globals(self, key: ClusterKeyLike) -> Any:
        """The cluster's globals, read from S3 (accepts the key or just the ``pKey``)."""
        return self._call(self._core.get_message_cluster_globals, key)

    @overload
    def update_message_cluster_globals(
        self, key: ClusterKeyLike, value_or_fn: Callable[[Value], Value]
    ) -> Value: ...
    @overload
    def update_message_cluster_globals(self, key: ClusterKeyLike, value_or_fn: Value) -> Value: ...
    def update_message_cluster_globals(self, key: ClusterKeyLike, value_or_fn: Any) -> Any:
        """Replace the globals, or pass ``fn(old) -> new`` for a safe read-modify-write.

        The function form writes with If-Match on the ETag it read and retries on conflict,
        so concurrent updaters never lose each other's changes. Returns the new globals, typed
        as the value given or as what the function returns (``fn(old: Prices) -> Prices``
        returns ``Prices``).
        """
        return self._call(self._core.update_message_cluster_globals, key, value_or_fn)

    @overload
    def update_cluster_globals(
        self, key: ClusterKeyLike, value_or_fn: Callable[[Value], Value]
    ) -> Value: ...
    @overload
    def update_cluster_globals(self, key: ClusterKeyLike, value_or_fn: Value) -> Value: ...
    def update_cluster_globals(self, key: ClusterKeyLike, value_or_fn: Any) -> Any:
        """Alias of :meth:`update_message_cluster_globals` (the design documents' name)."""
        return self._call(self._core.update_cluster_globals, key, value_or_fn)

    def update_message_cluster(
        self, key: ClusterKeyLike, changes_or_fn: Changes | ChangesFn
    ) -> ClusterRecord[Any, Any]:
        """Change the cluster's ``meta`` or your own fields, conditionally (like records)."""
        return cast(
            "ClusterRecord[Any, Any]",
            self._call(self._core.update_message_cluster, key, changes_or_fn),
        )

    def on_cluster_complete(self, key: ClusterKeyLike, callback: ClusterCallback) -> bool:
        """Run ``callback(cluster, get_globals)`` if the cluster ended and it has not run yet.

        Returns True if this call ran it. Exactly one caller runs it even when many workers
        finish together; if its runner died, a later call (or redelivery) runs it again. A
        failing callback's error is recorded on the cluster and raised; ConflictError means
        this call's claim lapsed before the callback started (call again).
        """
        return self._call(self._core.on_cluster_complete, key, self._callback(callback))

    def read_sqs_record(self, record: RecordLike) -> ReceivedMessage[Any]:
        """Parse a Lambda SQS record into a :class:`ReceivedMessage` bound to this client.

        No IO: an offloaded message comes back with ``payload_pending`` (see
        :meth:`resolve_sqs_record`).
        """
        return cast("ReceivedMessage[Any]", self._plain(self._core.read_sqs_record, record))

    def resolve_sqs_record(self, record: RecordLike) -> ReceivedMessage[Any]:
        """:meth:`read_sqs_record`, then the body of an offloaded message loaded from S3.

        ``read_sqs_record`` does no IO, so an offloaded message comes from it with
        ``payload_pending`` True and its pointer as ``raw_body``; this loads the body (in
        either extended-client format, from the bucket the pointer names). Raises
        :class:`~sqs_cluster.PayloadMissingError` when the object is gone.
        ``safe_process_batch``, the worker and the dead-letter consumer do this themselves.
        """
        return cast("ReceivedMessage[Any]", self._call(self._core.resolve_sqs_record, record))
