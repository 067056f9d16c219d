"""Fixtures of the fault-injection tests: each module gets a table and bucket of its own, a clean
client and a second client for the injector to attach to (tests/faults.py has the helpers)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiobotocore.session import AioSession, get_session

from sqs_cluster import Config, MessageClient
from sqs_cluster._aws.provision import ensure_resources

from ..conftest import REGION, unique


@pytest.fixture(scope="module")
async def fault_config(endpoint: str) -> Config:
    """A table and bucket of their own, so per-queue record counts can be scanned cheaply."""
    config = Config(
        table=unique("fault-records"),
        bucket=unique("fault-globals"),
        region=REGION,
        endpoint_url=endpoint,
        lease_seconds=1,  # a lease left behind by a failed delivery expires quickly
        # a running callback keeps its claim through a slow read on a loaded machine (at 1 s
        # it could lapse between the claim and the start, and then rightly not start)
        callback_lease_seconds=5,
        stream_tasks_above=60,  # a stream of more is fanned out as it is read
    )
    await ensure_resources(config)
    return config


@pytest.fixture(scope="module")
def session() -> AioSession:
    """One session for the module: clients then share its loaded service models."""
    return get_session()


@pytest.fixture(scope="module")
async def clean(fault_config: Config, session: AioSession) -> AsyncIterator[MessageClient]:
    """A client without faults: the test's eyes, and Lambda's poller."""
    async with MessageClient(fault_config, session=session) as client:
        yield client


@pytest.fixture(scope="module")
async def faulty(fault_config: Config, session: AioSession) -> AsyncIterator[MessageClient]:
    """A second client, for the injector to attach to (each test detaches its injector)."""
    async with MessageClient(fault_config, session=session) as client:
        yield client
