"""Typed handlers: each order's body parsed into a dataclass before the handler runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

from sqs_cluster import ClusterRecord, MessageClient, PartialBatchResponse, ReceivedMessage


@dataclass(frozen=True)
class Line:
    sku: str
    quantity: int


@dataclass(frozen=True)
class Order:
    order_id: str
    lines: list[Line]
    coupon: str | None = None


class Prices(TypedDict):
    """A cluster's globals, as the JSON they are stored as: one price per SKU."""

    cents: dict[str, int]


def total(message: ReceivedMessage[Order]) -> int:
    """``message.body`` is an ``Order`` here, for mypy and at run time."""
    order = message.body
    return sum(line.quantity for line in order.lines)


async def process(client: MessageClient, event: dict[str, Any]) -> PartialBatchResponse:
    """A body that is not an Order fails its message alone, naming the field (``body.lines``)."""
    return await client.safe_process_batch(event, total, model=Order)


async def price_of(cluster: ClusterRecord[None, Prices], sku: str) -> int:
    """A cluster read with its globals' type: ``get_globals()`` returns ``Prices``."""
    prices = await cluster.get_globals()
    return prices["cents"][sku]
