"""Per-message hooks of ``safe_process_batch``: ``on_success`` and ``on_failure``.

A hook observes an outcome; it cannot change it. Whatever a hook raises is logged on the
``sqs_cluster`` logger and ignored, so a success stays a success and a failure stays a failure
(and is still reported to Lambda).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._concurrency import call_handler
from .._errors import ValidationError
from .._records.model import shown
from .event import ReceivedMessage

if TYPE_CHECKING:
    import anyio

logger = logging.getLogger("sqs_cluster")

SuccessHook = Callable[[ReceivedMessage[Any], Any], Awaitable[None] | None]
"""``on_success(message, result)``: sync or async; runs after the message's handler returned
``result`` and its outcome was recorded."""

FailureHook = Callable[[ReceivedMessage[Any], BaseException], Awaitable[None] | None]
"""``on_failure(message, error)``: sync or async; runs after the message failed with ``error``
(its handler's exception, or the library's while processing it)."""


@dataclass
class Verdict:
    """What processing one message came to: what the hooks are told, and what decides its
    retry delay. A message skipped (a duplicate, or bounced by another delivery's lease)
    neither ran nor failed with an error."""

    ran: bool = False
    """The handler returned and its outcome was recorded."""
    result: Any = None
    """What the handler returned."""
    error: BaseException | None = None
    """The first error that failed the message (the handler's, before any while recording)."""

    def succeed(self, result: Any) -> None:
        self.ran, self.result = True, result

    def fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error


class Verdicts:
    """The verdicts of one batch, by message id."""

    def __init__(self) -> None:
        self._by_id: dict[str, Verdict] = {}

    def of(self, message_id: str) -> Verdict:
        return self._by_id.setdefault(message_id, Verdict())

    def error_of(self, message_id: str) -> BaseException | None:
        verdict = self._by_id.get(message_id)
        return None if verdict is None else verdict.error


def check_hook(value: Any, field_name: str) -> None:
    if value is not None and not callable(value):
        raise ValidationError(
            field_name,
            f"expected a callable (a function or async function) or None, got {shown(value)}",
        )


async def run_hooks(
    message: ReceivedMessage[Any],
    succeeded: bool,
    verdict: Verdict,
    hooks: tuple[SuccessHook | None, FailureHook | None],
    limiter: anyio.CapacityLimiter,
) -> None:
    """Call ``on_success`` for a message whose handler ran and that succeeded, ``on_failure``
    for one that failed with an error; nothing for a skipped one. Never raises."""
    on_success, on_failure = hooks
    if succeeded and verdict.ran and on_success is not None:
        await _call(on_success, "on_success", message, verdict.result, limiter=limiter)
    elif not succeeded and verdict.error is not None and on_failure is not None:
        await _call(on_failure, "on_failure", message, verdict.error, limiter=limiter)


async def _call(
    hook: Callable[..., Any],
    name: str,
    message: ReceivedMessage[Any],
    value: Any,
    *,
    limiter: anyio.CapacityLimiter,
) -> None:
    try:
        await call_handler(hook, message, value, limiter=limiter)
    except Exception as exc:
        logger.warning(
            "message %s: %s raised %s: %s; ignored (the message's outcome stands)",
            message.message_id,
            name,
            type(exc).__name__,
            exc,
            extra={"message_id": message.message_id, "hook": name},
            exc_info=exc,
        )
