"""A Lambda handler for an SQS event source mapping with ReportBatchItemFailures."""

from __future__ import annotations

import asyncio
from typing import Any

from sqs_cluster import Config, MessageClient, PartialBatchResponse, ReceivedMessage


async def handle(message: ReceivedMessage[Any]) -> None:
    """Process one order; raising marks this message failed and SQS delivers it again."""
    order = message.body  # JSON bodies arrive decoded
    if order["quantity"] <= 0:
        raise ValueError(f"order {order['id']}: quantity must be positive")


async def process(config: Config, event: dict[str, Any]) -> PartialBatchResponse:
    """Run ``handle`` on every record; only the failed ones are reported back."""
    async with MessageClient(config) as client:
        return await client.safe_process_batch(event, handle)


def lambda_handler(event: dict[str, Any], context: object) -> PartialBatchResponse:
    """The function's entry point; SQS_CLUSTER_* variables configure the client."""
    return asyncio.run(process(Config.from_env(), event))
