"""Change a record's meta and your own fields, safely under concurrency."""

from __future__ import annotations

from typing import Any

from sqs_cluster import MessageClient, MessageRecord, RecordKey


def count_review(record: MessageRecord[Any]) -> dict[str, Any]:
    """Compute the change from the record as it is now (re-run if another writer wins)."""
    meta = dict(record.meta or {})
    meta["reviews"] = meta.get("reviews", 0) + 1
    return {"meta": meta}


async def review(client: MessageClient, key: RecordKey) -> MessageRecord[Any]:
    """Set an own field, then increment a counter in meta; returns the updated record."""
    await client.update_message_record(key, {"reviewer": "billing"})
    return await client.update_message_record(key, count_review)
