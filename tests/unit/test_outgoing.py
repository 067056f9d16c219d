"""Outgoing messages, checked without a server: what is refused before anything is written.

The checks that need the queue's attributes (its maximum message size) and everything that is
sent are tested against the server in tests/test_messages.py.
"""

from __future__ import annotations

import pytest

from sqs_cluster import Message, MessageClient, ValidationError

from ..conftest import Queue

pytestmark = pytest.mark.asyncio


async def test_delay_seconds_and_meta_are_checked_before_writing(
    client: MessageClient, queue: Queue
) -> None:
    before = dict(client.request_counts)
    with pytest.raises(ValidationError, match=r"^entries\[0\]\.delay_seconds: DelaySeconds"):
        await client.send_message_batch(queue.url, [Message(body=1, delay_seconds=-1)])
    with pytest.raises(ValidationError, match=r"^sqs_params\.DelaySeconds: .* 0 to 900"):
        await client.send_message(queue.url, "x", DelaySeconds=True)
    with pytest.raises(ValidationError, match=r"^meta: .* the limit is 300000 bytes"):
        await client.send_message(queue.url, "b" * 200_000, meta="m" * 300_000)
    assert dict(client.request_counts) == before


async def test_invalid_queue_url_is_rejected(client: MessageClient) -> None:
    with pytest.raises(ValidationError, match=r"^queue_url:"):
        await client.send_message("my-queue", "x")
