"""Tests for the local AWS server: lifecycle, the SQS speed-up, and serialised mode."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from sqs_cluster.local import LocalAWS, LocalAWSError
from sqs_cluster.local.sqs_patch import (
    apply_sqs_counter_patch,
    revert_sqs_counter_patch,
    sqs_counter_patch_applied,
)

REGION = "us-east-1"
LONG_TIMEOUT = 600  # seconds; long enough that nothing expires during a test


def _client(service: str, endpoint_url: str, pool: int = 10) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(max_pool_connections=pool),
    )


@pytest.fixture(scope="module")
def aws() -> Iterator[LocalAWS]:
    server = LocalAWS()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sqs(aws: LocalAWS) -> Any:
    return _client("sqs", aws.endpoint_url)


def _new_queue(sqs: Any, name: str | None = None, **attributes: str) -> str:
    name = name or f"q-{uuid.uuid4().hex[:16]}"
    url: str = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    return url


def _counts(sqs: Any, url: str) -> tuple[int, int, int]:
    """(visible, not visible, delayed) as GetQueueAttributes reports them."""
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return (
        int(attrs["ApproximateNumberOfMessages"]),
        int(attrs["ApproximateNumberOfMessagesNotVisible"]),
        int(attrs["ApproximateNumberOfMessagesDelayed"]),
    )


def _fill(sqs: Any, url: str, count: int, **entry: Any) -> None:
    for start in range(0, count, 10):
        entries = [
            {"Id": str(i), "MessageBody": f"message {start + i}", **entry}
            for i in range(min(10, count - start))
        ]
        assert not sqs.send_message_batch(QueueUrl=url, Entries=entries).get("Failed")


def _delete_all(sqs: Any, url: str, messages: list[dict[str, Any]]) -> None:
    entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
    assert not sqs.delete_message_batch(QueueUrl=url, Entries=entries).get("Failed")


def _assert_gone(pid: int) -> None:
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


# -- lifecycle ----------------------------------------------------------------------------------


def test_start_stop_and_process_is_gone() -> None:
    server = LocalAWS()
    assert not server.running
    assert server.pid is None
    with pytest.raises(LocalAWSError):
        _ = server.endpoint_url

    endpoint = server.start()
    pid = server.pid
    assert pid is not None
    assert server.running
    assert endpoint == server.endpoint_url
    assert endpoint.startswith("http://127.0.0.1:")
    assert server.start() == endpoint  # already running: same server

    server.stop()
    assert not server.running
    assert server.pid is None
    _assert_gone(pid)
    server.stop()  # idempotent


def test_sync_context_manager_and_reset() -> None:
    with LocalAWS() as server:
        pid = server.pid
        assert pid is not None
        sqs = _client("sqs", server.endpoint_url)
        _new_queue(sqs, "kept-until-reset")
        assert len(sqs.list_queues().get("QueueUrls", [])) == 1
        server.reset()
        assert sqs.list_queues().get("QueueUrls", []) == []
    assert not server.running
    _assert_gone(pid)


async def test_async_context_manager() -> None:
    async with LocalAWS() as server:
        pid = server.pid
        assert pid is not None
        assert server.running
    assert not server.running
    _assert_gone(pid)


def test_startup_failure_raises_with_server_stderr() -> None:
    # 192.0.2.1 (TEST-NET-1) is not a local address, so binding fails without any network use.
    server = LocalAWS(host="192.0.2.1", startup_timeout=20)
    with pytest.raises(LocalAWSError, match="exited during startup") as info:
        server.start()
    stderr_tail = str(info.value).split("stderr ends with:", 1)[1]
    assert stderr_tail.strip()  # why the server failed, in its own words
    assert not server.running


# -- the SQS patch, in-process --------------------------------------------------------------


@pytest.fixture
def patched_moto() -> Iterator[None]:
    """Apply the patch in this process and undo it afterwards, if it was not already applied."""
    already = sqs_counter_patch_applied()
    apply_sqs_counter_patch()
    yield
    if not already:
        revert_sqs_counter_patch()


@pytest.mark.usefixtures("patched_moto")
def test_patch_applies_to_installed_moto() -> None:
    from moto.sqs.models import SQSBackend

    assert sqs_counter_patch_applied()
    apply_sqs_counter_patch()  # idempotent
    backend = SQSBackend(REGION, "123456789012")
    queue = backend.create_queue("patch-probe")
    assert queue.attributes["QueueArn"].endswith(":patch-probe")
    assert "ApproximateNumberOfMessages" not in queue.attributes  # computed only on request

    backend.send_message("patch-probe", "hello")
    everything = backend.get_queue_attributes("patch-probe", ["All"])
    assert everything["ApproximateNumberOfMessages"] == 1
    assert everything["VisibilityTimeout"] == 30
    [message] = backend.receive_message("patch-probe", 10, 0, LONG_TIMEOUT)
    counter = "ApproximateNumberOfMessagesNotVisible"
    assert backend.get_queue_attributes("patch-probe", [counter]) == {counter: 1}
    assert message.receipt_handle is not None
    backend.delete_message("patch-probe", message.receipt_handle)
    assert not queue.messages
    assert backend.get_queue_attributes("patch-probe", [counter]) == {counter: 0}


def test_patch_refuses_unexpected_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.sqs import models

    if sqs_counter_patch_applied():
        pytest.skip("patch already applied in this process")
    monkeypatch.setattr(models.Queue, "messages", [])  # no longer a property
    with pytest.raises(RuntimeError, match=r"moto \d+\.\d+.*Queue\.messages is not a property"):
        apply_sqs_counter_patch()
    assert not sqs_counter_patch_applied()


# -- SQS semantics over HTTP --------------------------------------------------------------------


def test_counters_stay_exact_with_thousands_of_messages(sqs: Any) -> None:
    url = _new_queue(sqs)
    _fill(sqs, url, 2000)  # quadratic without the patch: this alone would take about a minute
    assert _counts(sqs, url) == (2000, 0, 0)

    received = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=LONG_TIMEOUT
    )["Messages"]
    assert len(received) == 10
    assert _counts(sqs, url) == (1990, 10, 0)

    _fill(sqs, url, 3, DelaySeconds=LONG_TIMEOUT // 2)
    assert _counts(sqs, url) == (1990, 10, 3)

    _delete_all(sqs, url, received)
    assert _counts(sqs, url) == (1990, 0, 3)
    one = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert one["Attributes"] == {"ApproximateNumberOfMessages": "1990"}


def test_delete_keeps_moto_semantics(sqs: Any) -> None:
    url = _new_queue(sqs)
    _fill(sqs, url, 2)
    first = sqs.receive_message(QueueUrl=url, VisibilityTimeout=LONG_TIMEOUT)["Messages"][0]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])  # repeat: fine
    with pytest.raises(ClientError, match="ReceiptHandleIsInvalid"):
        sqs.delete_message(QueueUrl=url, ReceiptHandle="not-a-receipt-handle")
    other = _new_queue(sqs)
    second = sqs.receive_message(QueueUrl=url, VisibilityTimeout=LONG_TIMEOUT)["Messages"][0]
    with pytest.raises(ClientError, match="ReceiptHandleIsInvalid"):
        sqs.delete_message(QueueUrl=other, ReceiptHandle=second["ReceiptHandle"])
    assert _counts(sqs, url) == (0, 1, 0)


def test_visibility_timeout_and_delay_expire(sqs: Any) -> None:
    url = _new_queue(sqs)
    _fill(sqs, url, 1)
    _fill(sqs, url, 1, DelaySeconds=1)
    sqs.receive_message(QueueUrl=url, VisibilityTimeout=1)
    assert _counts(sqs, url) == (0, 1, 1)

    time.sleep(1.3)
    assert _counts(sqs, url) == (2, 0, 0)
    again = sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=10,
        VisibilityTimeout=LONG_TIMEOUT,
        MessageSystemAttributeNames=["ApproximateReceiveCount"],
    )["Messages"]
    receive_counts = sorted(m["Attributes"]["ApproximateReceiveCount"] for m in again)
    assert receive_counts == ["1", "2"]


def test_dead_letter_redrive(sqs: Any) -> None:
    dlq_url = _new_queue(sqs)
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])
    policy = {"deadLetterTargetArn": dlq_arn["Attributes"]["QueueArn"], "maxReceiveCount": "1"}
    url = _new_queue(sqs, RedrivePolicy=json.dumps(policy))
    sqs.send_message(QueueUrl=url, MessageBody="poison")

    first = sqs.receive_message(QueueUrl=url, VisibilityTimeout=0).get("Messages", [])
    assert [m["Body"] for m in first] == ["poison"]
    assert sqs.receive_message(QueueUrl=url, VisibilityTimeout=0).get("Messages", []) == []

    assert _counts(sqs, url) == (0, 0, 0)
    assert _counts(sqs, dlq_url) == (1, 0, 0)
    moved = sqs.receive_message(QueueUrl=dlq_url)["Messages"]
    assert [m["Body"] for m in moved] == ["poison"]


def test_fifo_groups_and_deduplication(sqs: Any) -> None:
    url = _new_queue(sqs, f"fifo-{uuid.uuid4().hex[:12]}.fifo", FifoQueue="true")
    for body in ("a1", "a2", "a1"):  # the second "a1" is a duplicate
        sqs.send_message(
            QueueUrl=url, MessageBody=body, MessageGroupId="a", MessageDeduplicationId=body
        )
    assert _counts(sqs, url) == (2, 0, 0)

    first = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in first] == ["a1", "a2"]
    assert sqs.receive_message(QueueUrl=url).get("Messages", []) == []  # group in flight
    _delete_all(sqs, url, first)
    assert _counts(sqs, url) == (0, 0, 0)


# -- atomic writes -------------------------------------------------------------------------------


def test_a_conditional_put_has_one_winner() -> None:
    writers = 32
    with LocalAWS() as server:
        ddb = _client("dynamodb", server.endpoint_url, pool=writers)
        ddb.create_table(
            TableName="race",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        start = threading.Barrier(writers)

        def put(writer: int) -> bool:
            start.wait(timeout=30)
            try:
                ddb.put_item(
                    TableName="race",
                    Item={"pk": {"S": "same"}, "writer": {"N": str(writer)}},
                    ConditionExpression="attribute_not_exists(pk)",
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                    return False
                raise
            return True

        with ThreadPoolExecutor(max_workers=writers) as pool:
            won = list(pool.map(put, range(writers)))
        assert won.count(True) == 1
        item = ddb.get_item(TableName="race", Key={"pk": {"S": "same"}}, ConsistentRead=True)
        assert item["Item"]["writer"] == {"N": str(won.index(True))}


def _racing_counter_adds(endpoint: str, writers: int, adds: int) -> int:
    """``writers`` threads each ADD 1 to one counter ``adds`` times; returns the final count."""
    ddb = _client("dynamodb", endpoint, pool=writers)
    table = f"counter-{uuid.uuid4().hex[:8]}"
    ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    start = threading.Barrier(writers)

    def add(_: int) -> None:
        start.wait(timeout=30)
        for _ in range(adds):
            ddb.update_item(
                TableName=table,
                Key={"pk": {"S": "c"}},
                UpdateExpression="ADD n :one",
                ExpressionAttributeValues={":one": {"N": "1"}},
            )

    with ThreadPoolExecutor(max_workers=writers) as pool:
        list(pool.map(add, range(writers)))
    item = ddb.get_item(TableName=table, Key={"pk": {"S": "c"}}, ConsistentRead=True)["Item"]
    return int(item["n"]["N"])


def test_the_default_server_loses_no_counter_update() -> None:
    """DynamoDB's writes are atomic by default, as on AWS (moto's threaded server alone lost
    concurrent ADDs: the demo's counter stopped short of its total)."""
    with LocalAWS() as server:
        assert _racing_counter_adds(server.endpoint_url, writers=16, adds=25) == 16 * 25


