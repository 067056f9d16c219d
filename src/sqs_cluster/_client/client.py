"""``MessageClient``: the async entry point tying config, AWS clients and operations together."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .._aws.clients import AWS, RequestHook
from .._aws.preflight import Preflight
from .._clusters.model import ClusterCallback
from .._config import Config
from .._errors import ValidationError
from .._messages.batch import (
    DEFAULT_BATCH_CONCURRENCY,
    Handler,
    PartialBatchResponse,
    process_batch,
)
from .._messages.dead_letters import process_dead_letters
from .._messages.errors import PartialSendError
from .._messages.event import ReceivedMessage
from .._messages.hooks import FailureHook, SuccessHook
from .._messages.lease import effective_lease, renew_lease, should_warn, warn_burning
from .._messages.outgoing import (
    MAX_MESSAGE_BYTES,
    Message,
    Prepared,
    SentKeys,
    Sizing,
    check_delay_seconds,
    check_unique_idempotency_keys,
    prepare_message,
    sizing_for,
    unsent_message,
    validate_queue_url,
)
from .._messages.retry import Backoff
from .._messages.sending import (
    Progress,
    resend_unsent,
    send_entries,
    send_once,
    send_one,
)
from .._messages.tracking import (
    Claim,
    claim,
    complete_message,
    fail_message,
    raise_if_in_progress,
)
from .._observe import PRODUCER, Observer, send_attributes
from .._records.codec import dumps
from .._records.limits import check_meta_size
from .._records.model import MessageRecord, RecordKey, check_idempotency_key
from .._records.store import Changes, ChangesFn, get_record, get_records, update_record
from .._types import Body
from .lifecycle import LifecycleOperations
from .queues import QueueOperations
from .reading import ReadingOperations, RecordLike

logger = logging.getLogger("sqs_cluster")


class MessageClient(QueueOperations, LifecycleOperations, ReadingOperations):
    """Tracked SQS messages and message clusters; use as ``async with MessageClient(cfg) as c``.

    Holds one session and one long-lived client per service for its whole life (open it once
    per Lambda container, outside the handler, to keep connections warm). Every AWS request of
    every method shares one semaphore of ``config.max_concurrency`` slots.

    ``metrics`` takes a Powertools ``Metrics`` (``aws_lambda_powertools.metrics.Metrics``):
    batch and fan-out metrics are added to it (flushed by its ``log_metrics``), a cluster's
    end is written as its own EMF line. ``Config.metrics_namespace`` does the same through
    ``aws-embedded-metrics`` instead; give one or the other. Off when neither is given.
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        session: Any = None,
        clients: Mapping[str, Any] | None = None,
        metrics: Any = None,
    ) -> None:
        self.config = config if config is not None else Config.from_env()
        if metrics is not None and self.config.metrics_namespace is not None:
            raise ValidationError(
                "metrics",
                "given with Config.metrics_namespace: pass a Powertools Metrics or set the "
                "namespace, not both",
            )
        observe = Observer.for_config(self.config, metrics)
        self._aws = AWS(self.config, session=session, clients=clients, observe=observe)
        self._max_receive: dict[str, int | None] = {}
        self._max_receive_locks: dict[str, asyncio.Lock] = {}
        self._no_visibility: set[str] = set()
        self._preflight = Preflight(self._aws)
        self._observe = observe

    async def __aenter__(self) -> MessageClient:
        await self._aws.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the AWS clients this object opened."""
        await self._aws.aclose()

    @property
    def request_counts(self) -> Mapping[str, int]:
        """AWS requests issued so far, keyed ``"service.Operation"`` (retries not counted)."""
        return self._aws.request_counts

    def add_request_hook(self, hook: RequestHook) -> Callable[[], None]:
        """Call ``hook(service, operation, params)`` before each request; returns a remover."""
        return self._aws.add_request_hook(hook)

    # -- sending -------------------------------------------------------------------------------

    async def send_message(
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
        validate_queue_url(queue_url)
        if idempotency_key is not None:
            check_idempotency_key(idempotency_key)
        delay = sqs_params.pop("DelaySeconds", None)
        if delay is not None:
            check_delay_seconds(delay, "sqs_params.DelaySeconds")
        message = Message(
            body=body,
            delay_seconds=delay,
            message_group_id=sqs_params.pop("MessageGroupId", None),
            message_deduplication_id=sqs_params.pop("MessageDeduplicationId", None),
            message_attributes=sqs_params.pop("MessageAttributes", None),
            idempotency_key=idempotency_key,
        )
        if sqs_params:
            raise ValidationError(
                f"sqs_params.{sorted(sqs_params)[0]}", "not a SendMessage parameter"
            )
        prepared = (await self._prepare(queue_url, [message], meta, field_name="body"))[0]
        attributes = send_attributes(queue_url, 1)
        with self._observe.span("sqs_cluster.send", attributes, kind=PRODUCER):
            if idempotency_key is None:
                await send_one(self._aws, queue_url, prepared)
            else:
                await send_once(self._aws, queue_url, prepared)
        return prepared.key

    async def send_message_batch(
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
        validate_queue_url(queue_url)
        if isinstance(entries, (str, bytes)) or not isinstance(entries, Sequence):
            raise ValidationError("entries", "expected a list of message bodies or Message objects")
        check_unique_idempotency_keys(entries)
        prepared = await self._prepare(queue_url, entries, meta, field_name="entries")
        attributes = send_attributes(queue_url, len(prepared))
        with self._observe.span("sqs_cluster.send", attributes, kind=PRODUCER):
            outcome = await send_entries(self._aws, queue_url, prepared, progress=progress)
        if outcome.failed:
            unsent = {i: unsent_message(prepared[i], err) for i, err in outcome.failed.items()}
            raise PartialSendError(
                outcome.sent,
                outcome.failed,
                queue_url=queue_url,
                unsent=unsent,
                already_sent=outcome.already_sent,
            )
        return SentKeys((outcome.sent[i] for i in range(len(prepared))), outcome.already_sent)

    async def resend_unsent(
        self, error: PartialSendError, *, progress: Progress | None = None
    ) -> SentKeys:
        """Send the entries a :class:`PartialSendError` lists as not sent, under their keys.

        Returns the keys of the whole original batch, in order, once every entry was sent; if
        some still fail it raises PartialSendError again, with the original batch's indexes, so
        it can be passed here again. Records are not written twice, and an entry whose message
        a consumer has already received is not sent again. ``already_sent`` lists the entries
        of the batch whose idempotency key had been sent before it.
        """
        sizing = await self._sizing(error.queue_url) if error.queue_url else None
        return await resend_unsent(self._aws, error, progress=progress, sizing=sizing)

    async def _prepare(
        self, queue_url: str, messages: Sequence[Any], meta: Any, *, field_name: str
    ) -> list[Prepared]:
        """Validate and encode every message, then fit each to its queue.

        Every input is checked before the first request, against SQS's own limit; then the
        table and queue are checked (once per process and queue) and the queue's
        MaximumMessageSize read: the few messages above it are prepared again, to go
        through S3 (or be refused, naming the field and the limit).
        """
        meta_text = None if meta is None else dumps(meta, field="meta")
        meta_bytes = check_meta_size(meta_text)
        single = field_name == "body"

        def one(i: int, message: Any, sizing: Sizing, key: RecordKey | None = None) -> Prepared:
            return prepare_message(
                i,
                queue_url,
                message,
                meta_text=meta_text,
                ttl_seconds=self.config.record_ttl_seconds,
                field_name=field_name if single else f"{field_name}[{i}]",
                meta_bytes=meta_bytes,
                sizing=sizing,
                key=key,
            )

        early = sizing_for(self.config, MAX_MESSAGE_BYTES)
        prepared = [one(i, m, early) for i, m in enumerate(messages)]
        sizing = await self._sizing(queue_url)
        fits = sizing.offload_above or sizing.limit
        for i, p in enumerate(prepared):
            if p.payload is None and p.size > fits:
                prepared[i] = one(i, messages[i], sizing, p.key)
        return prepared

    async def _sizing(self, queue_url: str) -> Sizing:
        """Before the first write: the table and the queue exist (once per process and queue);
        then how large a message may be there (the queue's MaximumMessageSize, read once)."""
        await self._preflight.table()
        return sizing_for(self.config, await self._preflight.queue_max_bytes(queue_url))

    # -- records -------------------------------------------------------------------------------

    async def get_message_record(
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
        record: MessageRecord[Any] = await get_record(
            self._aws, RecordKey.coerce(key), consistent_read=consistent_read
        )
        return await self._with_body(record) if load_body else record

    async def get_message_records(
        self, keys: Iterable[RecordKey | Mapping[str, str]]
    ) -> list[MessageRecord[Any] | None]:
        """Many records with BatchGetItem (100 keys a call); None where a record is missing."""
        return await get_records(self._aws, [RecordKey.coerce(k) for k in keys])

    async def update_message_record(
        self, key: RecordKey | Mapping[str, str], changes_or_fn: Changes | ChangesFn
    ) -> MessageRecord[Any]:
        """Change ``meta`` or your own fields; a function gets the record and returns changes.

        The write is conditional on the record's revision and retried on conflict, so
        concurrent updaters never lose each other's changes.
        """
        record_key = RecordKey.coerce(key)
        await self._preflight.table()
        return await update_record(self._aws, record_key, changes_or_fn)

    # -- consuming -----------------------------------------------------------------------------

    async def claim(self, record: RecordLike) -> Claim:
        """Try to take the message's lease; see :class:`ClaimOutcome`.

        The lease lasts ``Config.lease_seconds``, capped by the queue's visibility timeout (less
        a margin), so a redelivery after a crash can take the message over.
        """
        message = self.read_sqs_record(record)
        return await self._claim(message, await self._lease_for(message.queue_url))

    async def _claim(
        self, message: ReceivedMessage[Any], lease_seconds: float, *, want_record: bool = True
    ) -> Claim:
        """Claim with a lease of ``lease_seconds`` (see :meth:`_lease_for`)."""
        await self._preflight.table()
        return await claim(self._aws, message, lease_seconds=lease_seconds, want_record=want_record)

    async def _renew_lease(self, message: ReceivedMessage[Any], lease_seconds: float) -> bool:
        """Extend this delivery's lease by ``lease_seconds`` from now; False once it is lost."""
        return await renew_lease(self._aws, message, lease_seconds)

    async def _lease_for(self, queue_url: str, remaining_ms: int | None = None) -> float:
        """The lease a delivery from ``queue_url`` takes now, in seconds: ``Config.lease_seconds``
        capped by the queue's visibility timeout (one ``GetQueueAttributes`` per queue and
        process, so a Lambda handler without a context is capped too) and by the invocation's
        ``remaining_ms``. Warns once when the configured lease outlives the visibility timeout.

        A queue whose attributes cannot be read (denied, or not found: a hand-built event) is
        not capped, and not asked again by this client.
        """
        lease = self.config.lease_seconds
        visibility = await self._visibility_or_none(queue_url)
        if visibility is not None and should_warn(lease, queue_url, visibility):
            try:
                limit = await self.max_receive_count(queue_url)
            except Exception:  # the warning matters more than the limit
                limit = None
            warn_burning(lease, queue_url, visibility, limit)
        return effective_lease(lease, visibility=visibility, remaining_ms=remaining_ms)

    async def _visibility_or_none(self, queue_url: str) -> int | None:
        """The queue's visibility timeout, or None when it cannot be read (logged once)."""
        if queue_url in self._no_visibility:
            return None
        try:
            return await self._preflight.queue_visibility(queue_url)
        except Exception as exc:
            self._no_visibility.add(queue_url)
            logger.warning(
                "leases are not capped by the visibility timeout of %s: %s: %s",
                queue_url,
                type(exc).__name__,
                exc,
            )
            return None

    async def is_complete(self, record: RecordLike) -> bool:
        """True if the message was already processed (skip it); False once this call claims it.

        Claiming is the side effect that makes duplicates safe: the first delivery gets False
        and a lease. Raises :class:`MessageInProgressError` while another delivery holds a live
        lease: let it propagate so this delivery returns to the queue.
        """
        message = self.read_sqs_record(record)
        result = await self._claim(message, await self._lease_for(message.queue_url))
        return raise_if_in_progress(result, message.key)

    async def mark_complete(self, record: RecordLike, result: Any = None) -> bool:
        """Mark the message complete; False if it already was (a duplicate completion).

        A JSON ``result`` is stored on the record in the same write (``MessageRecord.result``).
        For a task of a cluster the task is also counted in its cluster, exactly once, and
        the cluster ends if it was the last one.
        """
        message = self.read_sqs_record(record)
        if message.is_task:
            counted, _ = await self._finish_task(message, result=result)
            return counted
        return await complete_message(self._aws, message.key, result)

    async def mark_failed(self, record: RecordLike, error: BaseException) -> bool:
        """Append ``error`` to the record, set ``ERROR`` and release the lease for a retry.

        On the message's last allowed receive (``Config.max_receive_count`` or the queue's
        redrive policy) the record is marked stopped, and a task is counted as failed in its
        cluster so the cluster still ends.
        """
        message = self.read_sqs_record(record)
        if await self.is_last_receive(message):
            if message.is_task:
                counted, _ = await self._finish_task(message, error)
                return counted
            return await fail_message(self._aws, message, error, final=True)
        return await fail_message(self._aws, message, error)

    async def is_last_receive(self, record: RecordLike) -> bool:
        """True when this delivery is the last one SQS will make before the DLQ."""
        message = self.read_sqs_record(record)
        limit = await self.max_receive_count(message.queue_url)
        return limit is not None and message.receive_count >= limit

    async def safe_process_batch(
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
        return await process_batch(
            self,
            event,
            handler,
            model=model,
            track=track,
            concurrency=concurrency,
            delete_succeeded=delete_succeeded,
            on_cluster_complete=on_cluster_complete,
            context=context,
            retry=retry,
            deadline_margin_seconds=deadline_margin_seconds,
            raise_on_entire_batch_failure=raise_on_entire_batch_failure,
            on_success=on_success,
            on_failure=on_failure,
        )

    async def process_dead_letters(
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
        return await process_dead_letters(
            self, event, on_cluster_complete=on_cluster_complete, concurrency=concurrency
        )

    def log_failure(self, message: ReceivedMessage[Any], exc: BaseException) -> None:
        """Log a failed record with structured fields (Powertools' Logger renders them)."""
        logger.warning(
            "message %s failed: %s: %s",
            message.message_id,
            type(exc).__name__,
            exc,
            extra={
                "message_id": message.message_id,
                "record_key": message.key.to_dict(),
                "cluster_key": message.cluster_key.to_dict() if message.cluster_key else None,
                "receive_count": message.receive_count,
            },
            exc_info=exc,
        )
