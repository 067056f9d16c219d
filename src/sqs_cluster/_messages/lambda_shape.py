"""Build Lambda-shaped SQS events from ReceiveMessage output (for local workers and tests)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def queue_arn_from_url(queue_url: str, region: str) -> str:
    """``arn:aws:sqs:<region>:<account>:<name>`` for a queue URL."""
    parts = queue_url.rstrip("/").split("/")
    return f"arn:aws:sqs:{region}:{parts[-2]}:{parts[-1]}"


def _message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "stringValue": value.get("StringValue"),
        "binaryValue": value.get("BinaryValue"),
        "stringListValues": list(value.get("StringListValues", [])),
        "binaryListValues": list(value.get("BinaryListValues", [])),
        "dataType": value.get("DataType", "String"),
    }


def lambda_record(message: Mapping[str, Any], *, queue_arn: str, region: str) -> dict[str, Any]:
    """One Lambda SQS event record, with the field names Lambda uses."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message.get("ReceiptHandle"),
        "body": message.get("Body", ""),
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {
            name: _message_attribute(value)
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody"),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def lambda_event(
    messages: Iterable[Mapping[str, Any]], *, queue_url: str, region: str
) -> dict[str, Any]:
    """A Lambda SQS event for messages received with ``AttributeNames=["All"]``."""
    arn = queue_arn_from_url(queue_url, region)
    return {"Records": [lambda_record(m, queue_arn=arn, region=region) for m in messages]}
