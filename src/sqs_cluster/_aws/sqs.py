"""Raw queue operations: receive, delete, change visibility, queue attributes."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from .._concurrency import chunked
from .._errors import ResourceMissingError, SQSClusterError
from .clients import AWS, error_code
from .retry import sleep_backoff

logger = logging.getLogger("sqs_cluster")
MISSING_QUEUE_CODES = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}

CONFIGURATION_CODES = MISSING_QUEUE_CODES | {
    "AccessDenied",
    "AccessDeniedException",
    "KMS.AccessDeniedException",
    "KmsAccessDenied",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "InvalidSecurity",
    "MissingAuthenticationToken",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidAddress",
    "ResourceNotFoundException",
}
"""Error codes that waiting will not fix: a missing queue or table, access denied, bad or
expired credentials."""
CONFIGURATION_EXCEPTIONS = {
    "NoCredentialsError",
    "PartialCredentialsError",
    "NoRegionError",
    "ParamValidationError",
    "UnknownServiceError",
}
"""botocore's own errors that waiting will not fix either (by name: botocore loads lazily)."""


def is_transient(exc: BaseException) -> bool:
    """Whether a failed request is worth trying again later: a timeout, a dropped connection, a
    throttle or a 5xx that outlasted botocore's retries. Configuration errors (a missing queue,
    access denied, bad credentials) and the library's own errors are not."""
    code = error_code(exc)
    if code is not None:
        return code not in CONFIGURATION_CODES
    if type(exc).__name__ in CONFIGURATION_EXCEPTIONS or isinstance(exc, SQSClusterError):
        return False
    if isinstance(exc, (OSError, TimeoutError)):
        return True
    from botocore.exceptions import BotoCoreError  # lazily: ``import sqs_cluster`` stays light

    return isinstance(exc, BotoCoreError)


async def receive(
    aws: AWS,
    queue_url: str,
    *,
    max_messages: int,
    wait_seconds: int,
    visibility_timeout: int | None = None,
) -> list[dict[str, Any]]:
    """ReceiveMessage with every system and message attribute (what Lambda events carry)."""
    params: dict[str, Any] = {
        "QueueUrl": queue_url,
        "MaxNumberOfMessages": max_messages,
        "WaitTimeSeconds": wait_seconds,
        "AttributeNames": ["All"],
        "MessageAttributeNames": ["All"],
    }
    if visibility_timeout is not None:
        params["VisibilityTimeout"] = visibility_timeout
    try:
        async with aws.slot():
            resp: Any = await aws.sqs.receive_message(**params)
    except Exception as exc:
        if error_code(exc) in MISSING_QUEUE_CODES:
            raise ResourceMissingError(f"queue_url: no queue at {queue_url}") from exc
        raise
    return list(resp.get("Messages", []))


async def change_visibility(
    aws: AWS, queue_url: str, receipt_handles: Sequence[str], timeout: int
) -> list[str]:
    """ChangeMessageVisibilityBatch (10 a call): extend a lease on messages, or release them.

    Entries SQS reports as Failed are retried with back-off, except sender faults (a handle
    that expired meanwhile, whose message is visible again anyway). Returns the handles whose
    visibility was not changed: sender faults, and entries still failing after the retries.
    """
    return await change_visibilities(aws, queue_url, [(h, timeout) for h in receipt_handles])


async def change_visibilities(
    aws: AWS, queue_url: str, entries: Sequence[tuple[str, int]], *, attempts: int | None = None
) -> list[str]:
    """ChangeMessageVisibilityBatch (10 a call) of ``(receipt handle, timeout)`` entries, each
    with its own timeout; see :func:`change_visibility`. ``attempts`` (default
    ``Config.partial_retry_attempts``) bounds the requests per 10 entries: 1 sends each
    chunk once and returns the entries SQS refused without retrying them."""
    unchanged: list[str] = []
    for chunk in chunked(entries, 10):
        pending = dict(enumerate(chunk))
        for attempt in range(attempts or aws.config.partial_retry_attempts):
            if attempt:
                await sleep_backoff(attempt)
            batch: Any = [
                {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": t}
                for i, (h, t) in pending.items()
            ]
            async with aws.slot():
                resp: Any = await aws.sqs.change_message_visibility_batch(
                    QueueUrl=queue_url, Entries=batch
                )
            failed = resp.get("Failed", [])
            unchanged.extend(pending[int(f["Id"])][0] for f in failed if f.get("SenderFault"))
            retry = [f for f in failed if not f.get("SenderFault")]
            pending = {int(f["Id"]): pending[int(f["Id"])] for f in retry}
            if not pending:
                break
        unchanged.extend(h for h, _ in pending.values())
    return unchanged


async def delete_batch(aws: AWS, queue_url: str, receipt_handles: Sequence[str]) -> list[int]:
    """DeleteMessageBatch of at most 10 handles; returns the positions that were not deleted.

    Best effort: a request that fails leaves every handle undeleted (logged, not raised).
    """
    entries: Any = [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(receipt_handles)]
    try:
        async with aws.slot():
            resp: Any = await aws.sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
    except Exception as exc:
        logger.warning("could not delete %d messages: %s", len(receipt_handles), exc)
        return list(range(len(receipt_handles)))
    return [int(f["Id"]) for f in resp.get("Failed", [])]


async def queue_attributes(aws: AWS, queue_url: str, names: list[str]) -> dict[str, str]:
    """Queue attributes by name, one GetQueueAttributes (a clear ResourceMissingError if the
    queue does not exist)."""
    asked: Any = names
    try:
        async with aws.slot():
            resp: Any = await aws.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=asked)
    except Exception as exc:
        if error_code(exc) in MISSING_QUEUE_CODES:
            raise ResourceMissingError(f"queue_url: no queue at {queue_url}") from exc
        raise
    return {str(k): str(v) for k, v in resp.get("Attributes", {}).items()}


async def queue_attribute(aws: AWS, queue_url: str, name: str) -> str | None:
    """One queue attribute (a clear ResourceMissingError if the queue does not exist)."""
    return (await queue_attributes(aws, queue_url, [name])).get(name)


DEPTH_ATTRIBUTES = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


async def queue_depth(aws: AWS, queue_url: str) -> dict[str, int]:
    """The queue's approximate message counts: visible, in flight and delayed (one
    GetQueueAttributes)."""
    attributes = await queue_attributes(aws, queue_url, list(DEPTH_ATTRIBUTES))
    return {name: int(attributes.get(name, 0)) for name in DEPTH_ATTRIBUTES}


async def dead_letter_url(aws: AWS, queue_url: str) -> str | None:
    """The URL of the queue's dead-letter queue, from its redrive policy (the queue's URL with
    the target's account and name: no GetQueueUrl); None without a redrive policy."""
    policy = await queue_attribute(aws, queue_url, "RedrivePolicy")
    if not policy:
        return None
    parts = str(json.loads(policy).get("deadLetterTargetArn", "")).split(":")
    base = queue_url.rstrip("/").rsplit("/", 2)[0]
    return f"{base}/{parts[4]}/{parts[5]}" if len(parts) == 6 else None


async def visibility_timeout(aws: AWS, queue_url: str) -> int:
    """The queue's VisibilityTimeout in seconds."""
    return int(await queue_attribute(aws, queue_url, "VisibilityTimeout") or 30)
