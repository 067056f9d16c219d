"""Getting started: an embedded local AWS, a queue, and tracked messages with their records."""

from __future__ import annotations

import asyncio
import os

from sqs_cluster import MessageClient, Status
from sqs_cluster.local import LocalAWS


async def main() -> list[Status]:
    """Provision a table, a bucket and a queue locally, send three orders, read their records."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")  # any credentials will do locally
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    async with LocalAWS() as aws:
        resources = await aws.aprovision(prefix="quickstart")  # table, bucket, queue and DLQ
        assert resources.queue_url is not None
        async with MessageClient(resources.config) as client:
            keys = await client.send_message_batch(
                resources.queue_url,
                [{"id": n, "quantity": n + 1} for n in range(3)],
                meta={"source": "quickstart"},  # kept on each record, never sent
            )
            records = await client.get_message_records(keys)
    return [record.status for record in records if record is not None]


if __name__ == "__main__":
    print(asyncio.run(main()))  # three PRE FLIGHT records: sent, not yet processed
