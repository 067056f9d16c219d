"""Read a record with plain boto3, as any other tool would, and decode its attributes."""

from __future__ import annotations

import json
from typing import Any

import boto3

from sqs_cluster import Config, RecordKey


def read_raw(config: Config, key: RecordKey) -> dict[str, Any]:
    """The DynamoDB item of a record, in DynamoDB's attribute-value form."""
    ddb = boto3.client("dynamodb", region_name=config.region, endpoint_url=config.endpoint_url)
    item: dict[str, Any] = ddb.get_item(
        TableName=config.table,
        Key={"pKey": {"S": key.p_key}, "rKey": {"S": key.r_key}},
        ConsistentRead=True,
    )["Item"]
    return item


def decode(item: dict[str, Any]) -> dict[str, Any]:
    """Plain values: numbers are N strings, meta and user are JSON text, body is text. The id
    and queue URL come from the key; a count is absent until the first claim."""
    return {
        "id": item["pKey"]["S"].removeprefix("SQSMessage$"),
        "url": item["rKey"]["S"].removeprefix("SQSMessage$"),
        "status": item["status"]["S"],
        "statusCode": int(item["statusCode"]["N"]),
        "body": item["body"]["S"] if "body" in item else None,  # None: see bodyAt
        "meta": json.loads(item["meta"]["S"]) if "meta" in item else None,
        "expiresAt": int(item["expiresAt"]["N"]),
        "consumptionCount": int(item.get("consumptionCount", {"N": "0"})["N"]),
        "errors": [
            {name: next(iter(value.values())) for name, value in entry["M"].items()}
            for entry in item.get("error", {"L": []})["L"]
        ],
    }
