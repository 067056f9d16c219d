"""Reading received messages: parse SQS records, load offloaded bodies, delete them once done."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from .._messages.event import ReceivedMessage, parse_record, with_payload
from .._messages.payloads import delete_payload, load_payload, parse_body_at
from .._messages.tracking import is_settled
from .._records.codec import record_from_item
from .._records.model import MessageRecord
from .._records.store import get_raw

if TYPE_CHECKING:
    from .._aws.clients import AWS
    from .._config import Config


class WrappedRecord(Protocol):
    """A wrapper of a Lambda SQS record that exposes it as ``raw_event`` (as Powertools' data
    classes do)."""

    @property
    def raw_event(self) -> Mapping[str, Any]: ...


RecordLike = Mapping[str, Any] | WrappedRecord | ReceivedMessage[Any]
"""A Lambda SQS record (a dict, or Powertools' ``SQSRecord``), or a :class:`ReceivedMessage`."""


class ReadingOperations:
    """Mixed into :class:`~sqs_cluster.MessageClient`, which provides ``_aws``."""

    _aws: AWS
    config: Config

    def read_sqs_record(self, record: RecordLike) -> ReceivedMessage[Any]:
        """Parse a Lambda SQS record into a :class:`ReceivedMessage` bound to this client.

        No IO: an offloaded message comes back with ``payload_pending`` (see
        :meth:`resolve_sqs_record`)."""
        if isinstance(record, ReceivedMessage):
            return record if record.client is self else replace(record, client=self)
        parsed = parse_record(
            record, endpoint_url=self.config.endpoint_url, bucket=self.config.bucket
        )
        return replace(parsed, client=self)

    async def resolve_sqs_record(self, record: RecordLike) -> ReceivedMessage[Any]:
        """:meth:`read_sqs_record`, then the body of an offloaded message loaded from S3.

        ``read_sqs_record`` does no IO, so an offloaded message comes from it with
        ``payload_pending`` True and its pointer as ``raw_body``; this loads the body (in
        either extended-client format, from the bucket the pointer names). Raises
        :class:`~sqs_cluster.PayloadMissingError` when the object is gone.
        ``safe_process_batch``, the worker and the dead-letter consumer do this themselves.
        """
        message = self.read_sqs_record(record)
        if not message.payload_pending or message.payload is None:
            return message
        text = await load_payload(self._aws, message.payload)
        cfg = self.config
        return with_payload(message, text, endpoint_url=cfg.endpoint_url, bucket=cfg.bucket)

    async def _with_body(self, record: MessageRecord[Any]) -> MessageRecord[Any]:
        """The record with its offloaded body loaded (as it is when it has its body)."""
        ref = parse_body_at(record.body_at)
        if record.body is not None or ref is None:
            return record
        return replace(record, body=await load_payload(self._aws, ref))

    async def _payload_settled(self, message: ReceivedMessage[Any]) -> bool:
        """Whether a message whose payload is gone was already settled: a late duplicate of a
        processed message (its payload deleted on success) is skipped, not failed."""
        item = await get_raw(self._aws, message.key, consistent_read=True)
        if item is None:
            return message.tracked  # a tracked message's record outlives its processing
        return is_settled(record_from_item(item))

    async def _drop_payload(self, message: ReceivedMessage[Any]) -> None:
        """Delete a processed message's payload (``Config.delete_payloads``); never raises."""
        if message.payload is not None and self.config.delete_payloads:
            await delete_payload(self._aws, message.payload)
