"""``ensure_resources``: create (or confirm) the table, bucket and queues the library needs.

Idempotent: existing resources are left as they are. The table is on-demand with TTL on
``expiresAt`` and the sparse index ``gsi1`` over cluster items (added to a table made
before it by UpdateTable); the bucket gets default encryption, a public access block and a
lifecycle rule that expires globals after 30 days; an optional queue gets a DLQ and a redrive
policy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .._config import Config
from .._errors import ConfigError
from .clients import AWS, error_code

GLOBALS_EXPIRY_DAYS = 30
DEFAULT_MAX_RECEIVE_COUNT = 3
CLUSTERS_INDEX = "gsi1"
"""A sparse global secondary index over cluster items only: the recent clusters, newest first,
in one Query (the dashboard's home page), never a Scan."""
CLUSTERS_INDEX_PK = "gsi1pk"
CLUSTERS_INDEX_SK = "gsi1sk"
CLUSTERS_PARTITION = "clusters"
"""The index partition every cluster item is written under (``gsi1pk``); its sort key
``gsi1sk`` is ``<startedAt>#<id>``."""


@dataclass(frozen=True)
class Resources:
    """What ``ensure_resources`` created or found."""

    table: str
    bucket: str | None
    queue_url: str | None = None
    dlq_url: str | None = None


async def ensure_resources(
    config: Config,
    *,
    queue_name: str | None = None,
    max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT,
    visibility_timeout: int = 360,
    session: Any = None,
) -> Resources:
    """Create the table and bucket of ``config`` and, if named, a queue with a DLQ."""
    async with AWS(config, session=session) as aws:
        await _ensure_table(aws)
        if config.bucket:
            await _ensure_bucket(aws, config.bucket)
        if queue_name is None:
            return Resources(config.table, config.bucket)
        queue_url, dlq_url = await _ensure_queue(
            aws, queue_name, max_receive_count=max_receive_count, visibility=visibility_timeout
        )
        return Resources(config.table, config.bucket, queue_url, dlq_url)


async def _ensure_table(aws: AWS) -> None:
    table = aws.config.table
    try:
        await aws.ddb.create_table(
            TableName=table,
            KeySchema=[
                {"AttributeName": "pKey", "KeyType": "HASH"},
                {"AttributeName": "rKey", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pKey", "AttributeType": "S"},
                {"AttributeName": "rKey", "AttributeType": "S"},
                *INDEX_ATTRIBUTES,
            ],
            GlobalSecondaryIndexes=[CLUSTERS_INDEX_SPEC],
            BillingMode="PAY_PER_REQUEST",
        )
    except Exception as exc:
        if error_code(exc) != "ResourceInUseException":
            raise
    waiter = aws.ddb.get_waiter("table_exists")
    await waiter.wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    await _ensure_clusters_index(aws)
    ttl = await aws.ddb.describe_time_to_live(TableName=table)
    if ttl.get("TimeToLiveDescription", {}).get("TimeToLiveStatus") not in {"ENABLED", "ENABLING"}:
        await aws.ddb.update_time_to_live(
            TableName=table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiresAt"},
        )


INDEX_ATTRIBUTES: list[Any] = [
    {"AttributeName": CLUSTERS_INDEX_PK, "AttributeType": "S"},
    {"AttributeName": CLUSTERS_INDEX_SK, "AttributeType": "S"},
]
CLUSTERS_INDEX_SPEC: Any = {
    "IndexName": CLUSTERS_INDEX,
    "KeySchema": [
        {"AttributeName": CLUSTERS_INDEX_PK, "KeyType": "HASH"},
        {"AttributeName": CLUSTERS_INDEX_SK, "KeyType": "RANGE"},
    ],
    "Projection": {"ProjectionType": "KEYS_ONLY"},
}


async def _ensure_clusters_index(aws: AWS) -> None:
    """Add ``gsi1`` to a table created before it (one UpdateTable; DynamoDB backfills it from
    the existing cluster items in the background, without blocking the table)."""
    table = aws.config.table
    described = await aws.ddb.describe_table(TableName=table)
    indexes = described["Table"].get("GlobalSecondaryIndexes", [])
    if any(i.get("IndexName") == CLUSTERS_INDEX for i in indexes):
        return
    await aws.ddb.update_table(
        TableName=table,
        AttributeDefinitions=INDEX_ATTRIBUTES,
        GlobalSecondaryIndexUpdates=[{"Create": CLUSTERS_INDEX_SPEC}],
    )


async def _ensure_bucket(aws: AWS, bucket: str) -> None:
    region = aws.config.region or "us-east-1"
    params: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":
        params["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        await aws.s3.create_bucket(**params)
    except Exception as exc:
        if error_code(exc) not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
            raise
    await aws.s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    await aws.s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    await aws.s3.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "sqs-cluster-globals-expiry",
                    "Filter": {"Prefix": ""},
                    "Status": "Enabled",
                    "Expiration": {"Days": GLOBALS_EXPIRY_DAYS},
                }
            ]
        },
    )


