"""Back off failed messages instead of retrying them after the whole visibility timeout."""

from __future__ import annotations

from typing import Any

from sqs_cluster import Backoff, MessageClient, PartialBatchResponse, ReceivedMessage, RetryAfter

RETRY = Backoff(base_seconds=10, max_seconds=900, on=(TimeoutError, ConnectionError))
"""10 s after the first failure, then 20, 40 ... up to 15 minutes, with jitter; only for the
failures that waiting can fix. Any other exception waits the queue's visibility timeout."""


async def charge(message: ReceivedMessage[Any]) -> None:
    """Charge one order; raising fails the message and reports it back to Lambda."""
    order = message.body
    if order["amount"] <= 0:
        raise ValueError(f"order {order['id']}: nothing to charge")  # no back-off: a bug
    if order.get("gateway") == "down":
        raise TimeoutError("payment gateway timed out")  # backed off
    if order.get("gateway") == "busy":
        raise RetryAfter(60, "payment gateway asked for a minute")  # exactly 60 s


async def process(client: MessageClient, event: dict[str, Any]) -> PartialBatchResponse:
    """Run ``charge`` on every record; the failed ones get their delay before this returns."""
    return await client.safe_process_batch(event, charge, retry=RETRY)
