"""Read-modify-write updates apply once even when a write's answer is lost.

A lost answer (a read timeout after the server did the work) makes botocore retry a
conditional write that already landed; the retry fails its condition. Globals and record
updates recognise their own write by a per-call token and must not apply their change again,
also when other writers interleave or every answer of the call is lost. (How the tokens are
kept is tested without a server, in tests/unit/test_write_tokens.py.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiobotocore.session import AioSession, get_session

from sqs_cluster import Config, MessageClient, RecordKey
from sqs_cluster._aws.provision import ensure_resources
from sqs_cluster._clusters.globals import WRITES_METADATA
from sqs_cluster._records.store import KEPT_WRITE_TOKENS, WRITE_TOKENS_ATTRIBUTE
from sqs_cluster._records.write_tokens import parse_tokens
from sqs_cluster.testing import FaultInjector, FaultKind

from .conftest import REGION, Queue, unique

DELAY_SCALE = 0.01


@pytest.fixture(scope="module")
async def config(endpoint: str) -> Config:
    config = Config(
        table=unique("token-records"),
        bucket=unique("token-globals"),
        region=REGION,
        endpoint_url=endpoint,
    )
    await ensure_resources(config)
    return config


@pytest.fixture(scope="module")
def session() -> AioSession:
    return get_session()


@pytest.fixture(scope="module")
async def clean(config: Config, session: AioSession) -> AsyncIterator[MessageClient]:
    async with MessageClient(config, session=session) as client:
        yield client


@pytest.fixture(scope="module")
async def faulty(config: Config, session: AioSession) -> AsyncIterator[MessageClient]:
    async with MessageClient(config, session=session) as client:
        yield client


async def fresh_queue(client: MessageClient) -> Queue:
    resp = await client._aws.sqs.create_queue(QueueName=unique("tq"))
    return Queue(resp["QueueUrl"], "")


async def head_globals(client: MessageClient, key: RecordKey) -> dict[str, Any]:
    location = client._globals_location(key)
    head = await client._aws.s3.head_object(Bucket=location["Bucket"], Key=location["Key"])
    return dict(head)


async def test_concurrent_globals_updates_with_lost_answers_apply_once(
    faulty: MessageClient, clean: MessageClient
) -> None:
    queue = await fresh_queue(clean)
    key = await clean.create_message_cluster(queue.url, [1], globals={"entries": []})
    injector = FaultInjector(
        11, {FaultKind.READ_TIMEOUT: 0.5}, ["s3.PutObject"], limit=4, delay_scale=DELAY_SCALE
    )  # at most 4 lost answers: botocore's 5 attempts never all fail

    def adder(n: int) -> Any:
        return lambda g: {"entries": [*g["entries"], n]}

    with injector.attached(faulty):
        results = await asyncio.gather(
            *(faulty.update_message_cluster_globals(key, adder(n)) for n in range(12))
        )
    assert injector.count(FaultKind.READ_TIMEOUT) > 0
    entries = (await clean.get_message_cluster_globals(key))["entries"]
    assert sorted(entries) == list(range(12)), f"lost or doubled updates: {sorted(entries)}"
    assert all(n in result["entries"] for n, result in enumerate(results))
    head = await head_globals(clean, key)
    assert head["ServerSideEncryption"] == "AES256"
    assert len(parse_tokens(head["Metadata"][WRITES_METADATA])) == 12


async def test_globals_update_whose_every_answer_is_lost_applies_once_and_returns(
    faulty: MessageClient, clean: MessageClient
) -> None:
    queue = await fresh_queue(clean)
    key = await clean.create_message_cluster(queue.url, [1], globals={"n": 0})
    injector = FaultInjector(
        12, {FaultKind.READ_TIMEOUT: 1.0}, ["s3.PutObject"], delay_scale=DELAY_SCALE
    )
    with injector.attached(faulty):
        result = await faulty.update_message_cluster_globals(key, lambda g: {"n": g["n"] + 1})
    assert injector.count(FaultKind.READ_TIMEOUT) > 1  # botocore gave up: the answer never came
    assert result == {"n": 1}
    assert await clean.get_message_cluster_globals(key) == {"n": 1}


async def test_plain_globals_writes_still_replace_and_stay_encrypted(
    clean: MessageClient,
) -> None:
    queue = await fresh_queue(clean)
    key = await clean.create_message_cluster(queue.url, [1], globals={"n": 0})
    assert await clean.update_message_cluster_globals(key, lambda g: {"n": g["n"] + 1}) == {"n": 1}
    assert WRITES_METADATA in (await head_globals(clean, key))["Metadata"]
    assert await clean.update_message_cluster_globals(key, {"n": 10}) == {"n": 10}
    head = await head_globals(clean, key)
    assert head["ServerSideEncryption"] == "AES256" and WRITES_METADATA not in head["Metadata"]
    assert await clean.get_message_cluster_globals(key) == {"n": 10}
    assert await clean.update_message_cluster_globals(key, lambda g: {"n": g["n"] + 1}) == {"n": 11}


async def test_concurrent_record_updates_with_lost_answers_apply_once(
    faulty: MessageClient, clean: MessageClient
) -> None:
    queue = await fresh_queue(clean)
    key = await clean.send_message(queue.url, "x", meta={"n": 0})
    injector = FaultInjector(
        13,
        {FaultKind.READ_TIMEOUT: 0.5},
        ["dynamodb.UpdateItem"],
        limit=4,
        delay_scale=DELAY_SCALE,
    )

    async def bump() -> None:
        await faulty.update_message_record(key, lambda r: {"meta": {"n": (r.meta or {})["n"] + 1}})

    with injector.attached(faulty):
        await asyncio.gather(*(bump() for _ in range(10)))
    assert injector.count(FaultKind.READ_TIMEOUT) > 0
    record = await clean.get_message_record(key, consistent_read=True)
    assert record.meta == {"n": 10} and record.revision == 10
    raw = await clean._aws.ddb.get_item(
        TableName=clean._aws.config.table, Key={k: {"S": v} for k, v in key.to_dict().items()}
    )
    tokens = parse_tokens(raw["Item"][WRITE_TOKENS_ATTRIBUTE]["S"])
    assert len(tokens) == KEPT_WRITE_TOKENS == len(set(tokens))


async def test_record_update_whose_every_answer_is_lost_applies_once_and_returns(
    faulty: MessageClient, clean: MessageClient
) -> None:
    queue = await fresh_queue(clean)
    key = await clean.send_message(queue.url, "x", meta={"n": 0})
    injector = FaultInjector(
        14, {FaultKind.READ_TIMEOUT: 1.0}, ["dynamodb.UpdateItem"], delay_scale=DELAY_SCALE
    )
    with injector.attached(faulty):
        record = await faulty.update_message_record(
            key, lambda r: {"meta": {"n": (r.meta or {})["n"] + 1}, "owner": "me"}
        )
    assert injector.count(FaultKind.READ_TIMEOUT) > 1
    assert record.meta == {"n": 1} and record.user == {"owner": "me"} and record.revision == 1
    stored = await clean.get_message_record(key, consistent_read=True)
    assert stored.meta == {"n": 1} and stored.user == {"owner": "me"}


async def test_update_returns_the_written_record_without_rereading(
    faulty: MessageClient, clean: MessageClient
) -> None:
    queue = await fresh_queue(clean)
    key = await clean.send_message(queue.url, "x")
    injector = FaultInjector(15, {}, delay_scale=DELAY_SCALE)
    with injector.attached(faulty):
        record = await faulty.update_message_record(key, {"owner": "me"})
    assert record.user == {"owner": "me"} and record.revision == 1
    assert injector.calls == {"dynamodb.GetItem": 1, "dynamodb.UpdateItem": 1}
