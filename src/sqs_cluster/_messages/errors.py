"""Errors of sending and consuming tracked messages."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .._errors import SQSClusterError
from .._records.model import RecordKey, shown
from .outgoing import UnsentMessage


class PartialSendError(SQSClusterError):
    """Some entries of a batch were sent and others were not, after retries.

    ``sent`` maps entry index to its record key; ``failed`` maps entry index to the last error.
    ``unsent`` holds, per failed index, the entry as it was prepared (its record key, body and
    SQS parameters): ``MessageClient.resend_unsent(error)`` sends exactly those entries under
    the same keys, so no record is left behind and nothing is sent twice. ``already_sent``
    holds the indexes of ``sent`` whose idempotency key had been sent before (nothing was sent
    for them).
    """

    def __init__(
        self,
        sent: dict[int, Any],
        failed: dict[int, str],
        *,
        queue_url: str | None = None,
        unsent: Mapping[int, UnsentMessage] | None = None,
        already_sent: Iterable[int] = (),
    ) -> None:
        shown = ", ".join(f"#{i}: {err}" for i, err in sorted(failed.items())[:5])
        more = "" if len(failed) <= 5 else f" (+{len(failed) - 5} more)"
        hint = " Resend them with resend_unsent(error)." if unsent else ""
        super().__init__(
            f"{len(sent)} of {len(sent) + len(failed)} entries sent; not sent: {shown}{more}.{hint}"
        )
        self.sent = sent
        self.failed = failed
        self.queue_url = queue_url
        self.unsent: dict[int, UnsentMessage] = dict(unsent or {})
        self.already_sent = frozenset(already_sent)

    @property
    def failed_indexes(self) -> Sequence[int]:
        """Indexes of the entries that were not sent."""
        return sorted(self.failed)


class MessageInProgressError(SQSClusterError):
    """Another delivery of this message holds a live lease; let this one return to the queue."""

    def __init__(self, key: Any, lease_until_ms: int | None) -> None:
        super().__init__(
            f"{key!r} is being processed by another delivery (lease until {lease_until_ms} ms); "
            "raise or report it as a batch item failure so SQS redelivers it after the lease"
        )
        self.key = key
        self.lease_until_ms = lease_until_ms


class IdempotencyConflictError(SQSClusterError, ValueError):
    """An ``idempotency_key`` was sent to the queue before with another message: nothing of
    this call was sent.

    Two sends under one key must carry the same body, ``meta``, message attributes and
    MessageGroupId. ``field`` names the first conflicting key (``idempotency_key``, or
    ``entries[3].idempotency_key``), ``idempotency_key`` is its value and ``key`` its record's
    key; ``indexes`` lists every conflicting entry of a batch (empty for ``send_message``).
    """

    def __init__(
        self, field: str, idempotency_key: str, key: RecordKey, indexes: Sequence[int] = ()
    ) -> None:
        more = f" (and {len(indexes) - 1} more entries)" if len(indexes) > 1 else ""
        super().__init__(
            f"{field}: {shown(idempotency_key)} was sent to this queue before with another "
            f"message: its body, meta, message attributes or MessageGroupId differ{more}. "
            "Nothing was sent; a new message needs a new key"
        )
        self.field = field
        self.idempotency_key = idempotency_key
        self.key = key
        self.indexes = list(indexes)


class BatchFailedError(SQSClusterError):
    """Every message of a batch failed (``safe_process_batch(...,
    raise_on_entire_batch_failure=True)``).

    ``message_ids`` lists them in the event's order; ``errors`` maps those that failed with an
    exception to it (a message bounced by another delivery's lease, not started before the
    deadline, or left behind by its FIFO group has none); ``response`` is the partial batch
    response the call would have returned.
    """

    def __init__(
        self,
        message_ids: Sequence[str],
        errors: Mapping[str, BaseException],
        response: Mapping[str, Any],
    ) -> None:
        def one(message_id: str) -> str:
            error = errors.get(message_id)
            return message_id if error is None else f"{message_id} ({type(error).__name__})"

        listed = ", ".join(one(i) for i in message_ids[:10])
        more = "" if len(message_ids) <= 10 else f" (+{len(message_ids) - 10} more)"
        super().__init__(
            f"all {len(message_ids)} messages of the batch failed: {listed}{more}; each is "
            "logged with its error"
        )
        self.message_ids = list(message_ids)
        self.errors = dict(errors)
        self.response = response
