"""The embedded local AWS as an async context manager, used with sqs-cluster."""

from __future__ import annotations

import os

from sqs_cluster import Config, MessageClient, Status, ensure_resources
from sqs_cluster.local import LocalAWS


async def round_trip() -> Status:
    """Provision everything on a fresh local server, send a tracked message, read its record."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")  # any credentials will do
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    async with LocalAWS() as aws:  # DynamoDB and S3 writes atomic, as on AWS
        config = Config(
            table="records", bucket="globals", region="us-east-1", endpoint_url=aws.endpoint_url
        )
        resources = await ensure_resources(config, queue_name="jobs")
        assert resources.queue_url is not None
        async with MessageClient(config) as client:
            key = await client.send_message(resources.queue_url, {"hello": "world"})
            record = await client.get_message_record(key)
    return record.status