def test_a_long_poll_on_the_default_server_holds_up_no_write() -> None:
    with LocalAWS() as server:
        sqs = _client("sqs", server.endpoint_url)
        ddb = _client("dynamodb", server.endpoint_url)
        url = sqs.create_queue(QueueName=f"poll-{uuid.uuid4().hex[:8]}")["QueueUrl"]
        polled = threading.Event()

        def poll() -> None:
            sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5)
            polled.set()

        poller = threading.Thread(target=poll)
        poller.start()
        time.sleep(0.5)  # the poll is waiting on the server
        ddb.list_tables()
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
        answered_during_the_poll = not polled.is_set()
        poller.join()
        assert answered_during_the_poll


def test_the_app_keeps_writes_and_sqs_under_separate_locks() -> None:
    from sqs_cluster.local.server import SerialisedApp, signing_service

    def signed(service: str) -> dict[str, Any]:
        scope = f"testing/20261205/us-east-1/{service}/aws4_request"
        return {"HTTP_AUTHORIZATION": f"AWS4-HMAC-SHA256 Credential={scope}, Signature=x"}

    assert signing_service(signed("sqs")) == "sqs"
    assert signing_service(signed("dynamodb")) == "dynamodb"
    assert signing_service({}) is None
    inside = threading.Event()
    release = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ.get("block"):
            inside.set()
            release.wait(timeout=10)
        start_response("200 OK", [])
        return [b"ok"]

    wrapped = SerialisedApp(app)
    holder = threading.Thread(target=lambda: wrapped({**signed("dynamodb"), "block": 1}, print))
    holder.start()
    assert inside.wait(timeout=10)  # a DynamoDB request holds the write lock
    assert wrapped(signed("sqs"), lambda *a: None) == [b"ok"]  # SQS does not wait for it
    waiting = threading.Thread(target=lambda: wrapped(signed("s3"), lambda *a: None))
    waiting.start()
    waiting.join(timeout=0.2)
    s3_waited = waiting.is_alive()  # S3 waits for the lock
    release.set()
    holder.join()
    waiting.join()
    assert s3_waited


