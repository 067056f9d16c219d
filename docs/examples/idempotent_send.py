"""A producer that may run twice (a Lambda retry, a re-run script) and sends each order once."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from sqs_cluster import Message, MessageClient, PartialSendError, RecordKey, SentKeys

log = logging.getLogger(__name__)
META = {"source": "export"}  # part of what a repeat must match, with the body


async def publish_order(
    client: MessageClient, queue_url: str, order: Mapping[str, Any]
) -> RecordKey:
    """One order: a second call for the same order sends nothing and returns the same key."""
    return await client.send_message(
        queue_url,
        order,
        meta=META,
        idempotency_key=f"order-{order['id']}",  # what makes two runs the same send
    )


async def publish_export(
    client: MessageClient, queue_url: str, orders: Sequence[Mapping[str, Any]]
) -> SentKeys:
    """A whole export. Run again after a crash or a partial failure, it sends what is
    missing and nothing twice: a plain retry of the same call, no state kept in between."""
    entries = [Message(order, idempotency_key=f"order-{order['id']}") for order in orders]
    try:
        keys = await client.send_message_batch(queue_url, entries, meta=META)
    except PartialSendError as exc:
        log.warning("%s; sending the export again", exc)
        keys = await client.send_message_batch(queue_url, entries, meta=META)
    if keys.already_sent:  # indexes of the orders an earlier run (or call) had sent
        log.info("%d of %d orders were sent before", len(keys.already_sent), len(keys))
    return keys
