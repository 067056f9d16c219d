"""Send a batch while injected faults make AWS throttle and leave items unprocessed."""

from __future__ import annotations

from typing import Any

from sqs_cluster import Config, MessageClient, RecordKey
from sqs_cluster.testing import FaultInjector, FaultKind


async def send_through_faults(
    config: Config, queue_url: str, bodies: list[Any]
) -> tuple[list[RecordKey], str]:
    injector = FaultInjector(
        seed=7,
        rates={FaultKind.THROTTLING: 0.2, FaultKind.UNPROCESSED: 0.2},
        operations=None,  # or {"dynamodb.UpdateItem", "SendMessageBatch"}
        delay_scale=0.01,  # botocore's retry sleeps x0.01: fast tests
    )
    async with MessageClient(config) as client:
        with injector.attached(client):
            keys = await client.send_message_batch(queue_url, bodies)
    return keys, injector.summary()  # "5 faults injected: throttling on ..."


def lost_callback_claim() -> FaultInjector:
    """One fault, pinned: the answer to the callback's claim is lost once."""
    return FaultInjector(
        1,
        {FaultKind.READ_TIMEOUT: 1.0},
        ["dynamodb.UpdateItem"],
        limit=1,
        match=lambda s, op, p: "callbackState = :running" in p.get("UpdateExpression", ""),
    )
