"""One batch of ``safe_process_batch`` as it runs: its records parsed, its FIFO groups, which
records failed and why, and the retry delays those failures get. Pure: no request."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._errors import MalformedEventError
from .event import ReceivedMessage
from .hooks import Verdicts
from .retry import Backoff, Delay, retry_delay

logger = logging.getLogger("sqs_cluster")

Positioned = tuple[int, ReceivedMessage[Any]]
"""A record's position in the event, and its parsed message."""


@dataclass
class BatchRun:
    """One batch as it ran: its records, what parsed, and which records failed and why."""

    records: Sequence[Mapping[str, Any]]
    verdicts: Verdicts = field(default_factory=Verdicts)
    messages: list[ReceivedMessage[Any] | None] = field(default_factory=list)
    """Each record parsed, None where it did not parse."""
    failed: set[int] = field(default_factory=set)
    """The positions reported as failures."""
    succeeded: list[ReceivedMessage[Any]] = field(default_factory=list)
    stopped_by: dict[int, int] = field(default_factory=dict)
    """A FIFO record that did not run -> the position whose failure stopped its group."""
    not_started: set[int] = field(default_factory=set)
    """Records not started because the invocation's deadline was near."""

    def parse(self, read: Callable[[Mapping[str, Any]], ReceivedMessage[Any]]) -> None:
        """Parse every record; one whose body contradicts its key fails alone."""
        for position, record in enumerate(self.records):
            try:
                self.messages.append(read(record))
            except MalformedEventError as exc:
                logger.warning("rejected message %s: %s", record.get("messageId"), exc)
                self.failed.add(position)
                self.messages.append(None)

    def groups(self, fifo: bool) -> list[list[Positioned]]:
        """What runs in order: each message alone, or a FIFO queue's message groups (a group
        with a rejected record stops there, like a failure, to keep its order)."""
        if not fifo:
            return [[(i, m)] for i, m in enumerate(self.messages) if m is not None]
        groups: dict[str, list[Positioned]] = {}
        for i, message in enumerate(self.messages):
            group = (self.records[i].get("attributes") or {}).get("MessageGroupId") or ""
            groups.setdefault(group, []).append((i, message))  # type: ignore[arg-type]
        return [self._stop_at_rejected(g) for g in groups.values()]

    def _stop_at_rejected(self, group: list[Positioned]) -> list[Positioned]:
        for n, (position, _) in enumerate(group):
            if position in self.failed:
                self.leave(group[n + 1 :], cause=position)
                return group[:n]
        return group

    def leave(self, rest: Sequence[Positioned], cause: int | None) -> None:
        """Report records that will not run: after ``cause`` failed in their FIFO group, or
        (``cause`` None) for the deadline."""
        for position, _ in rest:
            self.failed.add(position)
            if cause is None:
                self.not_started.add(position)
            else:
                self.stopped_by[position] = cause

    def failed_ids(self) -> list[str]:
        """The message ids reported as failures, in the event's order."""
        return [self.records[p]["messageId"] for p in sorted(self.failed)]

    def retry_delays(self, retry: Backoff | None) -> list[Delay]:
        """The next visibility timeout of each reported failure that has one: its own error's
        (``RetryAfter``, or the back-off), or for a FIFO record left behind, the one of the
        failure that stopped its group (so the group comes back together). Records skipped as
        duplicates, bounced by another delivery's lease, not parsed or not started get none."""
        by_cause: dict[int, int | None] = {}
        delays = []
        for position in sorted(self.failed):
            cause = self.stopped_by.get(position, position)
            if cause not in by_cause:
                by_cause[cause] = self._delay_of(cause, retry)
            seconds, message = by_cause[cause], self.messages[position]
            if seconds is not None and message is not None and message.receipt_handle:
                delays.append(
                    Delay(message.queue_url, message.receipt_handle, seconds, message.message_id)
                )
        return delays

    def _delay_of(self, position: int, retry: Backoff | None) -> int | None:
        message = self.messages[position]
        error = None if message is None else self.verdicts.error_of(message.message_id)
        if message is None or error is None:
            return None
        return retry_delay(error, message.receive_count, retry)
