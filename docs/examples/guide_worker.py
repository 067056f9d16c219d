"""The handler module a local worker runs, on ECS or anywhere: a Lambda-style handler.

``sqs-cluster worker QUEUE_URL guide_worker:handler`` builds the event Lambda would, calls
``handler(event, context)``, and deletes every message not listed in ``batchItemFailures``.
The same module can be deployed to Lambda unchanged (with a sync entry point around it).
"""

from __future__ import annotations

import logging
from typing import Any

from sqs_cluster import MessageClient, PartialBatchResponse, ReceivedMessage

logger = logging.getLogger(__name__)


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
    async with MessageClient() as client:  # Config.from_env(): SQS_CLUSTER_TABLE, ...
        return await client.safe_process_batch(event, handle)
