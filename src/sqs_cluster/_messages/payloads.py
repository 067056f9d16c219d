"""Large payloads in S3 (claim check), in the format of AWS's extended clients.

A body too large for its queue is stored as an S3 object and the message carries a pointer
instead: ``["software.amazon.payloadoffloading.PayloadS3Pointer", {"s3BucketName": ...,
"s3Key": ...}]`` with the ``ExtendedPayloadSize`` message attribute (the body's size in UTF-8
bytes), which AWS's extended clients for Java and Python read. Pointers in the legacy format
(``com.amazon.sqs.javamessaging.MessageS3Pointer`` with ``SQSLargePayloadSize``) are read too.
The pure half (formats) needs no AWS; the other half stores, loads and deletes the objects.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._aws.clients import error_code
from .._errors import SQSClusterError

if TYPE_CHECKING:
    from .._aws.clients import AWS
    from .._records.model import RecordKey

logger = logging.getLogger("sqs_cluster")

POINTER_CLASS = "software.amazon.payloadoffloading.PayloadS3Pointer"
LEGACY_POINTER_CLASS = "com.amazon.sqs.javamessaging.MessageS3Pointer"
SIZE_ATTRIBUTE = "ExtendedPayloadSize"
LEGACY_SIZE_ATTRIBUTE = "SQSLargePayloadSize"
SIZE_ATTRIBUTES = (SIZE_ATTRIBUTE, LEGACY_SIZE_ATTRIBUTE)
PAYLOAD_PREFIX = "sqs-cluster/payloads/"
"""Where the library stores offloaded bodies in its bucket (a lifecycle rule can match it)."""
MISSING_CODES = {"NoSuchKey", "404", "NotFound", "NoSuchBucket"}


class PayloadMissingError(SQSClusterError):
    """The S3 object a message's pointer names does not exist (or may not be read)."""

    def __init__(self, ref: PayloadRef, reason: str) -> None:
        super().__init__(
            f"message body offloaded to s3://{ref.bucket}/{ref.key} could not be read: {reason}"
        )
        self.ref = ref


@dataclass(frozen=True)
class PayloadRef:
    """Where an offloaded body lives, and its size in UTF-8 bytes (None if not given)."""

    bucket: str
    key: str
    size: int | None = None

    @property
    def uri(self) -> str:
        """``s3://bucket/key``."""
        return f"s3://{self.bucket}/{self.key}"


def payload_key(record: RecordKey) -> str:
    """The object key of a record's payload: one per record, so resending a message stores
    its payload where its record says it is."""
    digest = hashlib.sha256(f"{record.p_key}\n{record.r_key}".encode()).hexdigest()
    return f"{PAYLOAD_PREFIX}{digest[:40]}"


def pointer_body(ref: PayloadRef) -> str:
    """The message body that points at ``ref`` (the current extended-client format)."""
    return json.dumps([POINTER_CLASS, {"s3BucketName": ref.bucket, "s3Key": ref.key}])


def size_attribute(size: int) -> dict[str, str]:
    """The ``ExtendedPayloadSize`` attribute value for a body of ``size`` bytes."""
    return {"DataType": "Number", "StringValue": str(size)}


def parse_pointer(body: str, message_attributes: Mapping[str, Any]) -> PayloadRef | None:
    """The payload a received message points at, or None for an ordinary body.

    A pointer needs both halves: a size attribute (either name) and a body that is the
    two-element pointer array (either class name). Anything else is an ordinary body.
    """
    present = [n for n in SIZE_ATTRIBUTES if n in message_attributes]
    if not present or not body.startswith("["):
        return None
    try:
        value = json.loads(body)
    except ValueError:
        return None
    if not (isinstance(value, list) and len(value) == 2 and isinstance(value[1], dict)):
        return None
    if value[0] not in (POINTER_CLASS, LEGACY_POINTER_CLASS):
        return None
    bucket, key = value[1].get("s3BucketName"), value[1].get("s3Key")
    if not isinstance(bucket, str) or not isinstance(key, str) or not bucket or not key:
        return None
    return PayloadRef(bucket, key, _size(message_attributes[present[0]]))


def parse_body_at(value: str | None) -> PayloadRef | None:
    """The payload a record's ``bodyAt`` names (``s3://bucket/key``), None for ``sqs``."""
    if not value or not value.startswith("s3://"):
        return None
    bucket, _, key = value[len("s3://") :].partition("/")
    return PayloadRef(bucket, key) if bucket and key else None


def _size(attribute: Any) -> int | None:
    raw = attribute.get("stringValue", attribute.get("StringValue")) if attribute else None
    try:
        return int(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None


async def store_payload(aws: AWS, ref: PayloadRef, data: bytes) -> None:
    """Write an offloaded body (encrypted at rest with S3's keys)."""
    async with aws.slot():
        await aws.s3.put_object(
            Bucket=ref.bucket,
            Key=ref.key,
            Body=data,
            ContentType="application/octet-stream",
            ServerSideEncryption="AES256",
        )


async def load_payload(aws: AWS, ref: PayloadRef) -> str:
    """The offloaded body as text; PayloadMissingError when the object is gone."""
    try:
        async with aws.slot():
            resp = await aws.s3.get_object(Bucket=ref.bucket, Key=ref.key)
            async with resp["Body"] as stream:
                data: bytes = await stream.read()
    except Exception as exc:
        if error_code(exc) in MISSING_CODES:
            raise PayloadMissingError(ref, "no such object") from exc
        if error_code(exc) in {"AccessDenied", "403"}:
            raise PayloadMissingError(ref, "access denied (s3:GetObject)") from exc
        raise
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadMissingError(ref, "the object is not UTF-8 text") from exc


async def delete_payload(aws: AWS, ref: PayloadRef) -> bool:
    """Delete an offloaded body once its message succeeded; False (logged) if that failed.

    A failure here never fails the message: the bucket's lifecycle rule is the backstop.
    """
    try:
        async with aws.slot():
            await aws.s3.delete_object(Bucket=ref.bucket, Key=ref.key)
    except Exception as exc:
        logger.warning("could not delete the payload %s of a processed message: %s", ref.uri, exc)
        return False
    return True
