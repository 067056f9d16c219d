"""Cluster globals in S3: one encrypted JSON object per cluster, updated with If-Match.

The function form of an update is a read-modify-write conditional on the ETag that was read
(S3 conditional writes); on 412/409 it reads again and re-applies, so concurrent updaters
never lose each other's changes.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ._aws import AWS, error_code
from ._codec import dumps
from ._errors import ConflictError, RecordNotFoundError
from ._retry import sleep_backoff

GlobalsFn = Callable[[Any], Any | Awaitable[Any]]
PRECONDITION_CODES = {"PreconditionFailed", "412"}
"""The condition was false: someone else's write came first."""
RETRY_CODES = {"ConditionalRequestConflict", "409"}
"""S3 was still settling a concurrent write to the key: ask again."""


async def read_globals(aws: AWS, location: Mapping[str, str]) -> tuple[Any, str]:
    """The globals value and its ETag."""
    try:
        async with aws.slot():
            resp = await aws.s3.get_object(Bucket=location["Bucket"], Key=location["Key"])
            async with resp["Body"] as stream:
                data = await stream.read()
    except Exception as exc:
        if error_code(exc) in {"NoSuchKey", "404"}:
            raise RecordNotFoundError(dict(location)) from exc
        raise
    return json.loads(data), str(resp["ETag"])


async def write_globals(
    aws: AWS,
    location: Mapping[str, str],
    value: Any,
    *,
    if_match: str | None = None,
    if_none_match: bool = False,
) -> str | None:
    """PutObject (SSE-S3 encrypted); returns the new ETag, or None if a condition failed."""
    params: dict[str, Any] = {
        "Bucket": location["Bucket"],
        "Key": location["Key"],
        "Body": dumps(value, field="globals").encode(),
        "ContentType": "application/json",
        "ServerSideEncryption": "AES256",
    }
    if if_match is not None:
        params["IfMatch"] = if_match
    if if_none_match:
        params["IfNoneMatch"] = "*"
    for attempt in range(aws.config.partial_retry_attempts):
        if attempt:
            await sleep_backoff(attempt)
        try:
            async with aws.slot():
                resp = await aws.s3.put_object(**params)
        except Exception as exc:
            if error_code(exc) in PRECONDITION_CODES:
                return None
            if error_code(exc) in RETRY_CODES:
                continue
            raise
        return str(resp.get("ETag", ""))
    raise ConflictError(f"S3 kept answering 409 for {location['Key']}; try again")


async def update_globals(aws: AWS, location: Mapping[str, str], value_or_fn: Any) -> Any:
    """Replace the globals with a value, or apply a function to them safely; returns the result."""
    if not callable(value_or_fn):
        dumps(value_or_fn, field="globals")
        await write_globals(aws, location, value_or_fn)
        return value_or_fn
    attempts = aws.config.partial_retry_attempts * 4
    for attempt in range(attempts):
        if attempt:
            await sleep_backoff(attempt)
        current, etag = await read_globals(aws, location)
        result = value_or_fn(current)
        new = await result if inspect.isawaitable(result) else result
        if await write_globals(aws, location, new, if_match=etag) is not None:
            return new
    raise ConflictError(f"globals update lost {attempts} races in a row; try again")
