"""A Lambda-style handler module the worker tests run in subprocesses.

Each task appends its index to the ledger file named by ``LEDGER`` (one line per execution), so
the tests can check that every task ran exactly once. ``SLEEP`` slows each batch down.
``on_cluster_complete`` appends ``callback <status>`` instead.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from sqs_cluster import ClusterRecord, MessageClient, ReceivedMessage


def _append(path: str, line: str) -> None:
    with open(path, "a") as ledger:  # O_APPEND: concurrent workers' lines never interleave
        ledger.write(line)


async def handler(event: dict[str, Any], context: Any) -> Any:
    """Process a batch with safe_process_batch; tasks append to the ledger."""
    assert context.get_remaining_time_in_millis() > 0

    async def task(message: ReceivedMessage[Any]) -> None:
        await asyncio.sleep(float(os.environ.get("SLEEP", "0")))
        await asyncio.to_thread(_append, os.environ["LEDGER"], f"{message.task_index}\n")

    async with MessageClient() as client:
        return await client.safe_process_batch(event, task)


async def on_cluster_complete(cluster: ClusterRecord[Any, Any], get_globals: Any) -> None:
    """A cluster callback: appends ``callback <status>`` to the ledger."""
    await asyncio.to_thread(_append, os.environ["LEDGER"], f"callback {cluster.status.value}\n")


_client: MessageClient | None = None


async def open_client() -> None:
    """``--on-startup``: the one client every batch of the process uses."""
    global _client
    _client = await MessageClient().__aenter__()
    await asyncio.to_thread(_append, os.environ["LEDGER"], "startup\n")


async def close_client() -> None:
    """``--on-shutdown``: close it, so nothing is left open at exit."""
    global _client
    client, _client = _client, None
    if client is not None:
        await client.aclose()
    await asyncio.to_thread(_append, os.environ["LEDGER"], "shutdown\n")


async def kept_client_handler(event: dict[str, Any], context: Any) -> Any:
    """Like ``handler``, on the client ``open_client`` opened."""
    assert _client is not None, "--on-startup worker_app:open_client did not run"

    async def task(message: ReceivedMessage[Any]) -> None:
        await asyncio.to_thread(_append, os.environ["LEDGER"], f"{message.task_index}\n")

    return await _client.safe_process_batch(event, task)