def test_a_message_goes_to_one_of_many_concurrent_receivers() -> None:
    """SQS requests are atomic too: moto alone could hand one message to two receivers."""
    with LocalAWS() as server:
        sqs = _client("sqs", server.endpoint_url, pool=16)
        url = sqs.create_queue(QueueName=f"one-{uuid.uuid4().hex[:8]}")["QueueUrl"]
        for n in range(20):
            sqs.send_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "MessageBody": f"{n}-{i}"} for i in range(10)],
            )
        start = threading.Barrier(16)

        def drain(_: int) -> list[str]:
            start.wait(timeout=30)
            got: list[str] = []
            while True:
                messages = sqs.receive_message(
                    QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=300
                ).get("Messages", [])
                if not messages:
                    return got
                got.extend(m["MessageId"] for m in messages)

        with ThreadPoolExecutor(max_workers=16) as pool:
            received = [m for got in pool.map(drain, range(16)) for m in got]
        assert len(received) == 200
        assert len(set(received)) == 200  # no message handed out twice


def test_serialised_app_runs_one_request_at_a_time() -> None:
    from sqs_cluster.local.server import SerialisedApp

    guard = threading.Lock()
    active = peak = 0

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        nonlocal active, peak
        with guard:
            active += 1
            peak = max(peak, active)
        start_response("200 OK", [])
        return body()

    def body() -> Iterator[bytes]:
        nonlocal active
        try:
            for chunk in (b"a", b"b"):
                time.sleep(0.005)
                yield chunk
        finally:
            with guard:
                active -= 1

    serialised = SerialisedApp(app)

    def request(_: int) -> bytes:
        return b"".join(serialised({}, lambda *args: None))

    with ThreadPoolExecutor(max_workers=8) as pool:
        bodies = list(pool.map(request, range(16)))
    assert bodies == [b"ab"] * 16
    assert peak == 1  # the body is read to the end before the next request starts


