"""Errors of message clusters."""

from __future__ import annotations

from collections.abc import Sequence

from .._errors import SQSClusterError


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


class RedriveError(SQSClusterError):
    """A redrive stopped with tasks reset but not sent; call ``redrive_message_cluster``
    again: it goes on with the same redrive and sends them (the cluster cannot end before).

    ``failed`` maps each task not sent to the reason."""

    def __init__(self, cluster_id: str, number: int, failed: dict[int, str]) -> None:
        first = next(iter(sorted(failed.items())))[1] if failed else ""
        super().__init__(
            f"redrive {number} of cluster {cluster_id}: {_indexes(list(failed), 5)} not sent "
            f"({first}); call redrive_message_cluster again to send them"
        )
        self.cluster_id = cluster_id
        self.number = number
        self.failed = failed


def _indexes(indexes: Sequence[int], limit: int = 10) -> str:
    ordered = sorted(indexes)
    shown = ", ".join(f"tasks[{i}]" for i in ordered[:limit])
    return shown + (f" (+{len(ordered) - limit} more)" if len(ordered) > limit else "")
