"""Fail the invocation when every message of the batch failed."""

from __future__ import annotations

import logging
from typing import Any

from sqs_cluster import BatchFailedError, MessageClient, PartialBatchResponse, ReceivedMessage

logger = logging.getLogger("search")


async def index(message: ReceivedMessage[Any]) -> None:
    """Index one document; the search cluster being down fails every message."""
    if message.body.get("cluster") == "down":
        raise ConnectionError("search cluster unreachable")


async def process(client: MessageClient, event: dict[str, Any]) -> PartialBatchResponse:
    """Some failures: the partial batch response. All of them: BatchFailedError, so the
    invocation counts as an error (metrics, alarms, Lambda's handling of failed invocations)."""
    try:
        return await client.safe_process_batch(event, index, raise_on_entire_batch_failure=True)
    except BatchFailedError as error:
        kinds = sorted({type(e).__name__ for e in error.errors.values()})
        logger.error("all %d messages failed: %s", len(error.message_ids), kinds)
        raise
