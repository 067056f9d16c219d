"""A delivery's lease while its handler runs: how long it is, and the heartbeat that renews it.

The claim (``_messages.tracking.claim``) takes a lease; a handler that runs longer than the
lease would let a duplicate delivery take over a live handler, so the lease is renewed every
third of its length, only while it is still this delivery's (same owner, still
``IN PROGRESS``). Its length is ``Config.lease_seconds`` capped by the queue's visibility
timeout (less a margin, so a redelivery after a crash finds the lease expired instead of
bouncing and using up a receive) and by the time left in the invocation (Lambda's
``context.get_remaining_time_in_millis()``, or the local worker's context).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .._aws.clients import AWS
from .._aws.conditional import update_if
from .._errors import ValidationError
from .._records.codec import key_item
from .._records.model import Status
from .event import ReceivedMessage
from .tracking import lease_owner

logger = logging.getLogger("sqs_cluster")

MIN_LEASE_SECONDS = 2.0
"""The shortest lease taken, whatever the visibility or the time left."""
MIN_RENEW_PERIOD = 0.5
"""The shortest time between two renewals of one lease."""

RemainingMs = Callable[[], int | None]
"""Milliseconds left in the invocation, or None when unknown."""


def visibility_margin(visibility: float) -> float:
    """How long before the message becomes visible again its lease must have ended."""
    return max(1.0, visibility / 10)


def effective_lease(
    lease_seconds: float, *, visibility: float | None = None, remaining_ms: int | None = None
) -> float:
    """The lease to take, in seconds: ``lease_seconds``, capped by the visibility timeout less
    its margin and by the invocation's time left less that margin (the time left's own margin
    when the visibility is unknown), never below ``MIN_LEASE_SECONDS``."""
    lease = float(lease_seconds)
    if visibility is not None:
        lease = min(lease, visibility - visibility_margin(visibility))
    if remaining_ms is not None:
        remaining = remaining_ms / 1000
        margin = visibility_margin(visibility if visibility is not None else remaining)
        lease = min(lease, remaining - margin)
    return max(MIN_LEASE_SECONDS, lease)


def burns_receives(lease_seconds: float, visibility: float) -> bool:
    """Whether a lease of this length outlives the visibility timeout: uncapped, a redelivery
    after a crash would find it live and bounce, each bounce using up one receive."""
    return lease_seconds > visibility - visibility_margin(visibility)


def remaining_of(context: Any) -> RemainingMs:
    """``context.get_remaining_time_in_millis`` (Lambda's context, the worker's), checked."""
    if context is None:
        return lambda: None
    method = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(method):
        raise ValidationError(
            "context",
            "expected Lambda's context object (with get_remaining_time_in_millis()) or None, "
            f"got {type(context).__name__}",
        )

    def remaining() -> int | None:
        value = method()
        return int(value) if isinstance(value, (int, float)) else None

    return remaining


def renew_update(
    table: str, message: ReceivedMessage[Any], lease_seconds: float, *, now_ms: int | None = None
) -> dict[str, Any]:
    """UpdateItem parameters extending this delivery's lease to ``lease_seconds`` from now.

    Conditional on the lease still being this delivery's (``leaseOwner``) and the record still
    ``IN PROGRESS``: a delivery whose lease was taken over, or whose message was settled, must
    not take it back. Idempotent, so botocore's retry of a lost answer does no harm.
    """
    now = int(time.time() * 1000) if now_ms is None else now_ms
    return {
        "TableName": table,
        "Key": key_item(message.key),
        "UpdateExpression": "SET leaseUntilMs = :lease",
        "ConditionExpression": "leaseOwner = :owner AND #s = :prog",
        "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": {
            ":lease": {"N": str(now + int(lease_seconds * 1000))},
            ":owner": {"S": lease_owner(message)},
            ":prog": {"S": Status.IN_PROGRESS.value},
        },
    }


async def renew_lease(aws: AWS, message: ReceivedMessage[Any], lease_seconds: float) -> bool:
    """Extend this delivery's lease; False when it is no longer this delivery's."""
    update = renew_update(aws.config.table, message, lease_seconds, now_ms=aws.now_ms())
    written = await update_if(aws, update)
    return written.applied


async def keep_lease(
    message: ReceivedMessage[Any],
    renew: Callable[[float], Awaitable[bool]],
    length: Callable[[], Awaitable[float]],
) -> None:
    """Renew a lease every third of its length until cancelled, or until it is lost.

    A renewal that fails (a network fault, throttling after botocore's retries) is logged and
    tried again at the next period; a refused one means another delivery took the message over
    (or it was settled), so renewing stops.
    """
    while True:
        await asyncio.sleep(max(MIN_RENEW_PERIOD, await length() / 3))
        try:
            kept = await renew(await length())
        except Exception as exc:
            logger.warning(
                "message %s: could not renew its lease: %s: %s",
                message.message_id,
                type(exc).__name__,
                exc,
            )
            continue
        if not kept:
            logger.warning(
                "message %s: lease no longer held by this delivery (taken over or settled); "
                "stopped renewing it",
                message.message_id,
            )
            return


async def stop(task: asyncio.Future[Any]) -> None:
    """Cancel a heartbeat and wait for it (its own errors were logged where they happened)."""
    task.cancel()
    await asyncio.wait({task})
    if not task.cancelled():
        task.exception()  # retrieved: a heartbeat logs its own faults


_WARNED: set[str] = set()
"""Queues whose lease configuration was already warned about in this process."""


def should_warn(lease_seconds: float, queue_url: str, visibility: float) -> bool:
    """Whether to warn about this queue's lease configuration now (once per process)."""
    return queue_url not in _WARNED and burns_receives(lease_seconds, visibility)


def warn_burning(
    lease_seconds: float, queue_url: str, visibility: float, max_receive: int | None
) -> None:
    """Warn, once per queue, that ``Config.lease_seconds`` outlives the visibility timeout."""
    if queue_url in _WARNED:
        return
    _WARNED.add(queue_url)
    receives = (
        f"its {max_receive} receives (maxReceiveCount) would all be used up in "
        f"{max_receive * visibility:.0f} s"
        if max_receive
        else "each bounce would use up a receive"
    )
    logger.warning(
        "Config.lease_seconds=%s outlives the visibility timeout (%s s) of %s: uncapped, a "
        "redelivery after a crash would find the lease live and bounce, and %s. Leases on this "
        "queue are capped at %.0f s and renewed while a handler runs; set lease_seconds below "
        "the visibility timeout (or raise the timeout) to make this explicit.",
        lease_seconds,
        visibility,
        queue_url,
        receives,
        effective_lease(lease_seconds, visibility=visibility),
    )
