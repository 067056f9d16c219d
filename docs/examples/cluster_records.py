"""Read a cluster's items and its globals with plain boto3, as any other tool would."""

from __future__ import annotations

import json
from typing import Any

import boto3

from sqs_cluster import Config


def partition(config: Config, p_key: str) -> dict[str, dict[str, Any]]:
    """The items of one partition by rKey (one Query): for a cluster's pKey, the cluster item,
    its top counter and its progress item; for ``<pKey>#<n>``, its counter shard ``n``."""
    ddb = boto3.client("dynamodb", region_name=config.region, endpoint_url=config.endpoint_url)
    pages = ddb.get_paginator("query").paginate(
        TableName=config.table,
        KeyConditionExpression="pKey = :p",
        ExpressionAttributeValues={":p": {"S": p_key}},
        ConsistentRead=True,
    )
    return {item["rKey"]["S"]: item for page in pages for item in page["Items"]}


def counts(config: Config, items: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Counts as the library computes them: the shards the top counter names, summed (one
    BatchGetItem), and sentCount from the progress item."""
    top = items["SQSMessage$counter#0"]
    p_key, shards = top["pKey"]["S"], int(top["shards"]["N"])
    ddb = boto3.client("dynamodb", region_name=config.region, endpoint_url=config.endpoint_url)
    keys = [
        {"pKey": {"S": f"{p_key}#{n}"}, "rKey": {"S": "SQSMessage$shard"}} for n in range(shards)
    ]
    got = ddb.batch_get_item(RequestItems={config.table: {"Keys": keys, "ConsistentRead": True}})
    total = {"completed": 0, "failed": 0, "sent": 0}
    for shard in got["Responses"][config.table]:
        for name in ("completed", "failed"):
            total[name] += int(shard[name]["N"])
    if "SQSMessage$progress" in items:
        total["sent"] = int(items["SQSMessage$progress"]["sentCount"]["N"])
    return total


def task_item(config: Config, cluster_p_key: str, r_key: str, index: int) -> dict[str, Any]:
    """The record of task ``index``: its key is derived, no lookup needed."""
    ddb = boto3.client("dynamodb", region_name=config.region, endpoint_url=config.endpoint_url)
    item: dict[str, Any] = ddb.get_item(
        TableName=config.table,
        Key={"pKey": {"S": f"{cluster_p_key}.{index}"}, "rKey": {"S": r_key}},
        ConsistentRead=True,
    )["Item"]
    return item


def globals_object(config: Config, p_key: str) -> tuple[Any, str]:
    """The globals and their server-side encryption, from ``<pKey>-globals.json``."""
    s3 = boto3.client("s3", region_name=config.region, endpoint_url=config.endpoint_url)
    got = s3.get_object(Bucket=config.bucket, Key=f"{p_key}-globals.json")
    return json.loads(got["Body"].read()), got["ServerSideEncryption"]
