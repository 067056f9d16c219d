"""Tasks from a generator, or from a JSON Lines / CSV object in S3."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqs_cluster import MessageClient, RecordKey


def invoices(month: str) -> Iterator[dict[str, Any]]:
    """Any iterable (or async iterable) of JSON values will do."""
    for customer in ("c1", "c2", "c3"):
        yield {"customer": customer, "month": month}


async def from_generator(client: MessageClient, queue_url: str) -> RecordKey:
    return await client.create_message_cluster(queue_url, invoices("2026-12"), omit_globals=True)


async def from_s3(client: MessageClient, queue_url: str, bucket: str) -> RecordKey:
    """One task per line of ``inputs/customers.jsonl`` (``.csv``: one dict per row)."""
    tasks = client.tasks_from_s3(bucket, "inputs/customers.jsonl")
    return await client.create_message_cluster(queue_url, tasks, omit_globals=True)
