"""``safe_process_batch``: run a handler over a Lambda SQS batch and report only the failures."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, TypeVar

from .._concurrency import call_handler, run_bounded
from .._errors import ValidationError
from .._observe import INTERNAL, BatchStats, Observer, queue_name
from .._records.model import shown
from .._types import Body
from .batch_run import BatchRun, Positioned
from .deadline import Deadline, check_margin
from .errors import BatchFailedError
from .event import QueueArn, ReceivedMessage, event_records
from .hooks import FailureHook, SuccessHook, Verdict, Verdicts, check_hook, run_hooks
from .lease import RemainingMs, keep_lease, remaining_of, stop
from .models import check_model, with_model
from .payloads import PayloadMissingError
from .retry import Backoff, apply_delays, check_retry
from .tracking import Claim, ClaimOutcome

if TYPE_CHECKING:
    import anyio

    from .._aws.preflight import Preflight
    from .._clusters.count import Entry, Outcome
    from .._clusters.model import ClusterCallback, ClusterRecord

Handler = Callable[[ReceivedMessage[Body]], Awaitable[Any] | Any]
"""A record handler: sync or async, takes the parsed message; raising marks it failed.

``Handler[Order]`` takes a ``ReceivedMessage[Order]``; ``safe_process_batch`` infers the type
from the handler's annotation (and ``model=``). A non-None return value (any JSON value) is
stored on the record as its ``result``."""

logger = logging.getLogger("sqs_cluster")
T = TypeVar("T")

DEFAULT_BATCH_CONCURRENCY = 10


class BatchItemFailure(TypedDict):
    """One entry of Lambda's partial batch response."""

    itemIdentifier: str


class PartialBatchResponse(TypedDict):
    """Lambda's ReportBatchItemFailures response shape."""

    batchItemFailures: list[BatchItemFailure]


class FanInLike(Protocol):
    """The batch's group commit (``_clusters.fanin.FanIn``)."""

    def join(self) -> None: ...

    def leave(self) -> None: ...

    async def settle(self, entry: Entry) -> Outcome: ...


class BatchClient(Protocol):
    """What batch processing uses of a client: ``MessageClient`` is one. Taking this Protocol,
    not the class, keeps this module (and the dead-letter one) from importing the client.

    The underscored members are the fan-in steps the client's cluster half provides: count a
    task in its cluster and end the cluster, and run a due completion callback.
    """

    _preflight: Preflight
    _observe: Observer

    def read_sqs_record(self, record: Any) -> ReceivedMessage[Any]: ...

    async def resolve_sqs_record(self, record: Any) -> ReceivedMessage[Any]: ...

    async def _payload_settled(self, message: ReceivedMessage[Any]) -> bool: ...

    async def _drop_payload(self, message: ReceivedMessage[Any]) -> None: ...

    async def claim(self, record: Any) -> Claim: ...

    async def max_receive_count(self, queue_url: str) -> int | None: ...

    async def _claim(
        self, message: ReceivedMessage[Any], lease_seconds: float, *, want_record: bool = True
    ) -> Claim: ...

    async def _renew_lease(self, message: ReceivedMessage[Any], lease_seconds: float) -> bool: ...

    async def _lease_for(self, queue_url: str, remaining_ms: int | None = None) -> float: ...

    async def mark_complete(self, record: Any, result: Any = None) -> bool: ...

    async def mark_failed(self, record: Any, error: BaseException) -> bool: ...

    async def is_last_receive(self, record: Any) -> bool: ...

    async def delete_messages(self, messages: Sequence[ReceivedMessage[Any]]) -> list[str]: ...

    async def _set_visibilities(
        self, queue_url: str, entries: Sequence[tuple[str, int]]
    ) -> list[str]: ...

    def log_failure(self, message: ReceivedMessage[Any], exc: BaseException) -> None: ...

    def _fan_in(self) -> FanInLike: ...

    def _entry_for(
        self, message: ReceivedMessage[Any], *, error: BaseException | None, result: Any
    ) -> Entry | None: ...

    async def _after_settled(
        self, message: ReceivedMessage[Any], outcome: Outcome
    ) -> ClusterRecord[Any, Any] | None: ...

    async def _settle_alone(
        self, message: ReceivedMessage[Any], *, error: BaseException | None, result: Any
    ) -> ClusterRecord[Any, Any] | None: ...

    async def _after_task(
        self,
        message: ReceivedMessage[Any],
        callback: ClusterCallback | None,
        limiter: anyio.CapacityLimiter | None = None,
    ) -> None: ...

    async def _run_callback(
        self,
        cluster: ClusterRecord[Any, Any] | None,
        callback: ClusterCallback | None,
        limiter: anyio.CapacityLimiter | None = None,
    ) -> None: ...


