"""Typed clusters: the task, the globals and each result are the types the code names."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypedDict

from sqs_cluster import (
    ClusterRecord,
    MessageClient,
    MessageRecord,
    PartialBatchResponse,
    ReceivedMessage,
    RecordKey,
    Status,
    TaskResult,
)


@dataclass(frozen=True)
class Line:
    """A task: what ``model=Line`` parses each task into."""

    sku: str
    quantity: int


class Prices(TypedDict):
    """The cluster's globals, as the JSON they are stored as: one price per SKU."""

    cents: dict[str, int]


INVOICES: dict[str, int] = {}
"""Each cluster's total in cents, by cluster id (a real callback would store it)."""


async def line_cents(message: ReceivedMessage[Line, Prices]) -> int:
    """A task: ``message.task`` is a ``Line``, ``await message.get_globals()`` is ``Prices``."""
    prices = await message.get_globals()
    return prices["cents"][message.task.sku] * message.task.quantity


async def invoice(
    cluster: ClusterRecord[None, Prices], get_globals: Callable[[], Awaitable[Prices]]
) -> None:
    """The cluster's callback, typed like the handler; each task record's ``result`` is the
    ``int`` that ``line_cents`` returned."""
    tasks: AsyncIterator[MessageRecord[None, int]] = cluster.iter_tasks(Status.COMPLETE)
    INVOICES[cluster.id] = sum([record.result async for record in tasks])


async def price_lines(client: MessageClient, event: dict[str, Any]) -> PartialBatchResponse:
    """Each task parsed into a ``Line`` before ``line_cents`` runs."""
    return await client.safe_process_batch(
        event, line_cents, model=Line, on_cluster_complete=invoice
    )


def discounted(prices: Prices) -> Prices:
    """New globals from the old ones: applied with If-Match, again if another writer won."""
    return {"cents": {sku: cents * 9 // 10 for sku, cents in prices["cents"].items()}}


async def discount(client: MessageClient, key: RecordKey) -> Prices:
    """``update_message_cluster_globals`` returns what ``discounted`` returns: ``Prices``."""
    return await client.update_message_cluster_globals(key, discounted)


async def line_totals(client: MessageClient, key: RecordKey) -> dict[str, int]:
    """Every result, typed by annotating the iterator. A stored task is the JSON it was sent
    as (``model=`` parses it for the handler only): a dict here, not a ``Line``."""
    results: AsyncIterator[TaskResult[dict[str, Any], int]] = client.iter_results(key)
    return {item.task["sku"]: item.result async for item in results}
