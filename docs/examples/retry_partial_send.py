"""Retry only the entries of a batch that were not sent."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqs_cluster import MessageClient, PartialSendError, RecordKey


async def send_all(
    client: MessageClient, queue_url: str, bodies: Sequence[Any], attempts: int = 3
) -> list[RecordKey]:
    """Send every body exactly once; returns the record keys in the order given."""
    keys: dict[int, RecordKey] = {}
    pending = list(range(len(bodies)))  # indexes into ``bodies`` not yet sent
    for _ in range(attempts):
        try:
            sent = await client.send_message_batch(queue_url, [bodies[i] for i in pending])
        except PartialSendError as exc:  # indexes in exc.sent / exc.failed refer to this call
            keys.update({pending[i]: key for i, key in exc.sent.items()})
            pending = [pending[i] for i in exc.failed_indexes]
            continue
        keys.update(zip(pending, sent, strict=True))
        return [keys[i] for i in range(len(bodies))]
    raise RuntimeError(f"{len(pending)} of {len(bodies)} messages could not be sent")
