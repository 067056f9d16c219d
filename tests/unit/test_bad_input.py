"""The bad input catalogue's cases that fail before any request (the catalogue is
tests/bad_input.py): wrong types and shapes, oversized and non-JSON values, ids, queue URLs,
events from other sources, forged records and configuration. Nothing may be written; here,
nothing can even be sent."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiobotocore.session import get_session

from sqs_cluster import Config, MessageClient
from sqs_cluster._clusters.model import cluster_key

from ..bad_input import CASES, Call, Ctx, cases, check_case
from ..conftest import Queue


@pytest.fixture
async def ctx(offline_config: Config, queue: Queue) -> AsyncIterator[Ctx]:
    """A client on a queue and a cluster that exist nowhere: no case here reads them."""
    session = get_session()
    async with MessageClient(offline_config, session=session) as client:
        cluster = cluster_key("offline-cluster", queue.url)
        context = Ctx(client, queue, cluster, offline_config, session)
        try:
            yield context
        finally:
            for other in context.opened:
                await other.aclose()


def test_the_catalogue_is_big_enough() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize(("call", "error", "needles"), cases(needs_server=False))
async def test_bad_input(
    ctx: Ctx, call: Call, error: type[BaseException], needles: tuple[str, ...]
) -> None:
    await check_case(ctx, call, error, needles)
