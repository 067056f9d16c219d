"""Consume one message at a time, without ``safe_process_batch``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqs_cluster import ClaimOutcome, MessageClient, MessageInProgressError


def charge(order: Any) -> None:
    """The work itself."""
    if order["amount"] < 0:
        raise ValueError(f"order {order['id']}: negative amount")


async def handle_record(client: MessageClient, record: Mapping[str, Any]) -> str:
    """Process one Lambda SQS record; says what happened."""
    try:
        if await client.is_complete(record):  # claims the message unless it is complete
            return "already complete"  # a duplicate: delete it, do not process it
    except MessageInProgressError:
        return "in progress elsewhere"  # leave it in the queue: SQS delivers it again
    try:
        charge(client.read_sqs_record(record).body)
    except Exception as exc:
        await client.mark_failed(record, exc)  # keeps the error, releases the lease
        raise
    await client.mark_complete(record)
    return "processed"


async def handle_with_claim(client: MessageClient, record: Mapping[str, Any]) -> ClaimOutcome:
    """The same with ``claim``, which returns an outcome instead of raising."""
    claim = await client.claim(record)
    if claim.outcome is ClaimOutcome.CLAIMED:
        try:
            charge(client.read_sqs_record(record).body)
        except Exception as exc:
            await client.mark_failed(record, exc)
            raise
        await client.mark_complete(record)
    return claim.outcome
