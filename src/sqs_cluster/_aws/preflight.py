"""Once-per-process checks that the table, the bucket and a queue exist, before the first write.

Without them a wrong name or region surfaces as a raw SDK error after records were already
written (orphan ``PRE FLIGHT`` records, or a cluster without its globals). Each check runs once
per process for each endpoint, region and resource (per queue URL for queues), and only its
success is remembered: the requests stay out of the hot path (a Lambda container that opens a
client per invocation pays once), and a resource created later is found by the next call. A
role that may not make a check's request (an older least-privilege policy) skips that check,
with a warning.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .._errors import ConfigError, ResourceMissingError
from .clients import AWS, error_code
from .sqs import queue_attribute

logger = logging.getLogger("sqs_cluster")

T = TypeVar("T")

ACCESS_DENIED_CODES = {"AccessDenied", "AccessDeniedException", "403", "Forbidden"}
"""The role may not make the check's request: skip the check rather than fail the call."""
MISSING_BUCKET_CODES = {"404", "NoSuchBucket", "NotFound"}
KEY_SCHEMA = {"pKey": "HASH", "rKey": "RANGE"}

_PASSED: dict[tuple[str, str, str], Any] = {}
"""Checks that passed in this process: (endpoint URL, region, check and resource) -> result."""


def forget_passed_checks() -> None:
    """Run every check again on next use (tests; a process whose resources were replaced)."""
    _PASSED.clear()


class Preflight:
    """The resource checks of one client; a check that passed is remembered process-wide."""

    def __init__(self, aws: AWS) -> None:
        self._aws = aws
        self._locks: dict[str, asyncio.Lock] = {}

    async def _once(self, name: str, check: Callable[[], Awaitable[T]]) -> T:
        key = (self._aws.config.endpoint_url or "", self._region(), name)
        if key not in _PASSED:
            async with self._locks.setdefault(name, asyncio.Lock()):
                if key not in _PASSED:  # concurrent first callers share one request
                    _PASSED[key] = await check()
        result: T = _PASSED[key]
        return result

    async def table(self) -> None:
        """Raise ResourceMissingError unless ``Config.table`` exists in the client's region."""
        await self._once(f"table {self._aws.config.table}", self._describe_table)

    async def bucket(self) -> None:
        """Raise ResourceMissingError unless ``Config.bucket`` exists (HeadBucket)."""
        await self._once(f"bucket {self._aws.config.bucket}", self._head_bucket)

    async def queue_max_bytes(self, queue_url: str) -> int | None:
        """The queue's MaximumMessageSize; ResourceMissingError if there is no queue there.

        None when the role may not read the queue's attributes.
        """
        return await self._once(f"queue {queue_url}", lambda: self._queue_size(queue_url))

    async def queue_visibility(self, queue_url: str) -> int | None:
        """The queue's VisibilityTimeout in seconds, read once per process and queue (what
        caps the leases taken on it); ResourceMissingError if there is no queue there.

        None when the role may not read the queue's attributes.
        """
        return await self._once(
            self._visibility_check(queue_url), lambda: self._queue_visibility(queue_url)
        )

    def known_visibility(self, queue_url: str) -> int | None:
        """The visibility timeout :meth:`queue_visibility` read in this process, without a
        request; None when it was not read (or could not be)."""
        check = self._visibility_check(queue_url)
        value = _PASSED.get((self._aws.config.endpoint_url or "", self._region(), check))
        return value if isinstance(value, int) else None

    @staticmethod
    def _visibility_check(queue_url: str) -> str:
        return f"visibility {queue_url}"

    def _region(self) -> str:
        region = self._aws.config.region or getattr(self._aws.ddb.meta, "region_name", None)
        return str(region or "the default region")

    async def _describe_table(self) -> None:
        aws = self._aws
        table = aws.config.table
        try:
            async with aws.slot():
                resp: Any = await aws.ddb.describe_table(TableName=table)
        except Exception as exc:
            code = error_code(exc)
            if code == "ResourceNotFoundException":
                raise ResourceMissingError(
                    f"table: no DynamoDB table {table!r} in region {self._region()}; check "
                    "Config.table and Config.region (nothing was written)"
                ) from exc
            if code in ACCESS_DENIED_CODES:
                logger.warning("skipping the table check: dynamodb:DescribeTable denied (%s)", exc)
                return
            raise
        keys = resp.get("Table", {}).get("KeySchema") or []
        schema = {k.get("AttributeName"): k.get("KeyType") for k in keys}
        if schema and schema != KEY_SCHEMA:  # another application's table, say
            raise ConfigError(
                f"table: {table!r} has the key schema {schema}; sqs-cluster needs pKey (HASH) "
                "and rKey (RANGE), both strings (nothing was written)"
            )

    async def _head_bucket(self) -> None:
        aws = self._aws
        bucket = aws.config.bucket
        if not bucket:
            raise ConfigError("bucket: clusters with globals need Config.bucket (or omit_globals)")
        try:
            async with aws.slot():
                await aws.s3.head_bucket(Bucket=bucket)
        except Exception as exc:
            code = error_code(exc)
            if code in MISSING_BUCKET_CODES:
                raise ResourceMissingError(
                    f"bucket: no S3 bucket {bucket!r}; check Config.bucket (nothing was written)"
                ) from exc
            if code in ACCESS_DENIED_CODES:
                logger.warning("skipping the bucket check: s3:ListBucket denied (%s)", exc)
                return
            raise

    async def _queue_visibility(self, queue_url: str) -> int | None:
        try:
            value = await queue_attribute(self._aws, queue_url, "VisibilityTimeout")
        except Exception as exc:
            if error_code(exc) in ACCESS_DENIED_CODES:
                logger.warning(
                    "leases are not capped by the visibility timeout of %s: "
                    "sqs:GetQueueAttributes denied (%s)",
                    queue_url,
                    exc,
                )
                return None
            raise
        return int(value) if value else None

    async def _queue_size(self, queue_url: str) -> int | None:
        try:
            size = await queue_attribute(self._aws, queue_url, "MaximumMessageSize")
        except Exception as exc:
            if error_code(exc) in ACCESS_DENIED_CODES:
                logger.warning("skipping the queue check: sqs:GetQueueAttributes denied (%s)", exc)
                return None
            raise
        return int(size) if size else None
