"""The handler module a local worker runs, on ECS or anywhere: a Lambda-style handler.

``sqs-cluster worker QUEUE_URL guide_worker:handler --on-startup guide_worker:open_client
--on-shutdown guide_worker:close_client`` builds the event Lambda would, calls
``handler(event, context)``, and deletes every message not listed in ``batchItemFailures``.
One client serves every batch of the process, as on Lambda one serves every invocation of a
container: the worker opens it before its first poll and closes it once it stopped.
"""

from __future__ import annotations

import logging
from typing import Any

from sqs_cluster import Config, MessageClient, PartialBatchResponse, ReceivedMessage

logger = logging.getLogger(__name__)
_client: MessageClient | None = None


async def open_client() -> MessageClient:
    """The process's client: opened once, and again only if the configuration changes."""
    global _client
    config = Config.from_env()  # SQS_CLUSTER_TABLE, ...
    if _client is None or _client.config != config:  # a new configuration: only in tests
        await close_client()
        _client = await MessageClient(config).__aenter__()
    return _client


async def close_client() -> None:
    """Close the client (the worker's ``--on-shutdown`` hook): no connection left open."""
    global _client
    client, _client = _client, None
    if client is not None:
        await client.aclose()


async def handle(message: ReceivedMessage[Any]) -> dict[str, int]:
    """Process one order; raising marks it failed, and SQS delivers it again."""
    order = message.body
    if order["quantity"] <= 0:
        raise ValueError(f"order {order['id']}: quantity must be positive")
    return {"reserved": order["quantity"]}


async def handler(event: dict[str, Any], context: Any) -> PartialBatchResponse:
    """One batch. ``context.get_remaining_time_in_millis()`` counts down the visibility."""
    logger.debug(
        "batch of %d, %d ms left", len(event["Records"]), context.get_remaining_time_in_millis()
    )
    client = await open_client()
    return await client.safe_process_batch(event, handle)
