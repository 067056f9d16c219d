"""Exception hierarchy: every error a caller can cause names the field, the value and the limit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._outgoing import UnsentMessage


class SQSClusterError(Exception):
    """Base class of every error raised by sqs-cluster."""


class ConfigError(SQSClusterError, ValueError):
    """A configuration value is missing or out of range."""


class ValidationError(SQSClusterError, ValueError):
    """Input to the library is invalid; nothing was written."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class MalformedEventError(ValidationError):
    """A Lambda event or record is not an SQS event the library understands."""


class RecordNotFoundError(SQSClusterError, LookupError):
    """No DynamoDB record exists for the key."""

    def __init__(self, key: Any) -> None:
        super().__init__(f"no record for {key!r}")
        self.key = key


class ConflictError(SQSClusterError):
    """A conditional read-modify-write lost too many races in a row."""


class PartialSendError(SQSClusterError):
    """Some entries of a batch were sent and others were not, after retries.

    ``sent`` maps entry index to its record key; ``failed`` maps entry index to the last error.
    ``unsent`` holds, per failed index, the entry as it was prepared (its record key, body and
    SQS parameters): ``MessageClient.resend_unsent(error)`` sends exactly those entries under
    the same keys, so no record is left behind and nothing is sent twice.
    """

    def __init__(
        self,
        sent: dict[int, Any],
        failed: dict[int, str],
        *,
        queue_url: str | None = None,
        unsent: Mapping[int, UnsentMessage] | None = None,
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

    @property
    def failed_indexes(self) -> Sequence[int]:
        """Indexes of the entries that were not sent."""
        return sorted(self.failed)


class ResourceMissingError(SQSClusterError):
    """A table, bucket or queue the configuration names does not exist."""


class MessageInProgressError(SQSClusterError):
    """Another delivery of this message holds a live lease; let this one return to the queue."""

    def __init__(self, key: Any, lease_until_ms: int | None) -> None:
        super().__init__(
            f"{key!r} is being processed by another delivery (lease until {lease_until_ms} ms); "
            "raise or report it as a batch item failure so SQS redelivers it after the lease"
        )
        self.key = key
        self.lease_until_ms = lease_until_ms


class ClusterSendError(SQSClusterError):
    """A cluster's fan-out stopped with tasks unsent; call create again with its id to resume.

    ``sent`` counts the tasks confirmed sent (by this call and earlier ones); ``failed`` maps
    each task known not to be sent to the reason. ``uncertain`` lists tasks whose send was under
    way when the fan-out stopped, and ``unrecorded`` tasks that were sent but could not be
    recorded as sent: a resume sends both again unless a consumer has already claimed them (the
    claim absorbs such a duplicate). ``reason`` says why the fan-out stopped, when it stopped
    on an error rather than on tasks that failed one by one.
    """

    def __init__(
        self,
        cluster_id: str,
        sent: int,
        total: int,
        failed: dict[int, str],
        *,
        uncertain: Sequence[int] = (),
        unrecorded: Sequence[int] = (),
        reason: str | None = None,
    ) -> None:
        by_error: dict[str, list[int]] = {}
        for index, err in sorted(failed.items()):
            by_error.setdefault(err, []).append(index)
        shown = "; ".join(f"{_indexes(i, 5)}: {err}" for err, i in list(by_error.items())[:3])
        more = " ..." if len(by_error) > 3 else ""
        parts = [f"cluster {cluster_id}: {sent} of {total} tasks confirmed sent"]
        if reason:
            parts.append(f"stopped by {reason}")
        parts.append(f"not sent: {shown or 'none'}{more}")
        if uncertain:
            parts.append(f"sending when it stopped (may have been sent): {_indexes(uncertain)}")
        if unrecorded:
            parts.append(f"sent but not recorded as sent: {_indexes(unrecorded)}")
        super().__init__(
            "; ".join(parts) + f". Call create_message_cluster again with "
            f"cluster_id={cluster_id!r} to resume without resending what was sent"
            + (" and recorded." if uncertain or unrecorded else ".")
        )
        self.cluster_id = cluster_id
        self.sent = sent
        self.total = total
        self.failed = failed
        self.uncertain: list[int] = sorted(uncertain)
        self.unrecorded: list[int] = sorted(unrecorded)
        self.reason = reason


def _indexes(indexes: Sequence[int], limit: int = 10) -> str:
    ordered = sorted(indexes)
    shown = ", ".join(f"tasks[{i}]" for i in ordered[:limit])
    return shown + (f" (+{len(ordered) - limit} more)" if len(ordered) > limit else "")
