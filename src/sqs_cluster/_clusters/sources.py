"""Tasks read from an S3 object: JSON Lines or CSV (Step Functions' ItemReader).

Streamed line by line from the object, so reading never holds the raw file twice.
"""

from __future__ import annotations

import csv
import json
from collections.abc import AsyncIterator
from typing import Any

from .._aws.clients import AWS
from .._errors import ValidationError

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
        (row,) = list(csv.reader([line])) or [[]]
        if header is None:
            header = row
            continue
        if row:
            yield dict(zip(header, row, strict=False))
