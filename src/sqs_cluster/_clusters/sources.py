"""A cluster's S3 objects in and out: tasks read from JSON Lines or CSV (Step Functions'
ItemReader), and every result written as one JSON Lines object when it ends (ResultWriter).

Tasks are streamed line by line; results are written in one PutObject.
"""

from __future__ import annotations

import csv
import json
from collections.abc import AsyncIterator
from typing import Any

from .._aws.clients import AWS
from .._aws.conditional import update_if
from .._errors import ValidationError
from .._messages.outgoing import fast_dumps
from .._records.codec import key_item, now_iso
from .._records.model import Status
from .model import ClusterRecord, results_object_key
from .read import iter_task_records

FORMATS = ("jsonl", "csv")


def source_format(key: str, given: str | None) -> str:
    """``given``, else from the key's extension (``.jsonl``, ``.ndjson``, ``.csv``)."""
    if given is not None:
        if given not in FORMATS:
            raise ValidationError("format", f"expected one of {FORMATS}, got {given!r}")
        return given
    lowered = key.lower()
    if lowered.endswith((".jsonl", ".ndjson", ".jsonl.txt")):
        return "jsonl"
    if lowered.endswith(".csv"):
        return "csv"
    raise ValidationError(
        "format", f"cannot tell the format of {key!r} from its extension: pass format="
    )


async def _lines(aws: AWS, bucket: str, key: str) -> AsyncIterator[str]:
    async with aws.slot():
        resp = await aws.s3.get_object(Bucket=bucket, Key=key)
    async with resp["Body"] as stream:
        async for raw in stream.iter_lines():
            yield raw.decode("utf-8")


async def read_tasks(
    aws: AWS, bucket: str, key: str, format: str | None = None
) -> AsyncIterator[Any]:
    """Every task in ``s3://bucket/key``: one JSON value a line, or one dict a CSV row."""
    kind = source_format(key, format)
    lines = _lines(aws, bucket, key)
    if kind == "jsonl":
        number = 0
        async for line in lines:
            number += 1
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except ValueError as exc:
                raise ValidationError(
                    f"s3://{bucket}/{key} line {number}", f"not JSON: {exc}"
                ) from None
        return
    header: list[str] | None = None
    async for line in lines:
        row = next(csv.reader([line]), [])
        if header is None:
            header = row
            continue
        if row:
            yield dict(zip(header, row, strict=False))


async def write_results(aws: AWS, cluster: ClusterRecord[Any, Any]) -> dict[str, str]:
    """Write every completed task's ``{"index", "task", "result"}`` as JSON Lines to the
    library's bucket, then note where on the cluster record; returns the location.

    Idempotent: results are final once the cluster ended, so a second writer (a consumer that
    ended it at the same time, or one retrying) writes the same object again."""
    bucket = aws.config.bucket
    assert bucket, 'results="s3" is refused at creation without Config.bucket'
    location = {"Bucket": bucket, "Key": results_object_key(cluster.key)}
    lines = []
    async for record in iter_task_records(aws, cluster, Status.COMPLETE):
        line = {"index": record.task_index, "task": record.task, "result": record.result}
        lines.append(fast_dumps(line))
    body = ("\n".join(lines) + "\n" if lines else "").encode()
    async with aws.slot():
        await aws.s3.put_object(
            Bucket=bucket,
            Key=location["Key"],
            Body=body,
            ContentType="application/x-ndjson",
            ServerSideEncryption="AES256",
        )
    await update_if(
        aws,
        {
            "TableName": aws.config.table,
            "Key": key_item(cluster.key),
            "UpdateExpression": "SET results = :where, updatedAt = :now",
            "ConditionExpression": "attribute_not_exists(results)",
            "ExpressionAttributeValues": {
                ":where": {"M": {k: {"S": v} for k, v in location.items()}},
                ":now": {"S": now_iso()},
            },
        },
    )
    return location
