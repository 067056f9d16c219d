"""Drain a queue through safe_process_batch, the way Lambda's event source mapping would."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqs_cluster import MessageClient
from sqs_cluster._messages.lambda_shape import lambda_event

REGION = "us-east-1"


async def drain_queue(
    client: MessageClient,
    queue_url: str,
    handler: Callable[..., Any],
    *,
    on_cluster_complete: Any = None,
    max_batches: int = 10_000,
) -> int:
    """Receive and process until the queue is empty; failed messages return at once."""
    sqs = client._aws.sqs
    batches = idle = 0
    while idle < 2 and batches < max_batches:
        resp = await sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            VisibilityTimeout=30,
            WaitTimeSeconds=0,
        )
        received = resp.get("Messages", [])
        if not received:
            idle += 1
            continue
        idle = 0
        batches += 1
        event = lambda_event(received, queue_url=queue_url, region=REGION)
        response = await client.safe_process_batch(
            event, handler, delete_succeeded=True, on_cluster_complete=on_cluster_complete
        )
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        for message in received:
            if message["MessageId"] in failed:
                await sqs.change_message_visibility(
                    QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
    return batches
