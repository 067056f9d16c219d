"""The embedded local AWS as a plain context manager, used with boto3."""

from __future__ import annotations

import os

import boto3

from sqs_cluster.local import LocalAWS


def queue_depth() -> int:
    """Start a local server, send one message, read the queue's counter, stop the server."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")  # any credentials will do
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    with LocalAWS() as aws:
        sqs = boto3.client("sqs", endpoint_url=aws.endpoint_url, region_name="us-east-1")
        url = sqs.create_queue(QueueName="jobs")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="hello")
        attrs = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        return int(attrs["Attributes"]["ApproximateNumberOfMessages"])
