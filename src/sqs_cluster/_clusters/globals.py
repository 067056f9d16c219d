"""Cluster globals in S3: one encrypted JSON object per cluster, updated with If-Match.

The function form of an update is a read-modify-write conditional on the ETag that was read
(S3 conditional writes); on 412/409 it reads again and re-applies, so concurrent updaters
never lose each other's changes. Each such write also stores a random token in the object's
user metadata, after the tokens of the latest earlier updates: a call whose write landed but
whose answer was lost (the retry then gets 412) finds its token and does not apply again.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from typing import Any

from .._aws.clients import AWS, error_code
from .._aws.retry import sleep_backoff
from .._errors import ConflictError, RecordNotFoundError, ValidationError
from .._records.codec import dumps
from .._records.write_tokens import append_token, may_have_run, new_token, parse_tokens

PRECONDITION_CODES = {"PreconditionFailed", "412"}
"""The condition was false: someone else's write came first."""
RETRY_CODES = {"ConditionalRequestConflict", "409"}
"""S3 was still settling a concurrent write to the key: ask again."""
WRITES_METADATA = "sqs-cluster-writes"
"""User metadata (``x-amz-meta-sqs-cluster-writes``): tokens of the latest function updates."""
KEPT_WRITES = 64
"""Tokens kept in the metadata (about 1 KB of S3's 2 KB of user metadata)."""


MAX_GLOBALS_BYTES = 10 * 1024 * 1024
"""Globals as JSON: every task and the callback may download them, so they stay small."""


def globals_body(value: Any) -> bytes:
    """The globals object's JSON bytes, or ValidationError (not JSON, or over the limit)."""
    body = dumps(value, field="globals").encode()
    if len(body) > MAX_GLOBALS_BYTES:
        raise ValidationError(
            "globals", f"are {len(body)} bytes as JSON; the limit is {MAX_GLOBALS_BYTES} bytes"
        )
    return body


async def read_globals(aws: AWS, location: Mapping[str, str]) -> tuple[Any, str]:
    """The globals value and its ETag."""
    value, etag, _ = await _read(aws, location)
    return value, etag


async def _read(aws: AWS, location: Mapping[str, str]) -> tuple[Any, str, list[str]]:
    """The globals value, its ETag and the write tokens of the latest function updates."""
    try:
        async with aws.slot():
            resp = await aws.s3.get_object(Bucket=location["Bucket"], Key=location["Key"])
            async with resp["Body"] as stream:
                data = await stream.read()
    except Exception as exc:
        if error_code(exc) in {"NoSuchKey", "404"}:
            raise RecordNotFoundError(dict(location)) from exc
        raise
    tokens = parse_tokens(resp.get("Metadata", {}).get(WRITES_METADATA))
    return json.loads(data), str(resp["ETag"]), tokens


async def write_globals(
    aws: AWS,
    location: Mapping[str, str],
    value: Any,
    *,
    if_match: str | None = None,
    if_none_match: bool = False,
    metadata: Mapping[str, str] | None = None,
) -> str | None:
    """PutObject (SSE-S3 encrypted); returns the new ETag, or None if a condition failed."""
    params: dict[str, Any] = {
        "Bucket": location["Bucket"],
        "Key": location["Key"],
        "Body": globals_body(value),
        "ContentType": "application/json",
        "ServerSideEncryption": "AES256",
    }
    if if_match is not None:
        params["IfMatch"] = if_match
    if if_none_match:
        params["IfNoneMatch"] = "*"
    if metadata:
        params["Metadata"] = dict(metadata)
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
        await write_globals(aws, location, value_or_fn)
        return value_or_fn
    attempts = aws.config.partial_retry_attempts * 4
    token = new_token()
    new: Any = None
    for attempt in range(attempts):
        if attempt:
            await sleep_backoff(attempt)
        current, etag, tokens = await _read(aws, location)
        if token in tokens:  # the last write landed, though its retry got 412
            return new
        result = value_or_fn(current)
        new = await result if inspect.isawaitable(result) else result
        metadata = {WRITES_METADATA: append_token(tokens, token, KEPT_WRITES)}
        try:
            etag_written = await write_globals(aws, location, new, if_match=etag, metadata=metadata)
        except Exception as exc:  # lost answers, 5xx, or 409s after an attempt that may have run
            if not (may_have_run(exc) or isinstance(exc, ConflictError)):
                raise
            if await _landed(aws, location, token):
                return new
            raise
        if etag_written is not None:
            return new
    raise ConflictError(f"globals update lost {attempts} races in a row; try again")


async def _landed(aws: AWS, location: Mapping[str, str], token: str) -> bool:
    """Whether the object carries ``token`` (False when it cannot be read either)."""
    try:
        _, _, tokens = await _read(aws, location)
    except Exception:
        return False
    return token in tokens
