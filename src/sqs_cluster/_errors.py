"""Exception hierarchy: every error a caller can cause names the field, the value and the limit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


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
    Retrying only the failed entries completes the batch without duplicates.
    """

    def __init__(self, sent: dict[int, Any], failed: dict[int, str]) -> None:
        shown = ", ".join(f"#{i}: {err}" for i, err in sorted(failed.items())[:5])
        more = "" if len(failed) <= 5 else f" (+{len(failed) - 5} more)"
        super().__init__(
            f"{len(sent)} of {len(sent) + len(failed)} entries sent; not sent: {shown}{more}"
        )
        self.sent = sent
        self.failed = failed

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
    """A cluster's fan-out stopped with tasks unsent; call create again with its id to resume."""

    def __init__(self, cluster_id: str, sent: int, total: int, failed: dict[int, str]) -> None:
        shown = ", ".join(f"tasks[{i}]: {err}" for i, err in sorted(failed.items())[:5])
        super().__init__(
            f"cluster {cluster_id}: {sent} of {total} tasks confirmed sent; not sent: {shown}"
            f"{' ...' if len(failed) > 5 else ''}. Call create_message_cluster again with "
            f"cluster_id={cluster_id!r} to resume without resending what was sent."
        )
        self.cluster_id = cluster_id
        self.sent = sent
        self.total = total
        self.failed = failed