OnDone = Callable[[ReceivedMessage[Any], bool, "anyio.CapacityLimiter"], Awaitable[None]]
"""Called after each record that ran: the message, whether it succeeded, the batch's limiter."""


def _check_flag(value: Any, field_name: str) -> None:
    if not isinstance(value, bool):
        raise ValidationError(field_name, f"expected True or False, got {shown(value)}")


def _check_callable(value: Any, field_name: str) -> None:
    if not callable(value):
        raise ValidationError(
            field_name,
            f"expected a callable (a function or async function), got {shown(value)}",
        )


async def process_batch(
    client: BatchClient,
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
    """Process every record; FIFO groups stop at their first failure. See the client method."""
    _check_callable(handler, "handler")
    check_model(model)
    parsed = with_model(handler, model)
    check_hook(on_success, "on_success")
    check_hook(on_failure, "on_failure")
    _check_flag(raise_on_entire_batch_failure, "raise_on_entire_batch_failure")
    retry = check_retry(retry)
    margin = check_margin(deadline_margin_seconds)
    remaining = remaining_of(context)
    fanin = client._fan_in()
    verdicts = Verdicts()

    async def one(message: ReceivedMessage[Any], limiter: anyio.CapacityLimiter) -> bool:
        verdict = verdicts.of(message.message_id)
        if not track:
            return await _process_untracked(client, message, parsed, limiter, verdict)
        return await _process_one(
            client, message, parsed, limiter, on_cluster_complete, remaining, fanin, verdict
        )

    async def done(message: ReceivedMessage[Any], ok: bool, limiter: Any) -> None:
        verdict = verdicts.of(message.message_id)
        await run_hooks(message, ok, verdict, (on_success, on_failure), limiter)

    deadline, run = Deadline(remaining, margin), BatchRun([], verdicts)
    with client._observe.batch() as stats:
        response = await run_records(
            client,
            event,
            one,
            check_table=track,
            concurrency=concurrency,
            delete_succeeded=delete_succeeded,
            on_cluster_complete=on_cluster_complete,
            run=run,
            may_start=deadline.allows_start,
            on_done=done,
        )
    if stats is not None:
        await emit_batch(client._observe, stats, run)
    deadline.log_not_started(len(run.not_started))
    await apply_delays(client, run.retry_delays(retry))
    if raise_on_entire_batch_failure:
        _raise_if_all_failed(run, response)
    return response


async def emit_batch(observe: Observer, stats: BatchStats, run: BatchRun) -> None:
    """One batch's metrics: handlers that ran and succeeded, failures, duplicates skipped
    (succeeded without running: already complete), and deliveries after the first."""
    if not run.records:
        return
    ran = sum(1 for m in run.succeeded if run.verdicts.of(m.message_id).ran)
    await observe.batch_done(
        stats,
        queue_name(run.records[0]["eventSourceARN"]),
        processed=ran,
        failed=len(run.failed),
        duplicates=len(run.succeeded) - ran,
        retried=sum(1 for m in run.messages if m is not None and m.receive_count > 1),
    )


def _raise_if_all_failed(run: BatchRun, response: PartialBatchResponse) -> None:
    if run.records and len(run.failed) == len(run.records):
        ids = run.failed_ids()
        errors = {i: e for i in ids if (e := run.verdicts.error_of(i)) is not None}
        raise BatchFailedError(ids, errors, response)


async def run_records(
    client: BatchClient,
    event: Any,
    one: Callable[[ReceivedMessage[Any], anyio.CapacityLimiter], Awaitable[bool]],
    *,
    check_table: bool = True,
    concurrency: int = DEFAULT_BATCH_CONCURRENCY,
    delete_succeeded: bool = False,
    on_cluster_complete: ClusterCallback | None = None,
    run: BatchRun | None = None,
    may_start: Callable[[], bool] = lambda: True,
    on_done: OnDone | None = None,
) -> PartialBatchResponse:
    """Parse an event and run ``one(message, limiter)`` on every record, ``concurrency`` at once.

    ``one`` returns True when the record succeeded and must not raise. A record that does not
    parse fails alone; FIFO groups stop at their first failure, so what comes back keeps its
    order. Returns Lambda's partial batch response; ``run`` (when given) holds the details.
    A record starts only while ``may_start()`` says so (the others are reported as failed);
    ``on_done`` is called after each record that ran.
    """
    if on_cluster_complete is not None:
        _check_callable(on_cluster_complete, "on_cluster_complete")
    run = run or BatchRun([])
    run.records = event_records(event)  # validates the whole event before any side effect
    if not run.records:
        return {"batchItemFailures": []}
    if check_table:  # a missing table fails the invocation once, not every record on its own
        await client._preflight.table()
    fifo = QueueArn.parse(run.records[0]["eventSourceARN"]).is_fifo
    run.parse(client.read_sqs_record)
    import anyio

    limiter = anyio.CapacityLimiter(max(1, concurrency))

    async def run_group(group: list[Positioned]) -> None:
        for n, (position, message) in enumerate(group):
            if not may_start():
                run.leave(group[n:], cause=None)
                return
            verdict = run.verdicts.of(message.message_id)
            succeeded = await _run_loaded(client, message, one, limiter, verdict)
            if on_done is not None:
                await on_done(message, succeeded, limiter)
            if succeeded:
                run.succeeded.append(message)
                continue
            run.failed.add(position)
            if fifo:  # keep order: the rest of this group must come back too
                run.leave(group[n + 1 :], cause=position)
                return

    await run_bounded(run.groups(fifo), run_group, concurrency=concurrency)
    if delete_succeeded and run.succeeded:
        await client.delete_messages(run.succeeded)
    return {"batchItemFailures": [{"itemIdentifier": i} for i in run.failed_ids()]}


async def _run_loaded(
    client: BatchClient,
    message: ReceivedMessage[Any],
    one: Callable[[ReceivedMessage[Any], anyio.CapacityLimiter], Awaitable[bool]],
    limiter: anyio.CapacityLimiter,
    verdict: Verdict,
) -> bool:
    """``one(message)`` with an offloaded body loaded first, and deleted once it succeeded.

    A payload that is gone fails its message alone, unless the message was settled already:
    then it is a late duplicate of one whose payload was deleted on success, and is skipped.
    """
    if message.payload_pending:
        try:
            message = await client.resolve_sqs_record(message)
        except PayloadMissingError as exc:
            if await _settled(client, message):
                logger.warning(
                    "message %s: its payload %s is gone and its record is settled: a late "
                    "duplicate, skipped",
                    message.message_id,
                    exc.ref.uri,
                )
                return True
            verdict.fail(exc)
            client.log_failure(message, exc)
            return False
        except Exception as exc:  # a loaded body that contradicts its key, S3 down ...
            verdict.fail(exc)
            client.log_failure(message, exc)
            return False
    succeeded = await one(message, limiter)
    if succeeded and message.payload is not None:
        await client._drop_payload(message)
    return succeeded


async def _settled(client: BatchClient, message: ReceivedMessage[Any]) -> bool:
    try:
        return await client._payload_settled(message)
    except Exception:  # no table (track=False), or DynamoDB down: not known to be settled
        return False


async def _process_untracked(
    client: BatchClient,
    message: ReceivedMessage[Any],
    handler: Handler[Any],
    limiter: anyio.CapacityLimiter,
    verdict: Verdict,
) -> bool:
    """``track=False``: the handler alone. Never raises."""
    try:
        with client._observe.handler(message):
            result = await call_handler(handler, message, limiter=limiter)
    except Exception as exc:
        verdict.fail(exc)
        client.log_failure(message, exc)
        return False
    verdict.succeed(result)
    return True


async def _process_one(
    client: BatchClient,
    message: ReceivedMessage[Any],
    handler: Handler[Any],
    limiter: anyio.CapacityLimiter,
    callback: ClusterCallback | None,
    remaining: RemainingMs,
    fanin: FanInLike,
    verdict: Verdict,
) -> bool:
    """True when the message succeeded (or was already complete). Never raises: a fault in
    the handler or in AWS fails this record only, and SQS brings it back."""
    try:
        return await _process_tracked(
            client, message, handler, limiter, callback, remaining, fanin, verdict
        )
    except Exception as exc:
        verdict.fail(exc)
        client.log_failure(message, exc)
        return False


def _when(ms: int | None) -> str:
    if ms is None:
        return "an unknown time"
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")


async def log_bounce(client: BatchClient, message: ReceivedMessage[Any], claim: Claim) -> None:
    """Say why a delivery goes back to the queue: another delivery holds the lease."""
    try:
        limit: int | None = await client.max_receive_count(message.queue_url)
    except Exception:  # the reason matters more than the limit
        limit = None
    until = claim.record.lease_until_ms if claim.record is not None else None
    logger.warning(
        "message %s: leased by another delivery until %s, receive %d/%s; returned to the queue",
        message.message_id,
        _when(until),
        message.receive_count,
        limit if limit is not None else "unlimited",
        extra={
            "message_id": message.message_id,
            "record_key": message.key.to_dict(),
            "receive_count": message.receive_count,
            "lease_until_ms": until,
        },
    )


async def run_leased(
    client: BatchClient,
    message: ReceivedMessage[Any],
    work: Callable[[], Awaitable[T]],
    remaining: RemainingMs,
) -> T:
    """Run ``work`` (the handler, then writing its outcome) while a heartbeat renews the
    message's lease; returns what ``work`` returns."""

    async def length() -> float:
        return await client._lease_for(message.queue_url, remaining())

    async def renew(seconds: float) -> bool:
        return await client._renew_lease(message, seconds)

    heartbeat = asyncio.ensure_future(keep_lease(message, renew, length))
    try:
        return await work()
    finally:
        await stop(heartbeat)


async def _process_tracked(
    client: BatchClient,
    message: ReceivedMessage[Any],
    handler: Handler[Any],
    limiter: anyio.CapacityLimiter,
    callback: ClusterCallback | None,
    remaining: RemainingMs,
    fanin: FanInLike,
    verdict: Verdict,
) -> bool:
    """Claim, run and settle one message; its settlement joins the batch's group commit."""
    member = _Member(fanin)
    try:
        lease = await client._lease_for(message.queue_url, remaining())
        with client._observe.message_span("sqs_cluster.claim", message, kind=INTERNAL):
            claim = await client._claim(message, lease, want_record=False)
        if claim.outcome is ClaimOutcome.IN_PROGRESS:
            member.leave()
            await log_bounce(client, message, claim)
            return False
        if claim.outcome is ClaimOutcome.COMPLETE:
            member.leave()
            if message.is_task:  # a redelivery may be what finishes a crashed fan-in
                await client._after_task(message, callback, limiter)
            return True

        async def work() -> tuple[bool, ClusterRecord[Any, Any] | None]:
            try:
                with client._observe.handler(message):
                    result = await call_handler(handler, message, limiter=limiter)
            except Exception as exc:
                verdict.fail(exc)
                client.log_failure(message, exc)
                if message.is_task and await client.is_last_receive(message):
                    return False, await member.settle(client, message, error=exc)
                member.leave()
                await client.mark_failed(message, exc)
                return False, None
            cluster = await member.settle(client, message, result=result)
            verdict.succeed(result)
            return True, cluster

        succeeded, cluster = await run_leased(client, message, work, remaining)
        await client._run_callback(cluster, callback, limiter)
        return succeeded
    finally:
        member.leave()


class _Member:
    """One message's place in the batch's group commit: it hands in once or leaves once."""

    def __init__(self, fanin: FanInLike) -> None:
        self._fanin: FanInLike | None = fanin
        fanin.join()

    def leave(self) -> None:
        fanin, self._fanin = self._fanin, None
        if fanin is not None:
            fanin.leave()

    async def settle(
        self,
        client: BatchClient,
        message: ReceivedMessage[Any],
        *,
        error: BaseException | None = None,
        result: Any = None,
    ) -> ClusterRecord[Any, Any] | None:
        """Write the message's outcome with the batch's; the cluster once it ended."""
        entry = client._entry_for(message, error=error, result=result)
        fanin = self._fanin
        if entry is None or fanin is None:  # written on its own (a deletion, say)
            self.leave()
            return await client._settle_alone(message, error=error, result=result)
        self._fanin = None  # handing in counts as leaving
        outcome = await fanin.settle(entry)
        return await client._after_settled(message, outcome)
