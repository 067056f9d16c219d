"""The embedded local AWS with a per-item write budget: a hot item is throttled, as on AWS."""

from __future__ import annotations

import os
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from sqs_cluster.local import LocalAWS


def hammer_one_item(writes: int = 200) -> dict[str, Any]:
    """Add 1 to one item's counter ``writes`` times, as fast as one client can; count what went
    through and what was throttled, and read the server's own counts."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")  # any credentials will do
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    with LocalAWS(item_write_budget=20) as aws:  # 20 WCU a second per item (AWS: 1,000)
        ddb = boto3.client(
            "dynamodb",
            endpoint_url=aws.endpoint_url,
            region_name="us-east-1",
            config=Config(retries={"total_max_attempts": 1}),  # no retries: see each throttle
        )
        ddb.create_table(
            TableName="counters",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        done = throttled = 0
        for _ in range(writes):
            try:
                ddb.update_item(
                    TableName="counters",
                    Key={"pk": {"S": "hot"}},
                    UpdateExpression="ADD n :one",
                    ExpressionAttributeValues={":one": {"N": "1"}},
                )
                done += 1
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ThrottlingException":
                    raise
                throttled += 1  # nothing was written
        item = ddb.get_item(TableName="counters", Key={"pk": {"S": "hot"}}, ConsistentRead=True)
        return {
            "done": done,
            "throttled": throttled,
            "counter": int(item["Item"]["n"]["N"]),  # equals done
            "stats": aws.budget_stats(),
        }
