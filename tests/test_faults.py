"""Fault injection: the injector itself, the fault matrix, exhausted retries and lost responses.

The matrix runs every public operation of MessageClient (a test keeps it that way) under every
fault class that can reach it, at a 20% rate (seeded). Each cell either succeeds with exact
results or raises a clear error saying what was done; a retry then completes it, and the final
state is checked exactly.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.session import AioSession, get_session
from botocore.exceptions import ClientError

from sqs_cluster import (
    CallbackState,
    ClaimOutcome,
    ClusterRecord,
    ClusterSendError,
    Config,
    ConflictError,
    MessageClient,
    PartialBatchResponse,
    PartialSendError,
    ReceivedMessage,
    RecordKey,
    RecordNotFoundError,
    Status,
    StatusCode,
    ValidationError,
)
from sqs_cluster._aws.provision import ensure_resources
from sqs_cluster._messages.lambda_shape import lambda_event
from sqs_cluster.testing import (
    ENV_VAR,
    FAULT_SCOPE,
    FaultInjector,
    FaultKind,
    clients_of,
    install_from_env,
)

from .conftest import REGION, Queue, make_queue, unique
from .faults import FaultyClient

SEED = 20240611
RATE = 0.2
DELAY_SCALE = 0.02  # botocore's retry sleeps, scaled: a throttled retry waits <= 20 ms here


@pytest.fixture(scope="module")
async def fault_config(endpoint: str) -> Config:
    """A table and bucket of their own, so per-queue record counts can be scanned cheaply."""
    config = Config(
        table=unique("fault-records"),
        bucket=unique("fault-globals"),
        region=REGION,
        endpoint_url=endpoint,
        lease_seconds=1,  # a lease left behind by a failed delivery expires quickly
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


async def fresh_queue(client: MessageClient) -> Queue:
    """A queue without a redrive policy: no fault run may push a task to a DLQ and hide it."""
    resp = await client._aws.sqs.create_queue(
        QueueName=unique("fq"), Attributes={"VisibilityTimeout": "30"}
    )
    return Queue(resp["QueueUrl"], "")


# -- the injector itself ---------------------------------------------------------------------


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


def test_environment_configuration_round_trips() -> None:
    injector = FaultInjector(
        7,
        {FaultKind.THROTTLING: 0.2, "read_timeout": 0.05},
        ["dynamodb.UpdateItem", "SendMessageBatch"],
        limit=3,
        delay_scale=0.5,
    )
    again = FaultInjector.from_env({ENV_VAR: injector.to_env()})
    assert again is not None and again.to_env() == injector.to_env()
    compact = FaultInjector.parse("seed=7, throttling=0.2; ops=sqs.SendMessageBatch|GetItem")
    assert compact.rates == {FaultKind.THROTTLING: 0.2}
    assert compact.operations == frozenset({"sqs.SendMessageBatch", "GetItem"})
    assert FaultInjector.from_env({}) is None and FaultInjector.from_env({ENV_VAR: " "}) is None
    for bad in ("throttling=2", "nonsense=0.1", "seed", '{"rates": {"throttling": -1}}'):
        with pytest.raises(ValueError):
            FaultInjector.parse(bad)
    with pytest.raises(ValueError, match="operations"):
        FaultInjector(1, {}, ["not an op"])


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


# -- helpers for the matrix --------------------------------------------------------------------


async def receive_messages(
    client: MessageClient, queue_url: str, *, visibility: int = 60
) -> list[dict[str, Any]]:
    """Every visible message, as Lambda event records (received with the clean client)."""
    out: list[dict[str, Any]] = []
    while True:
        resp = await client._aws.sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            VisibilityTimeout=visibility,
            WaitTimeSeconds=0,
        )
        got = resp.get("Messages", [])
        if not got:
            return out
        out.extend(lambda_event(got, queue_url=queue_url, region=REGION)["Records"])


async def receive_bodies(client: MessageClient, queue_url: str) -> list[str]:
    return sorted(r["body"] for r in await receive_messages(client, queue_url))


async def queue_depth(client: MessageClient, queue_url: str) -> int:
    resp = await client._aws.sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )
    attrs = resp["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


async def records_for_queue(client: MessageClient, queue_url: str) -> list[dict[str, Any]]:
    """Every record item the library wrote for this queue (a Scan of the module's own table)."""
    items: list[dict[str, Any]] = []
    request: dict[str, Any] = {
        "TableName": client.config.table,
        "FilterExpression": "#u = :u",
        "ExpressionAttributeNames": {"#u": "url"},
        "ExpressionAttributeValues": {":u": {"S": queue_url}},
    }
    while True:
        resp: Any = await client._aws.ddb.scan(**request)
        items.extend(resp.get("Items", []))
        if "LastEvaluatedKey" not in resp:
            return items
        request["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


def key_of(record: Mapping[str, Any]) -> str:
    return str(record["messageAttributes"]["sqsClusterKey"]["stringValue"])


@dataclass
class Cell:
    """One cell of the matrix: the clients, the queue, the injector and what the run saw."""

    kind: FaultKind
    clean: MessageClient
    faulty: MessageClient
    queue: Queue
    injector: FaultInjector
    errors: list[BaseException] = field(default_factory=list)

    @property
    def response_loss(self) -> bool:
        """Lost responses rerun requests: SQS sends may then deliver a message twice."""
        return self.kind is FaultKind.READ_TIMEOUT


async def send_until_done(cell: Cell, bodies: list[Any]) -> list[RecordKey]:
    """send_message_batch; on PartialSendError resend exactly the failed entries, under their
    record keys, until done."""
    try:
        return await cell.faulty.send_message_batch(cell.queue.url, bodies)
    except PartialSendError as exc:
        return await resend_until_done(cell, exc, len(bodies))


async def resend_until_done(
    cell: Cell, error: PartialSendError, size: int | None = None
) -> list[RecordKey]:
    """resend_unsent until every entry of the original batch (``size`` entries) was sent."""
    size = len(error.sent) + len(error.failed) if size is None else size
    for _ in range(10):
        cell.errors.append(error)
        total = len(error.sent) + len(error.failed)
        assert total == size, "indexes refer to the original batch"
        assert f"{len(error.sent)} of {total} entries sent" in str(error)
        assert error.failed and "not sent" in str(error)
        assert set(error.unsent) == set(error.failed)
        try:
            return await cell.faulty.resend_unsent(error)
        except PartialSendError as exc:
            error = exc
    raise AssertionError(f"the batch was never completely sent: {cell.injector.summary()}")


async def assert_one_message_and_record_per_key(cell: Cell, keys: list[RecordKey]) -> None:
    """The queue holds a message for every key (one each, unless an answer was lost: then SQS
    may hold two under one key) and the table exactly one record per message: none left
    behind by a failed send."""
    messages = await receive_messages(cell.clean, cell.queue.url)
    by_key = Counter(key_of(m) for m in messages)
    assert set(by_key) == {json.dumps(k.to_dict(), separators=(",", ":")) for k in keys}
    if not cell.response_loss:
        assert len(messages) == len(keys), "a message was sent twice"
    items = await records_for_queue(cell.clean, cell.queue.url)
    assert len(items) == len(keys), f"{len(items)} records for {len(keys)} messages"


async def op_send_message_batch(cell: Cell) -> None:
    bodies: list[Any] = [{"i": i} for i in range(30)]
    keys = await send_until_done(cell, bodies)
    assert len(set(keys)) == 30
    records = await cell.clean.get_message_records(keys)
    assert [json.loads(r.body or "") for r in records if r is not None] == bodies
    await assert_one_message_and_record_per_key(cell, keys)


async def op_get_message_records(cell: Cell) -> None:
    bodies = [{"i": i} for i in range(30)]
    keys = await cell.clean.send_message_batch(cell.queue.url, bodies)
    missing = RecordKey.for_message("no-such-message", cell.queue.url)
    for _ in range(4):
        try:
            records = await cell.faulty.get_message_records([*keys, missing])
        except ConflictError as exc:  # keys left unprocessed after every retry: says how many
            cell.errors.append(exc)
            assert "unprocessed" in str(exc)
            continue
        assert [json.loads(r.body or "") for r in records[:-1] if r] == bodies
        assert records[-1] is None


async def create_until_done(cell: Cell, tasks: list[Any], cluster_id: str, **kw: Any) -> RecordKey:
    for _ in range(10):
        try:
            return await cell.faulty.create_message_cluster(
                cell.queue.url, tasks, cluster_id=cluster_id, **kw
            )
        except ClusterSendError as exc:
            cell.errors.append(exc)
            assert exc.cluster_id == cluster_id and cluster_id in str(exc)
            assert f"{exc.sent} of {len(tasks)} tasks confirmed sent" in str(exc)
            assert exc.failed and "resume" in str(exc)
    raise AssertionError(f"create_message_cluster never completed: {cell.injector.summary()}")


async def op_create_message_cluster(cell: Cell) -> None:
    tasks = [{"i": i} for i in range(25)]
    cluster_id = unique("matrix")
    key = await create_until_done(cell, tasks, cluster_id, globals={"seen": []}, meta={"m": 1})
    cluster = await cell.clean.get_message_cluster(key, consistent_read=True)
    assert (cluster.total, cluster.completed, cluster.failed) == (25, 0, 0)
    assert cluster.sent == 25, f"progress counted {cluster.sent} tasks sent of 25"
    assert cluster.status is Status.IN_PROGRESS and cluster.meta == {"m": 1}
    assert await cell.clean.get_message_cluster_globals(key) == {"seen": []}
    indexes = Counter(
        json.loads(m["body"])["index"] for m in await receive_messages(cell.clean, cell.queue.url)
    )
    assert set(indexes) == set(range(25))
    if not cell.response_loss:
        assert set(indexes.values()) == {1}, f"tasks sent twice: {indexes}"


async def run_like_lambda(
    cell: Cell,
    handler: Callable[[ReceivedMessage[Any]], Awaitable[None]],
    callback: Callable[[ClusterRecord[Any, Any], Any], Awaitable[None]],
    finished: Callable[[], Awaitable[bool]],
    *,
    deadline: float = 45.0,
) -> None:
    """Poll with the clean client, process with the faulty one (deleting what succeeded, as the
    worker does); failures become visible again at once. Stops when the queue is empty and
    ``finished()`` says so."""
    sqs = cell.clean._aws.sqs
    start = time.monotonic()
    while time.monotonic() - start < deadline:
        resp = await sqs.receive_message(
            QueueUrl=cell.queue.url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            VisibilityTimeout=1,  # a success whose delete failed comes back soon
            WaitTimeSeconds=0,
        )
        received = resp.get("Messages", [])
        if not received:
            if await queue_depth(cell.clean, cell.queue.url) == 0 and await finished():
                return
            await asyncio.sleep(0.2)
            continue
        event = lambda_event(received, queue_url=cell.queue.url, region=REGION)
        response = await cell.faulty.safe_process_batch(
            event, handler, delete_succeeded=True, on_cluster_complete=callback, concurrency=1
        )
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        for message in received:
            if message["MessageId"] in failed:
                await sqs.change_message_visibility(
                    QueueUrl=cell.queue.url,
                    ReceiptHandle=message["ReceiptHandle"],
                    VisibilityTimeout=0,
                )
        if failed:
            await asyncio.sleep(0.1)
    raise AssertionError(f"the queue never drained: {cell.injector.summary()}")


S3_KINDS = {FaultKind.S3_CONFLICT, FaultKind.S3_PRECONDITION_FAILED}


async def op_safe_process_batch(cell: Cell) -> None:
    size = 10  # one receive batch
    every = 1 if cell.kind in S3_KINDS else 5  # tasks that also update the globals
    key = await cell.clean.create_message_cluster(
        cell.queue.url, [{"i": i} for i in range(size)], globals={"seen": []}
    )
    runs: Counter[int] = Counter()
    callbacks: list[Any] = []

    async def handler(message: ReceivedMessage[Any]) -> None:
        index = message.task["i"]
        runs[index] += 1
        if index % every:
            return

        def add(g: dict[str, Any]) -> dict[str, Any]:  # idempotent: a rerun adds nothing
            return {**g, "seen": sorted({*g["seen"], index})}

        await message.client.update_message_cluster_globals(message.cluster_key, add)

    async def callback(cluster: ClusterRecord[Any, Any], get_globals: Any) -> None:
        callbacks.append((cluster.completed, await get_globals()))

    async def finished() -> bool:
        return (await cell.clean.get_message_cluster(key, consistent_read=True)).is_finished

    await run_like_lambda(cell, handler, callback, finished)
    cluster = await cell.clean.get_message_cluster(key, consistent_read=True)
    assert (cluster.completed, cluster.failed, cluster.status) == (size, 0, Status.COMPLETE)
    assert sorted(runs) == list(range(size))
    assert len(callbacks) == 1, f"the callback ran {len(callbacks)} times"
    assert callbacks[0] == (size, {"seen": list(range(0, size, every))})
    assert cluster.callback_state == "DONE"
    tasks = [t async for t in cell.clean.iter_tasks(cluster)]
    assert [t.status for t in tasks] == [Status.COMPLETE] * size


async def op_update_message_cluster_globals(cell: Cell) -> None:
    key = await cell.clean.create_message_cluster(cell.queue.url, [1], globals={"entries": []})

    def adder(n: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
        return lambda g: {"entries": [*g["entries"], n]}

    for n in range(10):  # sequential first: which request faults is then fixed by the seed
        await cell.faulty.update_message_cluster_globals(key, adder(n))
    await asyncio.gather(
        *(cell.faulty.update_message_cluster_globals(key, adder(n)) for n in range(10, 16))
    )
    entries = (await cell.clean.get_message_cluster_globals(key))["entries"]
    assert sorted(entries) == list(range(16)), f"lost or doubled updates: {sorted(entries)}"
    await cell.faulty.update_message_cluster_globals(key, {"entries": ["reset"]})
    assert await cell.clean.get_message_cluster_globals(key) == {"entries": ["reset"]}
    assert await cell.faulty.update_cluster_globals(key.p_key, adder(1)) == {
        "entries": ["reset", 1]
    }
    assert await cell.clean.get_message_cluster_globals(key) == {"entries": ["reset", 1]}
    location = cell.clean._globals_location(key)
    head = await cell.clean._aws.s3.head_object(Bucket=location["Bucket"], Key=location["Key"])
    assert head["ServerSideEncryption"] == "AES256"


async def op_send_message(cell: Cell) -> None:
    """One message at a time: a record, then the message; each record read back by its key."""
    bodies = [{"i": i} for i in range(6)]
    keys = [
        await cell.faulty.send_message(cell.queue.url, body, meta={"n": i})
        for i, body in enumerate(bodies)
    ]
    assert len(set(keys)) == 6
    for i, (key, body) in enumerate(zip(keys, bodies, strict=True)):
        record = await cell.faulty.get_message_record(key, consistent_read=bool(i % 2))
        assert (record.key, json.loads(record.body or ""), record.meta) == (key, body, {"n": i})
        assert record.status is Status.PRE_FLIGHT and record.url == cell.queue.url
    with pytest.raises(RecordNotFoundError):
        await cell.faulty.get_message_record(RecordKey.for_message("absent", cell.queue.url))
    await assert_one_message_and_record_per_key(cell, keys)


async def op_update_message_record(cell: Cell) -> None:
    """Read-modify-write of a record: sequential, then concurrent; no update lost or doubled."""
    key = await cell.clean.send_message(cell.queue.url, "x", meta={"n": 0})

    def bump(record: Any) -> dict[str, Any]:
        return {"meta": {"n": (record.meta or {})["n"] + 1}}

    for n in range(1, 7):
        assert (await cell.faulty.update_message_record(key, bump)).meta == {"n": n}
    await asyncio.gather(*(cell.faulty.update_message_record(key, bump) for _ in range(4)))
    updated = await cell.faulty.update_message_record(key.to_dict(), {"owner": "matrix"})
    assert (updated.meta, updated.user) == ({"n": 10}, {"owner": "matrix"})
    record = await cell.clean.get_message_record(key, consistent_read=True)
    assert (record.meta, record.user, record.revision) == ({"n": 10}, {"owner": "matrix"}, 11)
    assert record.status is Status.PRE_FLIGHT and record.body == "x"


async def op_consume_one_by_one(cell: Cell) -> None:
    """A consumer's own loop over plain messages and a cluster's tasks: claim (or is_complete),
    mark_complete with a result; a second look finds it complete, a second completion is refused."""
    url = cell.queue.url
    await cell.clean.send_message_batch(url, [{"p": i} for i in range(3)])
    key = await cell.clean.create_message_cluster(
        url, [{"t": i} for i in range(3)], omit_globals=True
    )
    records = await receive_messages(cell.clean, url)
    assert len(records) == 6
    assert await cell.faulty.max_receive_count(url) is None  # no redrive policy: no last receive
    for n, record in enumerate(records):
        assert await cell.faulty.is_last_receive(record) is False
        if n % 2:
            assert (await cell.faulty.claim(record)).outcome is ClaimOutcome.CLAIMED
        else:
            assert await cell.faulty.is_complete(record) is False
        assert await cell.faulty.mark_complete(record, result={"n": n}) is True
        assert await cell.faulty.is_complete(record) is True
        assert (await cell.faulty.claim(record)).outcome is ClaimOutcome.COMPLETE
        assert await cell.faulty.mark_complete(record, result={"n": -1}) is False
        stored = await cell.clean.get_message_record(
            cell.clean.read_sqs_record(record).key, consistent_read=True
        )
        assert (stored.status, stored.result, stored.lease_until_ms) == (
            Status.COMPLETE,
            {"n": n},
            None,
        )
        assert stored.consumption_count == 1, "a claim was counted twice"
    cluster = await cell.clean.get_message_cluster(key, consistent_read=True)
    assert (cluster.completed, cluster.failed, cluster.status) == (3, 0, Status.COMPLETE)
    assert cluster.callback_state == CallbackState.PENDING


async def redrive_queue(client: MessageClient) -> Queue:
    """A queue that allows one receive: a second one moves the message to its dead-letter queue."""
    sqs = client._aws.sqs
    dlq = (await sqs.create_queue(QueueName=unique("fdlq")))["QueueUrl"]
    attrs = await sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])
    redrive = {"deadLetterTargetArn": attrs["Attributes"]["QueueArn"], "maxReceiveCount": "1"}
    resp = await sqs.create_queue(
        QueueName=unique("fq"),
        Attributes={"VisibilityTimeout": "30", "RedrivePolicy": json.dumps(redrive)},
    )
    return Queue(resp["QueueUrl"], dlq)


async def op_mark_failed(cell: Cell) -> None:
    """Failures recorded once each: retried ones release the lease; on the last allowed receive
    a plain message stops and a task is counted failed in its cluster, which then ends."""
    await cell.clean.send_message_batch(cell.queue.url, ["a", "b", "c"])
    for record in await receive_messages(cell.clean, cell.queue.url):
        assert await cell.clean.is_complete(record) is False
        assert await cell.faulty.mark_failed(record, ValueError(f"boom {record['body']}")) is True
        stored = await cell.clean.get_message_record(
            cell.clean.read_sqs_record(record).key, consistent_read=True
        )
        assert (stored.status, stored.status_code, stored.lease_until_ms) == (
            Status.ERROR,
            StatusCode.ERROR,
            None,
        )
        assert [e.message for e in stored.errors] == [f"boom {record['body']}"]
    last = await redrive_queue(cell.clean)
    key = await cell.clean.create_message_cluster(last.url, ["ok", "fails"], omit_globals=True)
    plain = await cell.clean.send_message(last.url, "plain")
    assert await cell.faulty.max_receive_count(last.url) == 1
    for record in await receive_messages(cell.clean, last.url):
        assert await cell.faulty.is_last_receive(record) is True
        assert await cell.clean.is_complete(record) is False
        if cell.clean.read_sqs_record(record).task_index == 0:
            assert await cell.clean.mark_complete(record) is True
        else:
            assert await cell.faulty.mark_failed(record, ValueError("last")) is True
    cluster = await cell.clean.get_message_cluster(key, consistent_read=True)
    assert (cluster.completed, cluster.failed, cluster.status) == (1, 1, Status.ERROR)
    (task,) = [t async for t in cell.clean.iter_tasks(cluster, Status.ERROR)]
    for stored in (task, await cell.clean.get_message_record(plain, consistent_read=True)):
        assert (stored.status_code, [e.message for e in stored.errors]) == (
            StatusCode.STOPPED,
            ["last"],
        )


async def settle_until_done(
    cell: Cell,
    records: list[dict[str, Any]],
    process: Callable[[dict[str, Any]], Awaitable[PartialBatchResponse]],
) -> None:
    """Run a batch function until it reports no failure, passing back only the failed records
    (as Lambda redelivers them)."""
    for _ in range(8):
        response = await process({"Records": records})
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        records = [r for r in records if r["messageId"] in failed]
        if not records:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{len(records)} records never settled: {cell.injector.summary()}")


async def op_process_dead_letters(cell: Cell) -> None:
    """Dead letters of a cluster's tasks and of plain messages: each record failed for good
    once, the cluster counted and ended once, its callback run once; a repeat changes nothing."""
    queue = await redrive_queue(cell.clean)
    key = await cell.clean.create_message_cluster(
        queue.url, [{"t": i} for i in range(3)], globals={"g": 1}
    )
    plain = await cell.clean.send_message_batch(queue.url, ["a", "b"])
    assert len(await receive_messages(cell.clean, queue.url, visibility=0)) == 5  # all moved
    records = await receive_messages(cell.clean, queue.dlq_url)
    assert len(records) == 5
    callbacks: list[Any] = []

    async def callback(cluster: ClusterRecord[Any, Any], get_globals: Any) -> None:
        callbacks.append((cluster.failed, cluster.status, await get_globals()))

    async def settle(event: dict[str, Any]) -> PartialBatchResponse:
        return await cell.faulty.process_dead_letters(event, on_cluster_complete=callback)

    await settle_until_done(cell, records, settle)
    cluster = await cell.clean.get_message_cluster(key, consistent_read=True)
    assert (cluster.completed, cluster.failed, cluster.status) == (0, 3, Status.ERROR)
    assert callbacks == [(3, Status.ERROR, {"g": 1})], f"callback runs: {callbacks}"
    assert (cluster.callback_state, cluster.callback_attempts) == (CallbackState.DONE, 1)
    tasks = [t async for t in cell.clean.iter_tasks(cluster)]
    stored = [*tasks, *[r for r in await cell.clean.get_message_records(plain) if r]]
    assert len(stored) == 5
    for record in stored:
        assert (record.status_code, [e.type for e in record.errors]) == (
            StatusCode.STOPPED,
            ["ReceivesExhausted"],
        ), f"{record.key} settled {len(record.errors)} times"
    await settle_until_done(cell, records, settle)  # a redelivered batch is harmless
    again = await cell.clean.get_message_cluster(key, consistent_read=True)
    assert (again.failed, again.callback_attempts, len(callbacks)) == (3, 1, 1)


async def op_get_message_cluster(cell: Cell) -> None:
    """A cluster read back exactly: counts, meta, its task records in order (all, and by status)
    and its globals, through the client and through the record's lazy accessors."""
    key = await cell.clean.create_message_cluster(
        cell.queue.url, [{"t": i} for i in range(12)], globals={"g": [1, 2]}, meta={"m": 1}
    )
    for record in await receive_messages(cell.clean, cell.queue.url):
        message = cell.clean.read_sqs_record(record)
        if message.task_index is not None and message.task_index < 5:
            assert await cell.clean.mark_complete(record) is True
    for consistent in (False, True):
        cluster = await cell.faulty.get_message_cluster(key, consistent_read=consistent)
        assert (cluster.key, cluster.total, cluster.sent, cluster.completed, cluster.failed) == (
            key,
            12,
            12,
            5,
            0,
        )
        assert cluster.status is Status.IN_PROGRESS and cluster.meta == {"m": 1}
    tasks = [t async for t in cell.faulty.iter_tasks(cluster)]
    assert [t.task_index for t in tasks] == list(range(12))
    assert [json.loads(t.body or "")["task"] for t in tasks] == [{"t": i} for i in range(12)]
    done = [t.task_index async for t in cluster.iter_tasks(status=Status.COMPLETE)]
    assert done == list(range(5))
    assert await cell.faulty.get_message_cluster_globals(key) == {"g": [1, 2]}
    assert await cell.faulty.get_message_cluster_globals(key.p_key) == {"g": [1, 2]}
    assert await cluster.get_globals() == {"g": [1, 2]}
    with pytest.raises(RecordNotFoundError):
        await cell.faulty.get_message_cluster(RecordKey.for_message("absent", cell.queue.url).p_key)


async def op_update_message_cluster(cell: Cell) -> None:
    """Read-modify-write of a cluster record: sequential, then concurrent; none lost or doubled."""
    key = await cell.clean.create_message_cluster(
        cell.queue.url, [1, 2], omit_globals=True, meta={"n": 0}
    )

    def bump(cluster: Any) -> dict[str, Any]:
        return {"meta": {"n": (cluster.meta or {})["n"] + 1}}

    for n in range(1, 5):
        assert (await cell.faulty.update_message_cluster(key, bump)).meta == {"n": n}
    await asyncio.gather(*(cell.faulty.update_message_cluster(key, bump) for _ in range(3)))
    updated = await cell.faulty.update_message_cluster(key.p_key, {"label": "matrix"})
    assert (updated.meta, updated.user, updated.total) == ({"n": 7}, {"label": "matrix"}, 2)
    cluster = await cell.clean.get_message_cluster(key, consistent_read=True)
    assert (cluster.meta, cluster.user, cluster.revision) == ({"n": 7}, {"label": "matrix"}, 8)
    assert (cluster.status, cluster.sent, cluster.completed) == (Status.IN_PROGRESS, 2, 0)


async def op_on_cluster_complete(cell: Cell) -> None:
    """The callback of an ended cluster: not for an open one; a failing run is recorded once and
    retried; then it has run, and later calls do nothing."""
    url = cell.queue.url
    open_key = await cell.clean.create_message_cluster(url, ["open"], omit_globals=True)
    key = await cell.clean.create_message_cluster(url, [0, 1, 2], globals={"g": 1})
    for record in await receive_messages(cell.clean, url):
        if cell.clean.read_sqs_record(record).cluster_key == key:
            assert await cell.clean.mark_complete(record) is True
    runs: list[Any] = []

    async def callback(cluster: ClusterRecord[Any, Any], get_globals: Any) -> None:
        runs.append((cluster.id, cluster.completed, await get_globals()))
        if len(runs) == 1:
            raise RuntimeError("the first run fails")

    assert await cell.faulty.on_cluster_complete(open_key, callback) is False
    with pytest.raises(RuntimeError, match="the first run fails"):
        await cell.faulty.on_cluster_complete(key, callback)
    assert await cell.faulty.on_cluster_complete(key, callback) is True
    assert await cell.faulty.on_cluster_complete(key.p_key, callback) is False
    assert runs == [(key.id, 3, {"g": 1})] * 2
    cluster = await cell.clean.get_message_cluster(key, consistent_read=True)
    assert (cluster.status, cluster.callback_state, cluster.callback_attempts) == (
        Status.COMPLETE,
        CallbackState.DONE,
        2,
    )
    assert [e.message for e in cluster.errors] == ["the first run fails"]


async def op_resend_unsent(cell: Cell) -> None:
    """A PartialSendError (from a clean send whose entries SQS refused) completed by resending:
    every entry sent once, under the key its record already has."""
    bodies = [{"i": i} for i in range(30)]
    refuse = FaultInjector(SEED, {FaultKind.SQS_SENDER_FAULT: 0.3}, ["sqs.SendMessageBatch"])
    with refuse.attached(cell.clean), pytest.raises(PartialSendError) as info:
        await cell.clean.send_message_batch(cell.queue.url, bodies)
    error = info.value
    assert error.failed and len(error.sent) + len(error.failed) == 30
    keys = await resend_until_done(cell, error)
    assert keys == [error.sent[i] if i in error.sent else error.unsent[i].key for i in range(30)]
    records = await cell.clean.get_message_records(keys)
    assert [json.loads(r.body or "") for r in records if r is not None] == bodies
    messages = await receive_messages(cell.clean, cell.queue.url)
    assert set(Counter(json.loads(m["body"])["i"] for m in messages)) == set(range(30))
    if not cell.response_loss:
        assert len(messages) == 30, "a message was sent twice"
    items = await records_for_queue(cell.clean, cell.queue.url)
    assert len(items) == 30, f"{len(items)} records for 30 messages: written twice"


async def change_until_done(cell: Cell, handles: list[str], timeout: int) -> None:
    """change_visibility, passing back the handles it reports unchanged (all handles are live)."""
    left = await cell.faulty.change_visibility(cell.queue.url, handles, timeout)
    for _ in range(5):
        if not left:
            return
        assert set(left) <= set(handles)
        left = await cell.faulty.change_visibility(cell.queue.url, left, timeout)
    raise AssertionError(f"{len(left)} visibility changes never applied: {cell.injector.summary()}")


async def op_queue_operations(cell: Cell) -> None:
    """The local worker's queue calls: receive everything, extend the visibility, release some,
    delete all (retrying what delete_messages reports as not deleted)."""
    url = cell.queue.url
    assert await cell.faulty.queue_visibility_timeout(url) == 30
    bodies = [str(i) for i in range(12)]
    await cell.clean.send_message_batch(url, bodies)
    received: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 20
    while len(received) < 12:  # a lost receive hides its messages for a second
        assert time.monotonic() < deadline, f"received {len(received)} of 12"
        got = await cell.faulty.receive_messages(url, wait_seconds=0, visibility_timeout=1)
        received.update((m["MessageId"], m) for m in got)  # the latest handle counts
        if not got:
            await asyncio.sleep(0.2)
    assert sorted(m["Body"] for m in received.values()) == sorted(bodies)
    assert all("sqsClusterKey" in m["MessageAttributes"] for m in received.values())
    held = list(received.values())
    await change_until_done(cell, [m["ReceiptHandle"] for m in held], 60)
    await asyncio.sleep(1.1)  # past the receive's own second: only the extension hides them now
    assert await receive_messages(cell.clean, url) == [], "an extension was not applied"
    await change_until_done(cell, [m["ReceiptHandle"] for m in held[:4]], 0)
    again = await receive_messages(cell.clean, url)  # released: received anew (new handles)
    assert sorted(r["body"] for r in again) == sorted(m["Body"] for m in held[:4])
    events = lambda_event(held[4:], queue_url=url, region=REGION)["Records"] + again
    messages = [cell.faulty.read_sqs_record(r) for r in events]
    left = await cell.faulty.delete_messages(messages)
    for _ in range(5):
        if not left:
            break
        assert set(left) <= {m.message_id for m in messages}
        left = await cell.faulty.delete_messages([m for m in messages if m.message_id in left])
    assert not left, f"{len(left)} messages never deleted: {cell.injector.summary()}"
    assert await queue_depth(cell.clean, url) == 0


Operation = Callable[[Cell], Awaitable[None]]


@dataclass(frozen=True)
class Scenario:
    """A matrix row: what it runs, the AWS operations it issues under the injector (every one
    it may issue: a cell fails on an undeclared one) and the MessageClient methods it covers."""

    run: Operation
    operations: frozenset[str]
    covers: frozenset[str]
    s3_if_match: bool = False  # whether it writes S3 with If-Match (412 can happen)

    def reached_by(self, kind: FaultKind) -> bool:
        if kind is FaultKind.S3_PRECONDITION_FAILED and not self.s3_if_match:
            return False
        scope = FAULT_SCOPE[kind]
        return scope is None or bool(scope & self.operations)


def ops(*names: str) -> frozenset[str]:
    return frozenset(names)


SCENARIOS: dict[str, Scenario] = {
    "send_message_batch": Scenario(
        op_send_message_batch,
        ops(
            "sqs.GetQueueAttributes",
            "dynamodb.BatchWriteItem",
            "sqs.SendMessageBatch",
            "dynamodb.BatchGetItem",  # resend_unsent reads the records first
        ),
        ops("send_message_batch"),
    ),
    "get_message_records": Scenario(
        op_get_message_records, ops("dynamodb.BatchGetItem"), ops("get_message_records")
    ),
    "create_message_cluster": Scenario(
        op_create_message_cluster,
        ops(
            "sqs.GetQueueAttributes",
            "dynamodb.PutItem",
            "s3.PutObject",
            "dynamodb.BatchWriteItem",
            "sqs.SendMessageBatch",
            "dynamodb.UpdateItem",
            "dynamodb.GetItem",  # a resume reads the progress item
            "dynamodb.BatchGetItem",  # and the progress markers
        ),
        ops("create_message_cluster"),
    ),
    "safe_process_batch": Scenario(
        op_safe_process_batch,
        ops(
            "dynamodb.UpdateItem",
            "dynamodb.TransactWriteItems",
            "dynamodb.GetItem",
            "dynamodb.Query",
            "s3.GetObject",
            "s3.PutObject",
            "sqs.DeleteMessageBatch",
        ),
        ops("safe_process_batch"),
        s3_if_match=True,
    ),
    "update_message_cluster_globals": Scenario(
        op_update_message_cluster_globals,
        ops("s3.GetObject", "s3.PutObject"),
        ops("update_message_cluster_globals", "update_cluster_globals"),
        s3_if_match=True,
    ),
    "send_message": Scenario(
        op_send_message,
        ops("sqs.GetQueueAttributes", "dynamodb.PutItem", "sqs.SendMessage", "dynamodb.GetItem"),
        ops("send_message", "get_message_record"),
    ),
    "update_message_record": Scenario(
        op_update_message_record,
        ops("dynamodb.GetItem", "dynamodb.UpdateItem"),
        ops("update_message_record"),
    ),
    "consume_one_by_one": Scenario(
        op_consume_one_by_one,
        ops(
            "sqs.GetQueueAttributes",
            "dynamodb.UpdateItem",
            "dynamodb.GetItem",
            "dynamodb.TransactWriteItems",
            "dynamodb.Query",
        ),
        ops("claim", "is_complete", "mark_complete", "is_last_receive", "max_receive_count"),
    ),
    "mark_failed": Scenario(
        op_mark_failed,
        ops(
            "sqs.GetQueueAttributes",
            "dynamodb.UpdateItem",
            "dynamodb.GetItem",
            "dynamodb.TransactWriteItems",
            "dynamodb.Query",
        ),
        ops("mark_failed", "is_last_receive", "max_receive_count"),
    ),
    "process_dead_letters": Scenario(
        op_process_dead_letters,
        ops(
            "dynamodb.UpdateItem",
            "dynamodb.GetItem",
            "dynamodb.TransactWriteItems",
            "dynamodb.Query",
            "s3.GetObject",
        ),
        ops("process_dead_letters"),
    ),
    "get_message_cluster": Scenario(
        op_get_message_cluster,
        ops("dynamodb.Query", "dynamodb.BatchGetItem", "s3.GetObject"),
        ops("get_message_cluster", "iter_tasks", "get_message_cluster_globals"),
    ),
    "update_message_cluster": Scenario(
        op_update_message_cluster,
        ops("dynamodb.Query", "dynamodb.GetItem", "dynamodb.UpdateItem"),
        ops("update_message_cluster"),
    ),
    "on_cluster_complete": Scenario(
        op_on_cluster_complete,
        ops("dynamodb.GetItem", "dynamodb.Query", "dynamodb.UpdateItem", "s3.GetObject"),
        ops("on_cluster_complete"),
    ),
    "resend_unsent": Scenario(
        op_resend_unsent,
        ops("dynamodb.BatchGetItem", "dynamodb.BatchWriteItem", "sqs.SendMessageBatch"),
        ops("resend_unsent"),
    ),
    "queue_operations": Scenario(
        op_queue_operations,
        ops(
            "sqs.GetQueueAttributes",
            "sqs.ReceiveMessage",
            "sqs.ChangeMessageVisibilityBatch",
            "sqs.DeleteMessageBatch",
        ),
        ops("queue_visibility_timeout", "receive_messages", "change_visibility", "delete_messages"),
    ),
}

PREFLIGHT_OPERATIONS = ops("dynamodb.DescribeTable", "s3.HeadBucket")
"""Resource checks made once per process: whichever row runs first issues them."""

NOT_IN_MATRIX: dict[str, str] = {
    "aclose": "closes the aiobotocore clients; sends no AWS request a fault could hit",
}
"""Public async methods of MessageClient the matrix leaves out, with the reason. Dunders
(``__aenter__``/``__aexit__``) and plain methods (``add_request_hook``, ``read_sqs_record``,
``log_failure``) send no request and are not public operations in this sense."""


KNOWN_GAPS: dict[tuple[str, FaultKind], tuple[str, bool, type[BaseException] | None]] = {}


def matrix() -> list[Any]:
    cells = []
    for name, scenario in SCENARIOS.items():
        for kind in FaultKind:
            if not scenario.reached_by(kind):
                continue
            gap = KNOWN_GAPS.get((name, kind))
            marks = [pytest.mark.xfail(strict=gap[1], reason=gap[0], raises=gap[2])] if gap else []
            cells.append(pytest.param(name, kind, id=f"{name}-{kind.value}", marks=marks))
    return cells


@pytest.mark.parametrize(("operation", "kind"), matrix())
async def test_fault_matrix(
    operation: str, kind: FaultKind, clean: MessageClient, faulty: MessageClient
) -> None:
    scenario = SCENARIOS[operation]
    injector = FaultInjector(SEED, {kind: RATE}, delay_scale=DELAY_SCALE)
    with injector.attached(faulty):
        for _ in range(10):  # rounds, each on a fresh queue, until a fault landed
            cell = Cell(kind, clean, faulty, await fresh_queue(clean), injector)
            await scenario.run(cell)
            if injector.count():
                break
    assert injector.count() > 0, (
        f"no {kind.value} fault reached {operation}: the cell proves nothing"
    )
    undeclared = set(injector.calls) - scenario.operations - PREFLIGHT_OPERATIONS
    assert not undeclared, f"{operation} issues undeclared operations: {sorted(undeclared)}"


def returns_async_iterator(function: Callable[..., Any]) -> bool:
    annotation = inspect.signature(function).return_annotation
    name = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    return name.split("[")[0].rsplit(".", 1)[-1] in {"AsyncIterator", "AsyncGenerator"}


def public_operations() -> set[str]:
    """MessageClient's public coroutine methods, and its methods returning async iterators."""
    return {
        name
        for name, member in inspect.getmembers(MessageClient, inspect.isfunction)
        if not name.startswith("_")
        and (inspect.iscoroutinefunction(member) or returns_async_iterator(member))
    }


def test_the_matrix_covers_every_public_operation() -> None:
    covered = set().union(*(s.covers for s in SCENARIOS.values()))
    public = public_operations()
    assert {"send_message", "iter_tasks", "aclose"} <= public  # the introspection sees them
    missing = public - covered - NOT_IN_MATRIX.keys()
    assert not missing, f"public operations in no fault matrix row (nor exempted): {missing}"
    assert covered <= public, f"rows cover what is not a public operation: {covered - public}"
    assert not covered & NOT_IN_MATRIX.keys(), (
        "an exempted operation is covered: drop its exemption"
    )


# -- retries exhausted: the error says what was done; a retry completes it ---------------------


async def test_send_batch_with_sends_failing_for_good_reports_and_resumes(
    faulty: MessageClient, clean: MessageClient
) -> None:
    queue = await fresh_queue(clean)
    injector = FaultInjector(
        1, {FaultKind.THROTTLING: 1.0}, ["sqs.SendMessageBatch"], delay_scale=0.001
    )
    config = faulty.config.with_changes(partial_retry_attempts=2, max_attempts=2)
    async with MessageClient(config, session=faulty._aws._session) as client:
        with injector.attached(client), pytest.raises(PartialSendError) as info:
            await client.send_message_batch(queue.url, list(range(12)))
    error = info.value
    assert error.failed_indexes == list(range(12)) and error.sent == {}
    assert "0 of 12 entries sent" in str(error) and "RequestThrottled" in str(error)
    assert await queue_depth(clean, queue.url) == 0
    assert error.queue_url == queue.url and sorted(error.unsent) == list(range(12))
    keys = await clean.resend_unsent(error)  # under the keys their records already have
    assert keys == [error.unsent[i].key for i in range(12)]
    assert await queue_depth(clean, queue.url) == 12
    assert len(await records_for_queue(clean, queue.url)) == 12, "records left behind"
    records = await clean.get_message_records(keys)
    assert [json.loads(r.body or "") if r else None for r in records] == list(range(12))


async def test_resend_skips_entries_a_consumer_already_received(
    faulty: MessageClient, clean: MessageClient
) -> None:
    """A send that failed only in appearance (SQS took it, the answer said no) is not repeated
    once a consumer has claimed its message; one still PRE FLIGHT is."""
    queue = await fresh_queue(clean)
    injector = FaultInjector(
        14, {FaultKind.READ_TIMEOUT: 1.0}, ["sqs.SendMessageBatch"], delay_scale=0.001
    )
    config = faulty.config.with_changes(partial_retry_attempts=1, max_attempts=1)
    async with MessageClient(config, session=faulty._aws._session) as client:
        with injector.attached(client), pytest.raises(PartialSendError) as info:
            await client.send_message_batch(queue.url, list(range(4)))
    error = info.value
    assert sorted(error.failed) == [0, 1, 2, 3]  # every send ran; every answer was lost
    first = await receive_messages(clean, queue.url)
    consumed = [r for r in first if r["body"] in {"0", "1"}]
    await clean.safe_process_batch({"Records": consumed}, lambda m: None, delete_succeeded=True)
    for record in first:
        if record not in consumed:
            await clean.change_visibility(queue.url, [record["receiptHandle"]], 0)
    keys = await clean.resend_unsent(error)
    assert keys == [error.unsent[i].key for i in range(4)]
    bodies = await receive_bodies(clean, queue.url)
    assert bodies == ["2", "2", "3", "3"]  # 0 and 1 were claimed: not sent again


async def test_resend_needs_the_error_send_message_batch_raised(clean: MessageClient) -> None:
    foreign = PartialSendError({}, {0: "boom"})
    with pytest.raises(ValidationError, match=r"^error: "):
        await clean.resend_unsent(foreign)


async def test_create_cluster_with_sends_failing_for_good_resumes_exactly(
    faulty: MessageClient, clean: MessageClient
) -> None:
    queue = await fresh_queue(clean)
    tasks = [{"i": i} for i in range(120)]
    injector = FaultInjector(
        2,
        {FaultKind.SERVER_ERROR: 1.0},
        ["sqs.SendMessageBatch"],
        match=lambda s, op, params: int(params["Entries"][0]["Id"]) >= 60,  # tasks 60+
        delay_scale=0.001,
    )
    config = faulty.config.with_changes(partial_retry_attempts=2, max_attempts=2)
    async with MessageClient(config, session=faulty._aws._session) as client:
        with injector.attached(client), pytest.raises(ClusterSendError) as info:
            await client.create_message_cluster(
                queue.url, tasks, cluster_id="exhausted-1", omit_globals=True
            )
    error = info.value
    assert (error.sent, error.total, sorted(error.failed)) == (60, 120, list(range(60, 120)))
    assert "60 of 120 tasks confirmed sent" in str(error) and "exhausted-1" in str(error)
    key = await clean.create_message_cluster(
        queue.url, tasks, cluster_id="exhausted-1", omit_globals=True
    )
    cluster = await clean.get_message_cluster(key, consistent_read=True)
    assert (cluster.sent, cluster.status) == (120, Status.IN_PROGRESS)
    indexes = Counter(
        json.loads(m["body"])["index"] for m in await receive_messages(clean, queue.url)
    )
    assert sorted(indexes) == list(range(120)) and set(indexes.values()) == {1}


async def test_create_cluster_failing_after_its_record_names_the_cluster(
    faulty: MessageClient, clean: MessageClient
) -> None:
    queue = await fresh_queue(clean)
    injector = FaultInjector(3, {FaultKind.SERVER_ERROR: 1.0}, ["s3.PutObject"], delay_scale=0.001)
    with injector.attached(faulty), pytest.raises(ClusterSendError) as info:
        await faulty.create_message_cluster(queue.url, [1, 2, 3], globals={"g": 1})
    assert info.value.sent == 0 and info.value.cluster_id


async def test_create_cluster_stopped_before_its_fan_out_resumes_with_its_id(
    faulty: MessageClient, clean: MessageClient
) -> None:
    queue = await fresh_queue(clean)
    tasks = [{"i": i} for i in range(60)]
    injector = FaultInjector(3, {FaultKind.SERVER_ERROR: 1.0}, ["s3.PutObject"], delay_scale=0.001)
    with injector.attached(faulty), pytest.raises(ClusterSendError) as info:
        await faulty.create_message_cluster(queue.url, tasks, globals={"seen": []})
    error = info.value
    assert (error.sent, error.total, sorted(error.failed)) == (0, 60, list(range(60)))
    assert error.reason and "PutObject" in error.reason and not error.uncertain
    assert error.cluster_id in str(error) and "resume" in str(error)
    assert await queue_depth(clean, queue.url) == 0
    key = await clean.create_message_cluster(
        queue.url, tasks, globals={"seen": []}, cluster_id=error.cluster_id
    )
    assert key.id == error.cluster_id
    assert await clean.get_message_cluster_globals(key) == {"seen": []}
    records = await receive_messages(clean, queue.url)
    assert Counter(json.loads(r["body"])["index"] for r in records) == Counter(range(60))
    response = await clean.safe_process_batch(
        {"Records": records}, lambda m: None, delete_succeeded=True
    )
    assert response == {"batchItemFailures": []}
    cluster = await clean.get_message_cluster(key, consistent_read=True)
    assert (cluster.sent, cluster.completed, cluster.status) == (60, 60, Status.COMPLETE)


async def test_create_cluster_whose_progress_cannot_be_recorded(
    faulty: MessageClient, clean: MessageClient
) -> None:
    queue = await fresh_queue(clean)
    injector = FaultInjector(
        4,
        {FaultKind.THROTTLING: 1.0},
        ["dynamodb.UpdateItem"],
        match=lambda s, op, params: "sentUnits" in params.get("UpdateExpression", ""),
        delay_scale=0.001,
    )
    tasks = list(range(10))
    with injector.attached(faulty):
        try:
            await faulty.create_message_cluster(
                queue.url, tasks, cluster_id="no-progress-1", omit_globals=True
            )
        except ClientError as exc:
            raise AssertionError(f"raw error escaped: {exc}") from exc
        except ClusterSendError:
            pass
    await clean.create_message_cluster(
        queue.url, tasks, cluster_id="no-progress-1", omit_globals=True
    )
    assert await queue_depth(clean, queue.url) == 10  # no task sent twice


def is_progress_write(service: str, operation: str, params: Mapping[str, Any]) -> bool:
    """The fan-out's merged progress UpdateItem (sentCount, sentUnits, sentTasks)."""
    return "ADD #c" in params.get("UpdateExpression", "")


def is_marker_write(service: str, operation: str, params: Mapping[str, Any]) -> bool:
    """A BatchWriteItem of fan-out progress markers."""
    requests = [r for rs in params.get("RequestItems", {}).values() for r in rs]
    return any(r["PutRequest"]["Item"]["rKey"]["S"] == "SQSMessage$progress" for r in requests)


def sends_from(index: int) -> Callable[[str, str, Mapping[str, Any]], bool]:
    """SendMessageBatch calls of the tasks from ``index`` on."""
    return lambda s, op, params: (
        op == "SendMessageBatch" and int(params["Entries"][0]["Id"]) >= index
    )


async def test_create_cluster_resumes_from_progress_markers(
    faulty: MessageClient, clean: MessageClient
) -> None:
    """The progress item cannot be written and tasks 60+ cannot be sent: each unit's marker
    records what it sent, so the resume sends exactly the rest."""
    queue = await fresh_queue(clean)
    tasks = [{"i": i} for i in range(120)]
    injector = FaultInjector(
        15,
        {FaultKind.THROTTLING: 1.0},
        ["dynamodb.UpdateItem", "sqs.SendMessageBatch"],
        match=lambda s, op, params: (
            is_progress_write(s, op, params) or sends_from(60)(s, op, params)
        ),
        delay_scale=0.001,
    )
    config = faulty.config.with_changes(partial_retry_attempts=2, max_attempts=2)
    async with MessageClient(config, session=faulty._aws._session) as client:
        with injector.attached(client), pytest.raises(ClusterSendError) as info:
            await client.create_message_cluster(
                queue.url, tasks, cluster_id=unique("markers"), omit_globals=True
            )
    error = info.value
    assert (error.sent, sorted(error.failed)) == (60, list(range(60, 120)))
    assert error.unrecorded == [] and error.uncertain == []
    assert injector.count(operation="dynamodb.UpdateItem") > 0
    key = await clean.create_message_cluster(
        queue.url, tasks, cluster_id=error.cluster_id, omit_globals=True
    )
    indexes = Counter(
        json.loads(m["body"])["index"] for m in await receive_messages(clean, queue.url)
    )
    assert indexes == Counter(range(120)), "a task was lost or sent twice"
    assert (await clean.get_message_cluster(key, consistent_read=True)).sent == 120


async def test_create_cluster_whose_progress_cannot_be_written_anywhere(
    faulty: MessageClient, clean: MessageClient
) -> None:
    """Neither the progress item nor the markers can be written: the error names the tasks
    that were sent but not recorded; a resume sends them again (their claims absorb that)."""
    queue = await fresh_queue(clean)
    tasks = [{"i": i} for i in range(120)]
    injector = FaultInjector(
        16,
        {FaultKind.THROTTLING: 1.0},
        ["dynamodb.UpdateItem", "dynamodb.BatchWriteItem", "sqs.SendMessageBatch"],
        match=lambda s, op, params: (
            is_progress_write(s, op, params)
            or is_marker_write(s, op, params)
            or sends_from(60)(s, op, params)
        ),
        delay_scale=0.001,
    )
    config = faulty.config.with_changes(partial_retry_attempts=2, max_attempts=2)
    async with MessageClient(config, session=faulty._aws._session) as client:
        with injector.attached(client), pytest.raises(ClusterSendError) as info:
            await client.create_message_cluster(
                queue.url, tasks, cluster_id=unique("unrecorded"), omit_globals=True
            )
    error = info.value
    assert (error.sent, sorted(error.failed)) == (60, list(range(60, 120)))
    assert error.unrecorded == list(range(60))
    assert "sent but not recorded as sent: tasks[0]" in str(error)
    await clean.create_message_cluster(
        queue.url, tasks, cluster_id=error.cluster_id, omit_globals=True
    )
    indexes = Counter(
        json.loads(m["body"])["index"] for m in await receive_messages(clean, queue.url)
    )
    assert indexes == Counter([*range(60), *range(120)])  # the unrecorded ones, twice


async def test_create_cluster_stopped_mid_send_names_the_uncertain_tasks(
    clean: MessageClient,
) -> None:
    """An error while a unit's messages are being sent stops the fan-out: that unit's tasks
    may or may not have gone out, the later ones surely did not; a resume sends every task."""
    queue = await fresh_queue(clean)
    tasks = [{"i": i} for i in range(120)]
    calls = {"n": 0}

    async def third_call_breaks(call: Any, kwargs: dict[str, Any]) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise ClientError(
                {"Error": {"Code": "AWS.SimpleQueueService.NonExistentQueue", "Message": "gone"}},
                "SendMessageBatch",
            )
        return await call(**kwargs)

    real = clients_of(clean)
    broken = FaultyClient(real["sqs"], send_message_batch=third_call_breaks)
    config = clean.config.with_changes(max_concurrency=2)  # one unit at a time
    async with MessageClient(config, clients={**real, "sqs": broken}) as client:
        with pytest.raises(ClusterSendError) as info:
            await client.create_message_cluster(
                queue.url, tasks, cluster_id=unique("midsend"), omit_globals=True
            )
    error = info.value
    assert error.uncertain == list(range(50)) and sorted(error.failed) == list(range(50, 120))
    assert error.sent == 0 and error.reason and "NonExistentQueue" in error.reason
    assert "(may have been sent): tasks[0]" in str(error)
    assert error.failed[119] == "not attempted: the fan-out stopped first"
    await clean.create_message_cluster(
        queue.url, tasks, cluster_id=error.cluster_id, omit_globals=True
    )
    indexes = Counter(
        json.loads(m["body"])["index"] for m in await receive_messages(clean, queue.url)
    )
    assert set(indexes) == set(range(120))
    assert all(indexes[i] == 1 for i in range(50, 120)), "a task known unsent was sent twice"


# -- lost responses: a request that ran must not run again with a different meaning ------------


async def test_globals_update_whose_answer_was_lost_applies_once(
    faulty: MessageClient, clean: MessageClient
) -> None:
    queue = await fresh_queue(clean)
    key = await clean.create_message_cluster(queue.url, [1], globals={"n": 0})
    injector = FaultInjector(5, {FaultKind.READ_TIMEOUT: 1.0}, ["s3.PutObject"], limit=1)
    with injector.attached(faulty):
        await faulty.update_message_cluster_globals(key, lambda g: {"n": g["n"] + 1})
    assert await clean.get_message_cluster_globals(key) == {"n": 1}


async def test_record_update_whose_answer_was_lost_applies_once(
    faulty: MessageClient, clean: MessageClient
) -> None:
    queue = await fresh_queue(clean)
    key = await clean.send_message(queue.url, "x", meta={"n": 0})
    injector = FaultInjector(6, {FaultKind.READ_TIMEOUT: 1.0}, ["dynamodb.UpdateItem"], limit=1)
    with injector.attached(faulty):
        await faulty.update_message_record(key, lambda r: {"meta": {"n": (r.meta or {})["n"] + 1}})
    assert (await clean.get_message_record(key, consistent_read=True)).meta == {"n": 1}


async def test_callback_whose_claim_answer_was_lost_still_runs(
    faulty: MessageClient, clean: MessageClient
) -> None:
    queue = await fresh_queue(clean)
    await clean.create_message_cluster(queue.url, [1], omit_globals=True)
    event = {"Records": await receive_messages(clean, queue.url)}
    injector = FaultInjector(
        7,
        {FaultKind.READ_TIMEOUT: 1.0},
        ["dynamodb.UpdateItem"],
        match=lambda s, op, params: (
            "callbackState = :running" in params.get("UpdateExpression", "")
        ),
        limit=1,
    )
    runs: list[str] = []

    async def callback(cluster: ClusterRecord[Any, Any], get_globals: Any) -> None:
        runs.append(cluster.id)

    with injector.attached(faulty):
        await faulty.safe_process_batch(event, lambda m: None, on_cluster_complete=callback)
    assert injector.count() == 1
    assert len(runs) == 1


async def test_claim_whose_answer_was_lost_still_claims(
    faulty: MessageClient, clean: MessageClient
) -> None:
    queue = await fresh_queue(clean)
    await clean.send_message(queue.url, "x")
    (record,) = await receive_messages(clean, queue.url)
    injector = FaultInjector(8, {FaultKind.READ_TIMEOUT: 1.0}, ["dynamodb.UpdateItem"], limit=1)
    with injector.attached(faulty):
        assert await faulty.is_complete(record) is False


def lose_one_answer(seed: int, operation: str, *expression: str) -> FaultInjector:
    """Loses the answer of the first ``operation`` call whose UpdateExpression (of the call, or
    of one of its transaction items) contains every given fragment: the write itself lands."""

    def matches(service: str, op: str, params: Mapping[str, Any]) -> bool:
        updates = [params, *(i.get("Update", {}) for i in params.get("TransactItems", []))]
        texts = [u.get("UpdateExpression", "") for u in updates]
        return any(all(e in text for e in expression) for text in texts)

    return FaultInjector(seed, {FaultKind.READ_TIMEOUT: 1.0}, [operation], match=matches, limit=1)


async def test_send_message_whose_record_answer_was_lost_sends_once(
    faulty: MessageClient, clean: MessageClient
) -> None:
    queue = await fresh_queue(clean)
    injector = FaultInjector(20, {FaultKind.READ_TIMEOUT: 1.0}, ["dynamodb.PutItem"], limit=1)
    with injector.attached(faulty):
        key = await faulty.send_message(queue.url, "once")
    assert injector.count() == 1
    assert await receive_bodies(clean, queue.url) == ["once"]
    assert (await clean.get_message_record(key, consistent_read=True)).body == "once"


@pytest.mark.parametrize("task", [False, True], ids=["message", "task"])
async def test_completion_whose_answer_was_lost_says_it_completed(
    faulty: MessageClient, clean: MessageClient, task: bool
) -> None:
    queue = await fresh_queue(clean)
    if task:
        key = await clean.create_message_cluster(queue.url, [1], omit_globals=True)
        operation = "dynamodb.TransactWriteItems"
    else:
        await clean.send_message(queue.url, "x")
        operation = "dynamodb.UpdateItem"
    (record,) = await receive_messages(clean, queue.url)
    assert await clean.is_complete(record) is False
    injector = lose_one_answer(21, operation, "completedAt")
    with injector.attached(faulty):
        assert await faulty.mark_complete(record, result="r") is True
    assert injector.count() == 1
    assert await faulty.mark_complete(record) is False  # a real duplicate still says so
    stored = await clean.get_message_record(clean.read_sqs_record(record).key, consistent_read=True)
    assert (stored.status, stored.result) == (Status.COMPLETE, "r")
    if task:
        assert (await clean.get_message_cluster(key, consistent_read=True)).completed == 1


@pytest.mark.parametrize("last", [False, True], ids=["retried", "last-receive-task"])
async def test_failure_whose_answer_was_lost_is_recorded_once(
    faulty: MessageClient, clean: MessageClient, last: bool
) -> None:
    queue = await (redrive_queue(clean) if last else fresh_queue(clean))
    if last:
        key = await clean.create_message_cluster(queue.url, [1], omit_globals=True)
        operation = "dynamodb.TransactWriteItems"
    else:
        await clean.send_message(queue.url, "x")
        operation = "dynamodb.UpdateItem"
    (record,) = await receive_messages(clean, queue.url)
    assert await clean.is_complete(record) is False
    injector = lose_one_answer(22, operation, "list_append")
    with injector.attached(faulty):
        assert await faulty.mark_failed(record, ValueError("boom")) is True
    assert injector.count() == 1
    stored = await clean.get_message_record(clean.read_sqs_record(record).key, consistent_read=True)
    assert [e.message for e in stored.errors] == ["boom"], "the failure was recorded twice"
    if last:
        cluster = await clean.get_message_cluster(key, consistent_read=True)
        assert (cluster.failed, cluster.status) == (1, Status.ERROR)


async def test_callback_failure_whose_answer_was_lost_is_recorded_once(
    faulty: MessageClient, clean: MessageClient
) -> None:
    queue = await fresh_queue(clean)
    key = await clean.create_message_cluster(queue.url, [1], omit_globals=True)
    (record,) = await receive_messages(clean, queue.url)
    await clean.mark_complete(record)

    async def fails(cluster: ClusterRecord[Any, Any], get_globals: Any) -> None:
        raise RuntimeError("callback failed")

    injector = lose_one_answer(23, "dynamodb.UpdateItem", "callbackState = :failed")
    with injector.attached(faulty), pytest.raises(RuntimeError, match="callback failed"):
        await faulty.on_cluster_complete(key, fails)
    assert injector.count() == 1
    cluster = await clean.get_message_cluster(key, consistent_read=True)
    assert cluster.callback_state == CallbackState.FAILED
    assert [e.message for e in cluster.errors] == ["callback failed"], "recorded twice"


async def test_progress_whose_answer_was_lost_counts_once(
    faulty: MessageClient, clean: MessageClient
) -> None:
    queue = await fresh_queue(clean)
    injector = FaultInjector(
        9,
        {FaultKind.READ_TIMEOUT: 1.0},
        ["dynamodb.UpdateItem"],
        match=lambda s, op, params: "sentCount" in json.dumps(params),
        limit=1,
    )
    with injector.attached(faulty):
        key = await faulty.create_message_cluster(queue.url, list(range(5)), omit_globals=True)
    assert (await clean.get_message_cluster(key, consistent_read=True)).sent == 5


async def test_globals_conflict_on_create_is_retried(
    faulty: MessageClient, clean: MessageClient
) -> None:
    queue = await fresh_queue(clean)
    injector = FaultInjector(10, {FaultKind.S3_CONFLICT: 1.0}, ["s3.PutObject"], limit=1)
    with injector.attached(faulty):
        key = await faulty.create_message_cluster(queue.url, [1], globals={"g": 1})
    assert await clean.get_message_cluster_globals(key) == {"g": 1}


async def test_counting_that_keeps_conflicting_raises_a_clear_error(
    faulty: MessageClient, clean: MessageClient
) -> None:
    queue = await fresh_queue(clean)
    key = await clean.create_message_cluster(queue.url, [1], omit_globals=True)
    (record,) = await receive_messages(clean, queue.url)
    assert await clean.is_complete(record) is False
    injector = FaultInjector(13, {FaultKind.TRANSACTION_CONFLICT: 1.0}, limit=2)
    config = faulty.config.with_changes(partial_retry_attempts=2)
    async with MessageClient(config, session=faulty._aws._session) as client:
        with injector.attached(client), pytest.raises(ConflictError) as info:
            await client.mark_complete(record)
    assert "2 transactions in a row" in str(info.value) and "not counted" in str(info.value)
    assert (await clean.get_message_cluster(key, consistent_read=True)).completed == 0
    assert await clean.mark_complete(record) is True  # the retry counts it
    assert (await clean.get_message_cluster(key, consistent_read=True)).completed == 1


async def test_visibility_changes_report_refused_handles(
    faulty: MessageClient, clean: MessageClient
) -> None:
    queue = await fresh_queue(clean)
    await clean.send_message_batch(queue.url, [1, 2, 3])
    received = await clean.receive_messages(queue.url, wait_seconds=0, visibility_timeout=60)
    handles = [m["ReceiptHandle"] for m in received]
    refuse = FaultInjector(
        14,
        {FaultKind.SQS_SENDER_FAULT: 1.0},
        match=lambda s, op, params: params["Entries"][0]["ReceiptHandle"] == handles[0],
    )
    with refuse.attached(faulty):
        assert await faulty.change_visibility(queue.url, handles, 0) == handles
    assert await faulty.change_visibility(queue.url, handles[1:], 0) == []
    assert len(await receive_messages(clean, queue.url)) == 2  # refused: still hidden


async def test_visibility_changes_retry_failed_entries(
    faulty: MessageClient, clean: MessageClient
) -> None:
    queue = await fresh_queue(clean)
    await clean.send_message_batch(queue.url, [1, 2, 3])
    received = await clean.receive_messages(queue.url, wait_seconds=0, visibility_timeout=60)
    injector = FaultInjector(12, {FaultKind.SQS_FAILED_ENTRY: 1.0}, limit=1)
    with injector.attached(faulty):
        await faulty.change_visibility(queue.url, [m["ReceiptHandle"] for m in received], 0)
    assert injector.count(FaultKind.SQS_FAILED_ENTRY) == 1
    assert len(await receive_messages(clean, queue.url)) == 3  # released: visible again


async def test_response_loss_on_sends_is_absorbed_by_claims(
    faulty: MessageClient, clean: MessageClient
) -> None:
    """SQS is at-least-once: a lost SendMessageBatch answer delivers a message twice, with the
    same record key; the claim makes the handler run once."""
    queue = await fresh_queue(clean)
    injector = FaultInjector(11, {FaultKind.READ_TIMEOUT: 1.0}, ["sqs.SendMessageBatch"], limit=1)
    with injector.attached(faulty):
        keys = await faulty.send_message_batch(queue.url, list(range(10)))
    records = await receive_messages(clean, queue.url)
    assert len(records) == 20 and len({key_of(r) for r in records}) == 10
    runs: Counter[str] = Counter()
    for _ in range(3):  # a duplicate seen while its twin holds the lease is retried
        response = await clean.safe_process_batch(
            {"Records": records}, lambda m: runs.update([m.raw_body]), delete_succeeded=True
        )
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        records = [r for r in records if r["messageId"] in failed]
    assert runs == Counter(str(i) for i in range(10))
    assert await queue_depth(clean, queue.url) == 0
    for key in keys:
        assert (await clean.get_message_record(key, consistent_read=True)).status is Status.COMPLETE


def test_reliability_doc_quotes_its_example() -> None:
    root = Path(__file__).resolve().parent.parent
    code = (root / "docs" / "examples" / "faults_usage.py").read_text(encoding="utf-8")
    assert code in (root / "docs" / "reliability.md").read_text(encoding="utf-8")


async def test_reliability_doc_example_runs(base_config: Config) -> None:
    """The example quoted in docs/reliability.md sends everything through injected faults."""
    from docs.examples import faults_usage

    queue = await make_queue(base_config)
    keys, summary = await faults_usage.send_through_faults(base_config, queue.url, list(range(40)))
    assert len(set(keys)) == 40 and "faults injected" in summary
    assert faults_usage.lost_callback_claim() is not None
