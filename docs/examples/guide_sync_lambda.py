"""A classic Lambda function on the blocking facade ``sqs_cluster.sync``: no ``async`` at all.

The client runs the async core on its own event-loop thread, so ``safe_process_batch`` still
processes the batch concurrently: each ``handle`` call runs in a worker thread, where the
message's lazy getters block.
"""

from __future__ import annotations

import logging
from typing import Any, TypedDict

from sqs_cluster.sync import Config, MessageClient, PartialBatchResponse, ReceivedMessage

logger = logging.getLogger(__name__)


class Order(TypedDict):
    """The JSON body this function's queue carries."""

    id: int
    quantity: int


def handle(message: ReceivedMessage[Order]) -> dict[str, int]:
    """Process one order; raising marks it failed, and SQS delivers it again."""
    order = message.body
    if order["quantity"] <= 0:
        raise ValueError(f"order {order['id']}: quantity must be positive")
    record = message.get_message_record()  # a lazy read; it blocks this worker thread only
    logger.info("order %s, attempt %d", order["id"], record.consumption_count)
    return {"reserved": order["quantity"]}  # stored on the record as its result


_client: MessageClient | None = None


def client() -> MessageClient:
    """The container's client: made once, and again only if the configuration changes."""
    global _client
    config = Config.from_env()
    if _client is None or _client.config != config:  # a new configuration: only in tests
        if _client is not None:
            _client.close()
        _client = MessageClient(config)  # its loop thread starts on first use
    return _client


def lambda_handler(event: dict[str, Any], context: object) -> PartialBatchResponse:
    """The function's entry point: ``guide_sync_lambda.lambda_handler``."""
    return client().safe_process_batch(event, handle, concurrency=10)
