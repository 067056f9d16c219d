"""Retry delays for failed messages: how long a failure stays invisible before its next try.

Without a delay a failed message comes back when its visibility timeout ends, however often it
failed. ``Backoff`` grows the delay with each receive (exponential, capped, with full jitter by
default); a handler that knows better raises ``RetryAfter(seconds)``. The delay is set with
``ChangeMessageVisibilityBatch`` (one request per 10 messages) before the batch returns. Setting
it is best effort: a message whose delay could not be set is still reported as failed, and
comes back after its visibility timeout instead.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .._concurrency import chunked
from .._errors import ValidationError
from .._records.model import shown

logger = logging.getLogger("sqs_cluster")

MAX_VISIBILITY_SECONDS = 43200
"""SQS's longest visibility timeout (12 hours)."""


def _check_seconds(field_name: str, value: Any, *, positive: bool = False) -> float:
    """``value`` as seconds: a number from 0 (above 0 when ``positive``) to 43200."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValidationError(field_name, f"expected a number of seconds, got {shown(value)}")
    low_ok = value > 0 if positive else value >= 0
    if not low_ok or value > MAX_VISIBILITY_SECONDS:
        raise ValidationError(
            field_name,
            f"must be {'> 0' if positive else '>= 0'} and <= {MAX_VISIBILITY_SECONDS} (SQS's "
            f"longest visibility timeout), got {value!r}",
        )
    return float(value)


class RetryAfter(Exception):
    """Raised by a handler: this message failed; try it again in ``seconds`` (0-43200).

    The message is reported as failed, like any exception, and its visibility timeout is set
    to ``seconds`` (rounded up to a whole second) whether or not the batch has a ``retry``
    policy. ``reason`` is logged and recorded as the error's message.
    """

    def __init__(self, seconds: float, reason: str = "") -> None:
        checked = _check_seconds("RetryAfter.seconds", seconds)
        self.seconds = math.ceil(checked)
        self.reason = reason
        super().__init__(reason or f"retry after {self.seconds} s")


def _exception_types(value: Any) -> tuple[type[BaseException], ...]:
    types = value if isinstance(value, tuple) else (value,)
    if not types or not all(isinstance(t, type) and issubclass(t, BaseException) for t in types):
        raise ValidationError(
            "retry.on", f"expected an exception class or a tuple of them, got {shown(value)}"
        )
    return types


@dataclass(frozen=True)
class Backoff:
    """Exponential back-off for failed messages, from their receive count.

    The delay of a message's n-th receive is ``base_seconds * 2 ** (n - 1)``, capped at
    ``max_seconds`` (and at SQS's 43200); with ``jitter`` (the default) it is drawn uniformly
    between 0 and that ("full jitter"), so messages that failed together do not all come back
    together. Delays are whole seconds (SQS's unit), rounded to the nearest.

    ``on`` limits the back-off to failures whose exception is an instance of one of these
    classes (an exception class or a tuple of them); other failures come back after the
    queue's visibility timeout, as without a policy. ``RetryAfter`` applies either way.
    """

    base_seconds: float = 1.0
    """The delay of the first retry, before jitter (> 0)."""
    max_seconds: float = 300.0
    """The longest delay, before jitter (>= ``base_seconds``, <= 43200)."""
    jitter: bool = True
    """Draw each delay uniformly between 0 and its exponential value."""
    on: type[BaseException] | tuple[type[BaseException], ...] = field(default=Exception)
    """The exceptions the back-off applies to (all of them by default)."""

    def __post_init__(self) -> None:
        base = _check_seconds("retry.base_seconds", self.base_seconds, positive=True)
        if _check_seconds("retry.max_seconds", self.max_seconds) < base:
            raise ValidationError(
                "retry.max_seconds",
                f"must be >= base_seconds ({self.base_seconds!r}), got {self.max_seconds!r}",
            )
        if not isinstance(self.jitter, bool):
            raise ValidationError(
                "retry.jitter", f"expected True or False, got {shown(self.jitter)}"
            )
        object.__setattr__(self, "on", _exception_types(self.on))

    def ceiling(self, receive_count: int) -> float:
        """The delay before jitter for a message received ``receive_count`` times (>= 1)."""
        exponent = min(max(receive_count, 1) - 1, 64)  # 2 ** 64 seconds is past any cap
        return min(self.base_seconds * 2.0**exponent, self.max_seconds, MAX_VISIBILITY_SECONDS)

    def delay(self, receive_count: int) -> int:
        """The visibility timeout to give a message that failed its ``receive_count``-th
        receive, in whole seconds."""
        ceiling = self.ceiling(receive_count)
        seconds = random.uniform(0, ceiling) if self.jitter else ceiling
        return min(round(seconds), MAX_VISIBILITY_SECONDS)

    def applies_to(self, error: BaseException) -> bool:
        """Whether the back-off delays a failure with this exception (see ``on``)."""
        return isinstance(error, self.on)


def check_retry(retry: Any) -> Backoff | None:
    """``retry`` as given to ``safe_process_batch``: a :class:`Backoff` or None."""
    if retry is not None and not isinstance(retry, Backoff):
        raise ValidationError("retry", f"expected a Backoff(...) or None, got {shown(retry)}")
    return retry


def retry_delay(error: BaseException, receive_count: int, retry: Backoff | None) -> int | None:
    """The visibility timeout a failure gets: ``RetryAfter``'s, else the back-off's when it
    applies to ``error``; None leaves the message's visibility as it is."""
    if isinstance(error, RetryAfter):
        return error.seconds
    if retry is not None and retry.applies_to(error):
        return retry.delay(receive_count)
    return None


@dataclass(frozen=True)
class Delay:
    """One failed delivery's next visibility timeout."""

    queue_url: str
    receipt_handle: str
    seconds: int
    message_id: str


class VisibilityClient(Protocol):
    """What setting delays uses of a client (``MessageClient`` is one)."""

    async def _set_visibilities(
        self, queue_url: str, entries: Sequence[tuple[str, int]]
    ) -> list[str]: ...


async def apply_delays(client: VisibilityClient, delays: Sequence[Delay]) -> None:
    """Set each delivery's visibility timeout: one ``ChangeMessageVisibilityBatch`` per 10
    deliveries of a queue. Never raises: what fails is logged, and those messages come back
    after their visibility timeout instead."""
    by_queue: dict[str, list[Delay]] = {}
    for delay in delays:
        by_queue.setdefault(delay.queue_url, []).append(delay)
    for queue_url, queued in by_queue.items():
        for chunk in chunked(queued, 10):
            entries = [(d.receipt_handle, d.seconds) for d in chunk]
            try:
                unchanged = set(await client._set_visibilities(queue_url, entries))
            except Exception as exc:
                _log_unchanged(chunk, f"{type(exc).__name__}: {exc}")
                continue
            if unchanged:
                missed = [d for d in chunk if d.receipt_handle in unchanged]
                _log_unchanged(missed, "SQS refused the change")


def _log_unchanged(delays: Sequence[Delay], why: str) -> None:
    ids = [d.message_id for d in delays]
    logger.warning(
        "could not delay the retry of %d failed messages (%s); they come back after their "
        "visibility timeout: %s",
        len(ids),
        why,
        ", ".join(ids),
        extra={"message_ids": ids},
    )
