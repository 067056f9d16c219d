"""Send a 3 MB message and consume it in a Lambda handler: the body goes through S3."""

from __future__ import annotations

from typing import Any

from sqs_cluster import Config, MessageClient, PartialBatchResponse, ReceivedMessage


async def send_report(config: Config, queue_url: str) -> None:
    """A body above the queue's limit goes to ``config.bucket``; the message is a pointer."""
    async with MessageClient(config) as client:  # config.bucket is set: offloading is on
        await client.send_message(queue_url, {"rows": ["x" * 100] * 30_000})  # ~3.1 MB


async def handle(client: MessageClient, event: dict[str, Any]) -> PartialBatchResponse:
    """The handler sees the body itself: the pointer was resolved before it ran, and the S3
    object is deleted once the message succeeded."""

    def count_rows(message: ReceivedMessage[Any]) -> int:
        assert message.payload is not None  # where the body was: message.payload.uri
        return len(message.body["rows"])

    return await client.safe_process_batch(event, count_rows)
