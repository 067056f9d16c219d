"""Parse a Lambda SQS record and fetch its DynamoDB record only when needed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqs_cluster import MessageClient


async def describe(client: MessageClient, record: Mapping[str, Any]) -> dict[str, Any]:
    """What a consumer can learn about one received message."""
    message = client.read_sqs_record(record)  # parsing only: no AWS request
    info: dict[str, Any] = {
        "message_id": message.message_id,  # SQS's id of the message
        "key": message.key.to_dict(),  # the record's {"pKey", "rKey"}
        "tracked": message.tracked,  # False when sent without sqs-cluster
        "receive_count": message.receive_count,  # ApproximateReceiveCount
        "body": message.body,  # decoded when it is JSON, else the text
    }
    if message.tracked:
        stored = await message.get_message_record()  # one GetItem
        info["meta"] = stored.meta
        info["status"] = stored.status.value
    return info
