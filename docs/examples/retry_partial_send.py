"""Resend only the entries of a batch that were not sent, under the record keys they have."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqs_cluster import MessageClient, PartialSendError, RecordKey


async def send_all(
    client: MessageClient, queue_url: str, bodies: Sequence[Any], attempts: int = 3
) -> list[RecordKey]:
    """Send every body exactly once; returns the record keys in the order given."""
    try:
        return await client.send_message_batch(queue_url, bodies)
    except PartialSendError as exc:  # indexes in exc.sent / exc.failed refer to ``bodies``
        error = exc
    for _ in range(attempts - 1):
        try:  # the unsent entries only, each under the key its record already has
            return await client.resend_unsent(error)
        except PartialSendError as exc:  # the same indexes: still those of ``bodies``
            error = exc
    raise error
