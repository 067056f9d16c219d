"""Send tracked messages: one at a time, or any number in batches."""

from __future__ import annotations

from sqs_cluster import Config, Message, MessageClient, RecordKey


async def send_orders(config: Config, queue_url: str) -> list[RecordKey]:
    """Send 100 orders; returns their record keys in the order given."""
    async with MessageClient(config) as client:
        first = await client.send_message(
            queue_url,
            {"id": 1, "quantity": 2},  # any JSON value; a str is sent unchanged
            meta={"tenant": "acme"},  # stored on the record only, never in the message
            MessageAttributes={"source": {"DataType": "String", "StringValue": "web"}},
        )
        rest = await client.send_message_batch(
            queue_url,
            [
                *({"id": n, "quantity": 1} for n in range(2, 100)),
                Message(body={"id": 100, "quantity": 5}, delay_seconds=0),
            ],
            meta={"tenant": "acme"},  # the same meta on every record of the batch
        )
    return [first, *rest]
