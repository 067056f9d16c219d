"""``safe_process_batch``: run a handler over a Lambda SQS batch and report only the failures."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, TypeVar

from .._concurrency import call_handler, run_bounded
from .._errors import MalformedEventError, ValidationError
from .._records.model import shown
from .event import QueueArn, ReceivedMessage, event_records
from .lease import RemainingMs, keep_lease, remaining_of, stop
from .payloads import PayloadMissingError
from .tracking import Claim, ClaimOutcome

if TYPE_CHECKING:
    import anyio

    from .._aws.preflight import Preflight
    from .._clusters.count import Entry, Outcome
    from .._clusters.model import ClusterCallback, ClusterRecord

Handler = Callable[[ReceivedMessage[Any]], Awaitable[Any] | Any]
"""A record handler: sync or async, takes the parsed message; raising marks it failed.

A non-None return value (any JSON value) is stored on the record as its ``result``."""

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


@dataclass
class _BatchState:
    failed: set[int] = field(default_factory=set)  # positions in the event
    succeeded: list[ReceivedMessage[Any]] = field(default_factory=list)


Positioned = tuple[int, ReceivedMessage[Any]]


def _parse_each(
    client: BatchClient, records: Sequence[Mapping[str, Any]], state: _BatchState
) -> list[ReceivedMessage[Any] | None]:
    """Parse every record; one whose body contradicts its key fails alone (not the batch)."""
    parsed: list[ReceivedMessage[Any] | None] = []
    for position, record in enumerate(records):
        try:
            parsed.append(client.read_sqs_record(record))
        except MalformedEventError as exc:
            logger.warning("rejected message %s: %s", record.get("messageId"), exc)
            state.failed.add(position)
            parsed.append(None)
    return parsed


def _groups(
    messages: Sequence[ReceivedMessage[Any] | None],
    records: Sequence[Mapping[str, Any]],
    fifo: bool,
) -> list[list[Positioned]]:
    if not fifo:
        return [[(i, m)] for i, m in enumerate(messages) if m is not None]
    groups: dict[str, list[Positioned]] = {}
    for i, message in enumerate(messages):
        group = (records[i].get("attributes") or {}).get("MessageGroupId") or ""
        groups.setdefault(group, []).append((i, message))  # type: ignore[arg-type]
    return list(groups.values())


def _stop_at_rejected(group: list[Positioned], failed: set[int]) -> list[Positioned]:
    for n, (position, _) in enumerate(group):
        if position in failed:
            failed.update(p for p, _ in group[n:])
            return group[:n]
    return group


def _check_callable(value: Any, field_name: str) -> None:
    if not callable(value):
        raise ValidationError(
            field_name,
            f"expected a callable (a function or async function), got {shown(value)}",
        )


async def process_batch(
    client: BatchClient,
    event: Any,
    handler: Handler,
    *,
    track: bool = True,
    concurrency: int = DEFAULT_BATCH_CONCURRENCY,
    delete_succeeded: bool = False,
    on_cluster_complete: ClusterCallback | None = None,
    context: Any = None,
) -> PartialBatchResponse:
    """Process every record; FIFO groups stop at their first failure. See the client method."""
    _check_callable(handler, "handler")
    remaining = remaining_of(context)
    fanin = client._fan_in()

    async def one(message: ReceivedMessage[Any], limiter: anyio.CapacityLimiter) -> bool:
        if not track:
            return await _process_untracked(client, message, handler, limiter)
        return await _process_one(
            client, message, handler, limiter, on_cluster_complete, remaining, fanin
        )

    return await run_records(
        client,
        event,
        one,
        check_table=track,
        concurrency=concurrency,
        delete_succeeded=delete_succeeded,
        on_cluster_complete=on_cluster_complete,
    )


async def run_records(
    client: BatchClient,
    event: Any,
    one: Callable[[ReceivedMessage[Any], anyio.CapacityLimiter], Awaitable[bool]],
    *,
    check_table: bool = True,
    concurrency: int = DEFAULT_BATCH_CONCURRENCY,
    delete_succeeded: bool = False,
    on_cluster_complete: ClusterCallback | None = None,
) -> PartialBatchResponse:
    """Parse an event and run ``one(message, limiter)`` on every record, ``concurrency`` at once.

    ``one`` returns True when the record succeeded and must not raise. A record that does not
    parse fails alone; FIFO groups stop at their first failure, so what comes back keeps its
    order. Returns Lambda's partial batch response.
    """
    if on_cluster_complete is not None:
        _check_callable(on_cluster_complete, "on_cluster_complete")
    records = event_records(event)  # validates the whole event before any side effect
    if not records:
        return {"batchItemFailures": []}
    if check_table:  # a missing table fails the invocation once, not every record on its own
        await client._preflight.table()
    fifo = QueueArn.parse(records[0]["eventSourceARN"]).is_fifo
    state = _BatchState()
    messages = _parse_each(client, records, state)
    import anyio

    limiter = anyio.CapacityLimiter(max(1, concurrency))

    async def run_group(group: list[Positioned]) -> None:
        for n, (position, message) in enumerate(group):
            if await _run_loaded(client, message, one, limiter):
                state.succeeded.append(message)
                continue
            state.failed.add(position)
            if fifo:  # keep order: the rest of this group must come back too
                state.failed.update(p for p, _ in group[n + 1 :])
                return

    groups = _groups(messages, records, fifo)
    if fifo:  # a group with a rejected record stops there, like a failure, to keep its order
        groups = [_stop_at_rejected(g, state.failed) for g in groups]
    await run_bounded(groups, run_group, concurrency=concurrency)
    if delete_succeeded and state.succeeded:
        await client.delete_messages(state.succeeded)
    failures = [records[p]["messageId"] for p in sorted(state.failed)]
    return {"batchItemFailures": [{"itemIdentifier": i} for i in failures]}


async def _run_loaded(
    client: BatchClient,
    message: ReceivedMessage[Any],
    one: Callable[[ReceivedMessage[Any], anyio.CapacityLimiter], Awaitable[bool]],
    limiter: anyio.CapacityLimiter,
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
            client.log_failure(message, exc)
            return False
        except Exception as exc:  # a loaded body that contradicts its key, S3 down ...
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
    handler: Handler,
    limiter: anyio.CapacityLimiter,
) -> bool:
    """``track=False``: the handler alone. Never raises."""
    try:
        await call_handler(handler, message, limiter=limiter)
    except Exception as exc:
        client.log_failure(message, exc)
        return False
    return True


async def _process_one(
    client: BatchClient,
    message: ReceivedMessage[Any],
    handler: Handler,
    limiter: anyio.CapacityLimiter,
    callback: ClusterCallback | None,
    remaining: RemainingMs,
    fanin: FanInLike,
) -> bool:
    """True when the message succeeded (or was already complete). Never raises: a fault in
    the handler or in AWS fails this record only, and SQS brings it back."""
    try:
        return await _process_tracked(client, message, handler, limiter, callback, remaining, fanin)
    except Exception as exc:
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
    handler: Handler,
    limiter: anyio.CapacityLimiter,
    callback: ClusterCallback | None,
    remaining: RemainingMs,
    fanin: FanInLike,
) -> bool:
    """Claim, run and settle one message; its settlement joins the batch's group commit."""
    member = _Member(fanin)
    try:
        lease = await client._lease_for(message.queue_url, remaining())
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
                result = await call_handler(handler, message, limiter=limiter)
            except Exception as exc:
                client.log_failure(message, exc)
                if message.is_task and await client.is_last_receive(message):
                    return False, await member.settle(client, message, error=exc)
                member.leave()
                await client.mark_failed(message, exc)
                return False, None
            return True, await member.settle(client, message, result=result)

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