# -- measurement --------------------------------------------------------------------------------


@pytest.mark.slow
def test_10000_messages_fill_with_exact_counts(
    sqs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Prints how long 10,000 messages take to send (not asserted: machines differ)."""
    url = _new_queue(sqs)
    started = time.perf_counter()
    _fill(sqs, url, 10_000)
    elapsed = time.perf_counter() - started
    with capsys.disabled():
        print(f"\nsent 10,000 SQS messages in batches of 10 in {elapsed:.1f} s")
    assert _counts(sqs, url) == (10_000, 0, 0)


def test_provision_makes_a_ready_config_and_queue() -> None:
    with LocalAWS() as aws:
        made = aws.provision(prefix="prov")
        assert made.config.endpoint_url == aws.endpoint_url
        assert made.queue_url is not None and made.dlq_url is not None
        sqs = boto3.client("sqs", endpoint_url=aws.endpoint_url, region_name="us-east-1")
        attrs = sqs.get_queue_attributes(QueueUrl=made.queue_url, AttributeNames=["All"])
        assert json.loads(attrs["Attributes"]["RedrivePolicy"])["maxReceiveCount"] in (3, "3")
        ddb = boto3.client("dynamodb", endpoint_url=aws.endpoint_url, region_name="us-east-1")
        ttl = ddb.describe_time_to_live(TableName=made.config.table)
        assert ttl["TimeToLiveDescription"]["AttributeName"] == "expiresAt"
        s3 = boto3.client("s3", endpoint_url=aws.endpoint_url, region_name="us-east-1")
        assert made.config.bucket is not None
        s3.head_bucket(Bucket=made.config.bucket)