async def _ensure_queue(
    aws: AWS, name: str, *, max_receive_count: int, visibility: int
) -> tuple[str, str]:
    fifo = name.endswith(".fifo")
    dlq_name = f"{name.removesuffix('.fifo')}-dlq" + (".fifo" if fifo else "")
    fifo_attrs: dict[Any, str] = {"FifoQueue": "true"} if fifo else {}
    dlq = await aws.sqs.create_queue(
        QueueName=dlq_name, Attributes={"MessageRetentionPeriod": "1209600", **fifo_attrs}
    )
    dlq_url = dlq["QueueUrl"]
    arn = await aws.sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])
    redrive = {
        "deadLetterTargetArn": arn["Attributes"]["QueueArn"],
        "maxReceiveCount": str(max_receive_count),
    }
    wanted: dict[Any, str] = {
        "VisibilityTimeout": str(visibility),
        "RedrivePolicy": json.dumps(redrive),
    }
    try:
        queue = await aws.sqs.create_queue(QueueName=name, Attributes={**wanted, **fifo_attrs})
    except Exception as exc:
        if error_code(exc) not in QUEUE_EXISTS_CODES:
            raise
        raise await _queue_differs(aws, name, wanted) from None
    return queue["QueueUrl"], dlq_url


QUEUE_EXISTS_CODES = {"QueueAlreadyExists", "QueueNameExists"}
"""What CreateQueue answers when the queue exists with other attributes."""


async def _queue_differs(aws: AWS, name: str, wanted: dict[Any, str]) -> ConfigError:
    """The error for an existing queue whose attributes are not the ones asked for: each
    attribute that differs, as it is and as asked."""
    url = (await aws.sqs.get_queue_url(QueueName=name))["QueueUrl"]
    names: Any = list(wanted)
    answer = await aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)
    found: dict[Any, str] = dict(answer["Attributes"])
    differences = [
        f"{attr} is {_shown(attr, found.get(attr))}, asked {_shown(attr, value)}"
        for attr, value in wanted.items()
        if _shown(attr, found.get(attr)) != _shown(attr, value)
    ]
    return ConfigError(
        f"queue: {name!r} exists with other attributes: {'; '.join(differences) or 'unknown'}. "
        "Pass the values it has (--visibility-timeout, --max-receive-count), or change the "
        "queue's attributes (SetQueueAttributes)"
    )


def _shown(attr: str, value: str | None) -> str:
    """An attribute's value for comparison: a redrive policy as ``maxReceiveCount N to ARN``."""
    if value is None:
        return "(not set)"
    if attr != "RedrivePolicy":
        return value
    policy = json.loads(value)
    return f"maxReceiveCount {policy.get('maxReceiveCount')} to {policy.get('deadLetterTargetArn')}"
