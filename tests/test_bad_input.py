"""The bad input catalogue's cases that need the server (the catalogue is tests/bad_input.py):
a missing or foreign table, bucket or queue, a wrong region, and the checks made after reading
the queue's attributes or the cluster's record. Nothing may be written."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import boto3
import pytest
from aiobotocore.session import AioSession, get_session

from sqs_cluster import Config, MessageClient, RecordKey

from .bad_input import FOREIGN_TABLE, Call, Ctx, cases, check_case
from .conftest import REGION, Queue, make_queue


@pytest.fixture(scope="module")
def session() -> AioSession:
    return get_session()


@pytest.fixture(scope="module")
async def bad_input_queue(base_config: Config) -> Queue:
    return await make_queue(base_config)


@pytest.fixture(scope="module")
async def bad_input_cluster(
    base_config: Config, bad_input_queue: Queue, session: AioSession
) -> RecordKey:
    """An existing cluster for the cases that update one (none of them may change it)."""
    async with MessageClient(base_config, session=session) as setup:
        return await setup.create_message_cluster(
            bad_input_queue.url, [1], globals={"g": 1}, meta={"m": 1}
        )


@pytest.fixture(scope="module", autouse=True)
def foreign_table(base_config: Config) -> None:
    ddb = boto3.client("dynamodb", endpoint_url=base_config.endpoint_url, region_name=REGION)
    with contextlib.suppress(ddb.exceptions.ResourceInUseException):
        ddb.create_table(
            TableName=FOREIGN_TABLE,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )


@pytest.fixture(scope="module")
async def bad_input_client(
    base_config: Config, session: AioSession
) -> AsyncIterator[MessageClient]:
    async with MessageClient(base_config, session=session) as client:
        yield client


@pytest.fixture
async def ctx(
    base_config: Config,
    bad_input_queue: Queue,
    bad_input_cluster: RecordKey,
    bad_input_client: MessageClient,
    session: AioSession,
) -> AsyncIterator[Ctx]:
    context = Ctx(bad_input_client, bad_input_queue, bad_input_cluster, base_config, session)
    try:
        yield context
    finally:
        for other in context.opened:
            await other.aclose()


@pytest.mark.parametrize(("call", "error", "needles"), cases(needs_server=True))
async def test_bad_input(
    ctx: Ctx, call: Call, error: type[BaseException], needles: tuple[str, ...]
) -> None:
    await check_case(ctx, call, error, needles)
