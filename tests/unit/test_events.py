"""Lambda SQS events and records, read without a server: malformed events are refused before
any side effect, and records shaped like other libraries' are accepted.

safe_process_batch on real deliveries is tested against the server in tests/test_batch.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from sqs_cluster import MalformedEventError, MessageClient

pytestmark = pytest.mark.asyncio


GOOD = {
    "messageId": "m1",
    "receiptHandle": "r",
    "body": "{}",
    "attributes": {"ApproximateReceiveCount": "1"},
    "messageAttributes": {},
    "eventSource": "aws:sqs",
    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
    "awsRegion": "us-east-1",
}


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (None, "event"),
        ({}, "event"),
        ({"Records": "nope"}, "event"),
        ({"Records": [{**GOOD, "eventSource": "aws:s3"}]}, "eventSource"),
        ({"Records": [{**GOOD, "eventSource": "aws:sns"}]}, "eventSource"),
        ({"Records": [{k: v for k, v in GOOD.items() if k != "body"}]}, "body"),
        ({"Records": [{**GOOD, "messageId": 5}]}, "messageId"),
        ({"Records": [{**GOOD, "eventSourceARN": "arn:aws:sns:us-east-1:1:t"}]}, "eventSourceARN"),
        ({"Records": [GOOD, "not a record"]}, "record"),
    ],
)
async def test_malformed_events_raise_before_any_side_effect(
    client: MessageClient, event: Any, field: str
) -> None:
    before = dict(client.request_counts)
    calls: list[Any] = []
    with pytest.raises(MalformedEventError, match=field):
        await client.safe_process_batch(event, calls.append)
    assert calls == [] and dict(client.request_counts) == before


async def test_powertools_style_records_are_accepted(client: MessageClient) -> None:
    class SQSRecordLike:
        def __init__(self, raw: dict[str, Any]) -> None:
            self.raw_event = raw

    message = client.read_sqs_record(SQSRecordLike(GOOD))
    assert message.message_id == "m1" and message.body == {} and message.receive_count == 1
