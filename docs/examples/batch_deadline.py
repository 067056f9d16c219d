"""Start no message in the last seconds of a Lambda invocation."""

from __future__ import annotations

from typing import Any

from sqs_cluster import MessageClient, PartialBatchResponse, ReceivedMessage


async def resize(message: ReceivedMessage[Any]) -> dict[str, Any]:
    """Resize one image (up to about 20 s of work)."""
    return {"image": message.body["image"], "sizes": [128, 512]}


async def process(
    client: MessageClient, event: dict[str, Any], context: Any
) -> PartialBatchResponse:
    """A message starts only while at least 25 s are left: one started later could be cut
    off by the function's timeout. Those not started are reported as failed, untouched, and
    come back after the visibility timeout."""
    return await client.safe_process_batch(
        event, resize, context=context, concurrency=2, deadline_margin_seconds=25
    )
