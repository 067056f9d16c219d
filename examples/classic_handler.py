"""A classic ``def handler(event, context)`` Lambda on the blocking facade: no ``async`` anywhere.

The client is made by the first invocation and kept, so every later invocation of a warm
container reuses its event-loop thread, its AWS clients and their connection pools; it reads
its configuration when called, not at import (tests can point it elsewhere).
``safe_process_batch`` still processes the batch concurrently: each plain ``handle`` call runs
in a worker thread, where the message's lazy getters (``get_message_record()``,
``get_globals()``) simply block.

Configure it with ``SQS_CLUSTER_TABLE`` (and ``SQS_CLUSTER_BUCKET`` for clusters), and enable
ReportBatchItemFailures on the event source mapping.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypedDict

from sqs_cluster.sync import (
    ClusterRecord,
    Config,
    MessageClient,
    MessageRecord,
    PartialBatchResponse,
    ReceivedMessage,
)

logger = logging.getLogger(__name__)


class Order(TypedDict):
    """The JSON body this function's queue carries."""

    id: str
    quantity: int


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


def handle(message: ReceivedMessage[Order]) -> None:
    """Process one order; raising marks this message failed and SQS delivers it again."""
    order = message.body  # typed: ReceivedMessage[Order].body is an Order
    if order["quantity"] <= 0:
        raise ValueError(f"order {order['id']}: quantity must be positive")
    record: MessageRecord[Any] = message.get_message_record()  # a blocking, lazy read
    logger.info("order %s (receive %d)", order["id"], record.consumption_count)


def report(cluster: ClusterRecord[Any, Any], get_globals: Callable[[], Any]) -> None:
    """Runs once per finished cluster of orders (exactly once, even across workers)."""
    logger.info(
        "cluster %s ended %s: %d of %d",
        cluster.id,
        cluster.status.value,
        cluster.completed,
        cluster.total,
    )


def handler(event: dict[str, Any], context: object) -> PartialBatchResponse:
    """The function's entry point: report only the failed messages back to SQS."""
    return client().safe_process_batch(event, handle, on_cluster_complete=report)
