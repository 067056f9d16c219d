"""The fault injector itself: what each fault class does to a real call, seeding, attaching from
the environment; and the example of docs/reliability.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiobotocore.session import AioSession
from botocore.exceptions import ClientError

from sqs_cluster import Config, MessageClient, RecordKey, RecordNotFoundError, Status
from sqs_cluster.testing import ENV_VAR, FaultInjector, FaultKind, clients_of, install_from_env

from ..conftest import make_queue
from ..faults import fresh_queue, receive_bodies, receive_messages


async def test_throttling_is_retried_by_botocore_then_raised(
    faulty: MessageClient, fault_config: Config
) -> None:
    injector = FaultInjector(1, {FaultKind.THROTTLING: 1.0}, ["GetItem"], delay_scale=0.01)
    with injector.attached(faulty), pytest.raises(ClientError) as info:
        await faulty.get_message_record(RecordKey.for_message("x", "https://q/1/q"))
    assert info.value.response["Error"]["Code"] in {
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
    }
    assert injector.count(FaultKind.THROTTLING, "dynamodb.GetItem") > 1
    assert injector.calls == {"dynamodb.GetItem": 1}


async def test_max_attempts_counts_the_first_attempt(
    fault_config: Config, session: AioSession
) -> None:
    injector = FaultInjector(1, {FaultKind.SERVER_ERROR: 1.0}, ["GetItem"], delay_scale=0.01)
    async with MessageClient(fault_config.with_changes(max_attempts=2), session=session) as client:
        with injector.attached(client), pytest.raises(ClientError):
            await client.get_message_record(RecordKey.for_message("x", "https://q/1/q"))
    assert injector.count() == 2


@pytest.mark.parametrize(
    ("kind", "operation"),
    [
        (FaultKind.THROTTLING, "sqs.GetQueueAttributes"),
        (FaultKind.THROTTLING, "s3.GetObject"),
        (FaultKind.SERVER_ERROR, "dynamodb.Query"),
        (FaultKind.SERVER_ERROR, "s3.GetObject"),
        (FaultKind.CONNECTION_RESET, "sqs.GetQueueAttributes"),
        (FaultKind.CONNECT_TIMEOUT, "dynamodb.Query"),
        (FaultKind.READ_TIMEOUT, "s3.GetObject"),
    ],
)
async def test_one_transient_fault_costs_one_retry(
    faulty: MessageClient, clean: MessageClient, kind: FaultKind, operation: str
) -> None:
    queue = await fresh_queue(clean)
    key = await clean.create_message_cluster(queue.url, [1], globals={"g": 1})
    injector = FaultInjector(5, {kind: 1.0}, [operation], limit=1, delay_scale=0.01)
    with injector.attached(faulty):
        assert await faulty.max_receive_count(queue.url) is None
        assert (await faulty.get_message_cluster(key)).total == 1
        assert await faulty.get_message_cluster_globals(key) == {"g": 1}
    assert [(f.kind, f.operation, f.attempt) for f in injector.faults] == [(kind, operation, 1)]


async def test_unprocessed_items_are_not_written_and_are_reported(
    faulty: MessageClient, clean: MessageClient
) -> None:
    table = faulty.config.table
    items = [
        {"pKey": {"S": f"SQSMessage$probe-{i}"}, "rKey": {"S": "SQSMessage$probe"}}
        for i in range(20)
    ]
    injector = FaultInjector(9, {FaultKind.UNPROCESSED: 0.5})
    with injector.attached(faulty):
        resp = await faulty._aws.ddb.batch_write_item(
            RequestItems={table: [{"PutRequest": {"Item": i}} for i in items[:19]]}
        )
    unprocessed = [r["PutRequest"]["Item"] for r in resp["UnprocessedItems"][table]]
    assert 0 < len(unprocessed) < 19
    assert injector.count(FaultKind.UNPROCESSED) == 1
    # a batch whose every entry is withheld is answered without reaching the server
    with FaultInjector(9, {FaultKind.UNPROCESSED: 1.0}).attached(faulty):
        everything = await faulty._aws.ddb.batch_write_item(
            RequestItems={table: [{"PutRequest": {"Item": items[19]}}]}
        )
    assert everything["UnprocessedItems"] == {table: [{"PutRequest": {"Item": items[19]}}]}
    keys = [RecordKey(i["pKey"]["S"], i["rKey"]["S"]) for i in items]
    found = await clean.get_message_records(keys)
    written = {k.p_key for k, r in zip(keys, found, strict=True) if r is not None}
    assert written == {i["pKey"]["S"] for i in items[:19] if i not in unprocessed}


async def test_sqs_failed_entries_are_not_sent(faulty: MessageClient, clean: MessageClient) -> None:
    queue = await fresh_queue(clean)
    injector = FaultInjector(4, {FaultKind.SQS_SENDER_FAULT: 0.5})
    entries: Any = [{"Id": str(i), "MessageBody": str(i)} for i in range(10)]
    with injector.attached(faulty):
        resp = await faulty._aws.sqs.send_message_batch(QueueUrl=queue.url, Entries=entries)
    failed = {f["Id"] for f in resp["Failed"]}
    assert failed and all(f["SenderFault"] for f in resp["Failed"])
    assert {s["Id"] for s in resp["Successful"]} == {str(i) for i in range(10)} - failed
    bodies = await receive_bodies(clean, queue.url)
    assert sorted(bodies) == sorted(str(i) for i in range(10) if str(i) not in failed)


async def test_read_timeout_runs_the_request_then_loses_the_answer(
    faulty: MessageClient, clean: MessageClient
) -> None:
    queue = await fresh_queue(clean)
    injector = FaultInjector(2, {FaultKind.READ_TIMEOUT: 1.0}, ["sqs.SendMessage"], limit=1)
    with injector.attached(faulty):
        await faulty._aws.sqs.send_message(QueueUrl=queue.url, MessageBody="once")
    assert await receive_bodies(clean, queue.url) == [
        "once",
        "once",
    ]  # ran twice: SQS is at-least-once


async def test_transaction_conflicts_are_retried_by_the_library(
    faulty: MessageClient, clean: MessageClient
) -> None:
    queue = await fresh_queue(clean)
    key = await clean.create_message_cluster(queue.url, [1], omit_globals=True)
    (message,) = await receive_messages(clean, queue.url)
    injector = FaultInjector(3, {FaultKind.TRANSACTION_CONFLICT: 1.0}, limit=2)
    with injector.attached(faulty):
        assert await faulty.is_complete(message) is False
        assert await faulty.mark_complete(message) is True
    assert injector.count(FaultKind.TRANSACTION_CONFLICT) == 2
    cluster = await clean.get_message_cluster(key, consistent_read=True)
    assert (cluster.completed, cluster.status) == (1, Status.COMPLETE)


async def test_decisions_are_seeded(fault_config: Config, session: AioSession) -> None:
    async def run(seed: int) -> list[tuple[str, int, int | None]]:
        injector = FaultInjector(seed, {FaultKind.SERVER_ERROR: 0.3}, delay_scale=0.01)
        async with MessageClient(fault_config, session=session) as client:
            with injector.attached(client):
                for i in range(12):
                    await client.get_message_records([RecordKey.for_message(str(i), "x")])
        return [(f.operation, f.call, f.attempt) for f in injector.faults]

    first, again, other = await run(11), await run(11), await run(12)
    assert first == again and first != other and first


async def test_install_from_env_attaches_and_detaches(
    fault_config: Config, session: AioSession
) -> None:
    env = {ENV_VAR: "seed=3,server_error=1.0,ops=dynamodb.GetItem,limit=1,delay_scale=0.01"}
    async with MessageClient(fault_config, session=session) as client:
        injector = install_from_env(client, env, salt="worker-1")
        assert injector is not None and injector.salt == "worker-1"
        with pytest.raises(RuntimeError, match="already attached"):
            FaultInjector(1, {}).attach(client)
        with pytest.raises(RecordNotFoundError):  # one 5xx, retried, then the real answer
            await client.get_message_record({"pKey": "SQSMessage$a", "rKey": "SQSMessage$b"})
        assert [(f.kind, f.operation) for f in injector.faults] == [
            (FaultKind.SERVER_ERROR, "dynamodb.GetItem")
        ]
        injector.detach()
        FaultInjector(1, {}).attach(client)()  # free again once detached
        assert install_from_env(client, {}) is None


async def test_a_conflicting_attach_unwinds_what_it_hooked(faulty: MessageClient) -> None:
    s3_only = FaultInjector(1, {FaultKind.SERVER_ERROR: 1.0})
    detach = s3_only.attach(clients_of(faulty)["s3"])  # the last of the three clients
    whole = FaultInjector(2, {FaultKind.SERVER_ERROR: 1.0})
    try:
        with pytest.raises(RuntimeError, match="already attached"):
            whole.attach(faulty)
    finally:
        detach()
    missing = RecordKey.for_message("never-sent", "https://sqs.us-east-1.amazonaws.com/1/q")
    assert await faulty.get_message_records([missing]) == [None]  # no 5xx: nothing left hooked
    assert whole.calls == {} and s3_only.calls == {}


def test_reliability_doc_quotes_its_example() -> None:
    root = Path(__file__).resolve().parent.parent.parent
    code = (root / "docs" / "examples" / "faults_usage.py").read_text(encoding="utf-8")
    assert code in (root / "docs" / "reliability.md").read_text(encoding="utf-8")


async def test_reliability_doc_example_runs(base_config: Config) -> None:
    """The example quoted in docs/reliability.md sends everything through injected faults."""
    from docs.examples import faults_usage

    queue = await make_queue(base_config)
    keys, summary = await faults_usage.send_through_faults(base_config, queue.url, list(range(40)))
    assert len(set(keys)) == 40 and "faults injected" in summary
    assert faults_usage.lost_callback_claim() is not None
