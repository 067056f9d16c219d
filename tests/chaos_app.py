"""The handler the chaos test runs in worker processes that get SIGKILLed at random.

Each task's effect is one ledger item keyed by the task index, written with a conditional put,
so an effect repeated by a redelivery after a kill is absorbed: the ledger must end with
exactly one item per completed task. Every tenth attempt fails at random (seeded) on the first
two receives, and every fiftieth task always fails, so it exhausts its receives and is counted
failed. ``on_cluster_complete`` writes one item each time it runs. A worker killed on a
task's last allowed receive leaves it to the dead-letter queue, where a dead-letter worker
(``--dead-letters --on-cluster-complete chaos_app:on_done``) counts it failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import uuid
from typing import Any

from aiobotocore.session import get_session

from sqs_cluster import ClusterRecord, MessageClient, ReceivedMessage

ALWAYS_FAILS_EVERY = 50
FLAKY_RATE = 0.10
_state: dict[str, Any] = {}


async def _open() -> tuple[MessageClient, Any]:
    if "client" not in _state:
        stack = contextlib.AsyncExitStack()
        client = await stack.enter_async_context(MessageClient())
        ddb = await stack.enter_async_context(
            get_session().create_client(
                "dynamodb",
                region_name="us-east-1",
                endpoint_url=os.environ["SQS_CLUSTER_ENDPOINT_URL"],
            )
        )
        _state.update(stack=stack, client=client, ddb=ddb)
    return _state["client"], _state["ddb"]


async def _ledger_put(ddb: Any, index: int) -> None:
    # a repeat is absorbed: the effect already happened on an earlier delivery
    with contextlib.suppress(ddb.exceptions.ConditionalCheckFailedException):
        await ddb.put_item(
            TableName=os.environ["LEDGER_TABLE"],
            Item={"pk": {"S": f"task#{index}"}},
            ConditionExpression="attribute_not_exists(pk)",
        )


async def handler(event: dict[str, Any], context: Any) -> Any:
    """Lambda-style: process the batch with safe_process_batch."""
    client, ddb = await _open()
    seed = os.environ.get("CHAOS_SEED", "7")

    async def task(message: ReceivedMessage[Any]) -> None:
        index = message.task_index or 0
        rng = random.Random(f"{seed}:{index}:{message.receive_count}")
        await asyncio.sleep(rng.random() * 0.05)
        if index % ALWAYS_FAILS_EVERY == 0:
            raise RuntimeError(f"task {index} always fails")
        if message.receive_count <= 2 and rng.random() < FLAKY_RATE:
            raise RuntimeError(f"task {index} failed at random")
        await _ledger_put(ddb, index)

    return await client.safe_process_batch(event, task, on_cluster_complete=on_done)


async def on_done(cluster: ClusterRecord[Any, Any], get_globals: Any) -> None:
    """The cluster callback, also run by the dead-letter worker when it ends the cluster."""
    _, ddb = await _open()
    # one item per run: a retried write of the same run (a lost answer) stays one item
    await ddb.put_item(
        TableName=os.environ["LEDGER_TABLE"],
        Item={"pk": {"S": f"callback#{uuid.uuid4().hex}"}, "pid": {"N": str(os.getpid())}},
    )
