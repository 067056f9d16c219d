"""Server-free tests: no local AWS, no connection.

A test here may not request the server's fixtures (``tests/conftest.py`` fails the collection
if one does), and any connection it tries to open fails at once (``no_connections``), so a test
that would reach a server cannot pass here by accident. ``client`` and ``queue`` have the same
shape as the server tests' fixtures, but the client's endpoint is never contacted and the queue
is only a URL: what a test asserts here is decided before any request.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from sqs_cluster import Config, MessageClient

from ..conftest import REGION, Queue
from ..sync_api import awaitable_facade

OFFLINE_ENDPOINT = "http://127.0.0.1:9"
"""Never contacted: ``no_connections`` refuses every connection first."""
QUEUE_URL = f"https://sqs.{REGION}.amazonaws.com/123456789012/offline-queue"


class ConnectionRefusedInUnitTest(OSError):
    """A server-free test tried to open a connection."""


@pytest.fixture(autouse=True)
def no_connections(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every ``socket.connect`` in the process fails while a unit test runs."""

    def refuse(sock: socket.socket, address: Any) -> None:
        raise ConnectionRefusedInUnitTest(f"a server-free test tried to connect to {address!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    yield


@pytest.fixture
def offline_config() -> Config:
    """A configuration whose endpoint is never contacted; one attempt per request."""
    return Config(
        table="offline-records",
        bucket="offline-globals",
        region=REGION,
        endpoint_url=OFFLINE_ENDPOINT,
        max_attempts=1,
    )


@pytest.fixture(params=["async", "sync"])
async def client(
    request: pytest.FixtureRequest, offline_config: Config
) -> AsyncIterator[MessageClient]:
    """The async client and the blocking facade, as in the server tests, on ``offline_config``."""
    if request.param == "sync":
        async with awaitable_facade(offline_config) as facade:
            yield facade
        return
    async with MessageClient(offline_config) as c:
        yield c


@pytest.fixture
def queue() -> Queue:
    """A queue URL that no request reaches."""
    return Queue(QUEUE_URL, QUEUE_URL + "-dlq")
