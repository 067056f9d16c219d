"""The invocation's deadline: ``safe_process_batch`` starts no message once too little time is left.

Lambda ends an invocation at its timeout, whatever runs. A message started just before would
be cut off halfway (its lease then has to run out before a redelivery can take it over). So,
given Lambda's ``context`` (or the local worker's), a message is started only while the time
left is at least a margin; the others are reported as failed without running, and the
messages already running finish.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from .._errors import ValidationError
from .._records.model import shown
from .lease import RemainingMs

logger = logging.getLogger("sqs_cluster")

DEFAULT_MARGIN_SECONDS = 5.0
"""The default margin, for invocations with at least 50 s left when the batch starts."""
DEFAULT_MARGIN_SHARE = 0.1
"""With less, the default margin is this share of the time left at the start (a function with
Lambda's default 3 s timeout keeps 0.3 s), so a short timeout still runs its messages."""


def check_margin(value: Any) -> float | None:
    """``deadline_margin_seconds``: None (the default) or a number of seconds >= 0."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValidationError(
            "deadline_margin_seconds",
            f"expected a number of seconds or None, got {shown(value)}",
        )
    if value < 0:
        raise ValidationError(
            "deadline_margin_seconds", f"must be >= 0 (0 turns the check off), got {value!r}"
        )
    return float(value)


class Deadline:
    """Whether a message may start now: the time left is at least the margin."""

    def __init__(self, remaining: RemainingMs, margin_seconds: float | None) -> None:
        self._remaining = remaining
        left = remaining()
        if left is None:
            self.margin_ms: int | None = None  # no context: no deadline
        elif margin_seconds is None:
            self.margin_ms = int(min(DEFAULT_MARGIN_SECONDS * 1000, left * DEFAULT_MARGIN_SHARE))
        else:
            self.margin_ms = int(margin_seconds * 1000)

    def allows_start(self) -> bool:
        """False once the invocation's time left is under the margin."""
        if self.margin_ms is None:
            return True
        left = self._remaining()
        return left is None or left >= self.margin_ms

    def log_not_started(self, count: int) -> None:
        """Say how many messages the deadline left unstarted (reported as failed)."""
        if count:
            logger.warning(
                "%d messages not started: the invocation had less than %.1f s left "
                "(deadline_margin_seconds); reported as failed, they come back after their "
                "visibility timeout",
                count,
                (self.margin_ms or 0) / 1000,
                extra={"not_started": count},
            )
