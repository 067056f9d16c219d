"""Create the table, the bucket and a queue with a dead-letter queue; safe to run again."""

from __future__ import annotations

from sqs_cluster import Config, Resources, ensure_resources


async def provision(config: Config, queue_name: str) -> Resources:
    """Make the queue's visibility timeout a little longer than the lease."""
    return await ensure_resources(
        config,
        queue_name=queue_name,  # ends in .fifo: a FIFO queue and a FIFO dead-letter queue
        max_receive_count=5,  # receives before SQS moves a message to the dead-letter queue
        visibility_timeout=config.lease_seconds + 60,
    )
