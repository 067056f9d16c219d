"""An async Lambda function: async handler code, one event loop and one client per container.

Lambda's Python runtime calls a plain function, so ``lambda_handler`` runs the async code on an
event loop that lives as long as the container. The MessageClient opened by the first
invocation, with its connection pools, is reused by every later one.

Configure it with ``SQS_CLUSTER_TABLE`` (and ``SQS_CLUSTER_BUCKET`` for clusters), and enable
ReportBatchItemFailures on the event source mapping.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypedDict

from sqs_cluster import Config, MessageClient, PartialBatchResponse, ReceivedMessage


class Order(TypedDict):
    """The JSON body this function's queue carries."""

    id: int
    quantity: int


async def handle(message: ReceivedMessage[Order]) -> dict[str, int]:
    """Process one order; raising marks it failed, and SQS delivers it again."""
    order = message.body  # JSON bodies arrive decoded
    if order["quantity"] <= 0:
        raise ValueError(f"order {order['id']}: quantity must be positive")
    await asyncio.sleep(0)  # the real work: awaits on other services
    return {"reserved": order["quantity"]}  # stored on the record as its result


_loop = asyncio.new_event_loop()  # lives as long as the container
_client: MessageClient | None = None


async def open_client(config: Config) -> MessageClient:
    """The container's client: opened once, and again only if the configuration changes."""
    global _client
    if _client is None or _client.config != config:  # a new configuration: only in tests
        if _client is not None:
            await _client.aclose()
        _client = await MessageClient(config).__aenter__()
    return _client


async def process(event: Any) -> PartialBatchResponse:
    """Every record of the batch, ten at a time; only the failed ones are reported back."""
    client = await open_client(Config.from_env())
    return await client.safe_process_batch(event, handle, concurrency=10)


def lambda_handler(event: dict[str, Any], context: object) -> PartialBatchResponse:
    """The function's entry point: ``guide_async_lambda.lambda_handler``."""
    return _loop.run_until_complete(process(event))
