"""Count outcomes and alert on failures with per-message hooks."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from sqs_cluster import MessageClient, PartialBatchResponse, ReceivedMessage

logger = logging.getLogger("orders")
outcomes: Counter[str] = Counter()


async def ship(message: ReceivedMessage[Any]) -> str:
    """Ship one order; returns the tracking number (stored on the record as its result)."""
    if not message.body.get("address"):
        raise ValueError(f"order {message.body['id']}: no address")
    return f"TRACK-{message.body['id']}"


def shipped(message: ReceivedMessage[Any], tracking: str) -> None:
    """After a success (a plain function runs in a worker thread)."""
    outcomes["shipped"] += 1
    logger.info("order %s shipped: %s", message.body["id"], tracking)


async def not_shipped(message: ReceivedMessage[Any], error: BaseException) -> None:
    """After a failure; raising here would be logged and ignored."""
    outcomes[type(error).__name__] += 1
    logger.warning(
        "order %s not shipped (receive %d): %s", message.body["id"], message.receive_count, error
    )


async def process(client: MessageClient, event: dict[str, Any]) -> PartialBatchResponse:
    """Ship every order; the hooks see each outcome, and cannot change it."""
    return await client.safe_process_batch(event, ship, on_success=shipped, on_failure=not_shipped)
