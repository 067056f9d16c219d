"""The queue half of :class:`MessageClient`: receive, delete, visibility and receive limits."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._aws import sqs as queue_ops
from .._concurrency import chunked
from .._messages.event import ReceivedMessage

if TYPE_CHECKING:
    from .._aws.clients import AWS
    from .._aws.preflight import Preflight
    from .._config import Config


class QueueOperations:
    """Queue methods for local workers and batch helpers; mixed into MessageClient."""

    _aws: AWS
    config: Config
    _max_receive: dict[str, int | None]
    _max_receive_locks: dict[str, asyncio.Lock]
    _preflight: Preflight

    async def delete_messages(self, messages: Sequence[ReceivedMessage[Any]]) -> list[str]:
        """DeleteMessageBatch (10 a call); returns the ids that could not be deleted.

        Best effort by design: a message left undeleted is redelivered, found complete by its
        claim, and deleted then.
        """
        by_queue: dict[str, list[ReceivedMessage[Any]]] = {}
        for message in messages:
            if message.receipt_handle:
                by_queue.setdefault(message.queue_url, []).append(message)
        left: list[str] = []
        for queue_url, group in by_queue.items():
            for chunk in chunked(group, 10):
                handles = [m.receipt_handle or "" for m in chunk]
                failed = await queue_ops.delete_batch(self._aws, queue_url, handles)
                left.extend(chunk[i].message_id for i in failed)
        return left

    async def receive_messages(
        self,
        queue_url: str,
        *,
        max_messages: int = 10,
        wait_seconds: int = 20,
        visibility_timeout: int | None = None,
    ) -> list[dict[str, Any]]:
        """ReceiveMessage with all attributes, as SQS returns them (for local workers)."""
        return await queue_ops.receive(
            self._aws,
            queue_url,
            max_messages=max_messages,
            wait_seconds=wait_seconds,
            visibility_timeout=visibility_timeout,
        )

    async def change_visibility(
        self, queue_url: str, receipt_handles: Sequence[str], timeout: int
    ) -> list[str]:
        """Extend (or, with 0, release) received messages' visibility, 10 per request.

        Returns the receipt handles whose visibility was not changed: those SQS refused (an
        expired handle's message is visible again anyway) or that kept failing after retries.
        """
        return await queue_ops.change_visibility(self._aws, queue_url, receipt_handles, timeout)

    async def _set_visibilities(
        self, queue_url: str, entries: Sequence[tuple[str, int]]
    ) -> list[str]:
        """Give each ``(receipt handle, timeout)`` its own visibility timeout: one request per
        10 entries, refused entries not retried (a failed message's retry delay is best
        effort: without it the message comes back after its visibility timeout). Returns the
        handles not changed; a failed request raises."""
        return await queue_ops.change_visibilities(self._aws, queue_url, entries, attempts=1)

    async def queue_visibility_timeout(self, queue_url: str) -> int:
        """The queue's visibility timeout in seconds, read once per process.

        Once read, it caps the leases taken on messages of this queue (see
        ``MessageClient.claim``).
        """
        known = await self._preflight.queue_visibility(queue_url)
        if known is not None:
            return known
        return await queue_ops.visibility_timeout(self._aws, queue_url)

    async def max_receive_count(self, queue_url: str) -> int | None:
        """The receive limit: ``config.max_receive_count``, else the queue's redrive policy."""
        if self.config.max_receive_count is not None:
            return self.config.max_receive_count
        if queue_url not in self._max_receive:
            lock = self._max_receive_locks.setdefault(queue_url, asyncio.Lock())
            async with lock:  # concurrent first callers share one request
                if queue_url not in self._max_receive:
                    self._max_receive[queue_url] = await self._redrive_limit(queue_url)
        return self._max_receive[queue_url]

    async def _redrive_limit(self, queue_url: str) -> int | None:
        policy = await queue_ops.queue_attribute(self._aws, queue_url, "RedrivePolicy")
        return int(json.loads(policy)["maxReceiveCount"]) if policy else None
