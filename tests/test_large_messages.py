"""Large messages: 1 MiB inline, larger ones through S3 as AWS's extended clients do.

Against the local server over HTTP. The server counts a body's size in characters; these
tests use multi-byte text where bytes and characters differ, and check what was sent.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from sqs_cluster import Config, MessageClient, PayloadMissingError, Status

from .conftest import REGION, Queue, receive_event

pytestmark = pytest.mark.asyncio

POINTER = "software.amazon.payloadoffloading.PayloadS3Pointer"
LEGACY_POINTER = "com.amazon.sqs.javamessaging.MessageS3Pointer"


class Seen:
    """A handler that remembers the bodies it got, and fails while ``failing``."""

    def __init__(self, failing: bool = False) -> None:
        self.bodies: list[Any] = []
        self.failing = failing

    def __call__(self, message: Any) -> None:
        self.bodies.append(message.task if message.is_task else message.body)
        if self.failing:
            raise RuntimeError("not yet")


def object_exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except s3.exceptions.ClientError:
        return False
    return True


def pointer_of(record: dict[str, Any]) -> tuple[str, str]:
    kind, where = json.loads(record["body"])
    assert kind == POINTER
    return where["s3BucketName"], where["s3Key"]


@pytest.fixture(scope="session")
def s3(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION)


async def test_a_one_megabyte_body_goes_inline_and_its_record_keeps_no_copy(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    body = "x" * 1_000_000
    key = await client.send_message(queue.url, body)
    event = receive_event(sqs, queue.url)
    raw = event["Records"][0]
    assert raw["body"] == body and "ExtendedPayloadSize" not in raw["messageAttributes"]
    seen = Seen()
    assert await client.safe_process_batch(event, seen) == {"batchItemFailures": []}
    assert seen.bodies == [body]
    record = await client.get_message_record(key, consistent_read=True)
    assert record.status is Status.COMPLETE and record.body is None
    assert (record.body_bytes, record.body_at) == (1_000_000, "sqs")
    assert record.body_sha256 is not None and len(record.body_sha256) == 64


async def test_a_three_megabyte_body_goes_through_s3_and_is_gone_after_success(
    client: MessageClient, queue: Queue, sqs: Any, s3: Any
) -> None:
    body = {"blob": "y" * 3_000_000}
    key = await client.send_message(queue.url, body)
    event = receive_event(sqs, queue.url)
    raw = event["Records"][0]
    assert len(raw["body"]) < 300
    bucket, object_key = pointer_of(raw)
    size = raw["messageAttributes"]["ExtendedPayloadSize"]
    assert int(size["stringValue"]) == len(json.dumps(body, separators=(",", ":")))
    assert object_exists(s3, bucket, object_key)
    record = await client.get_message_record(key, consistent_read=True, load_body=True)
    assert json.loads(record.body or "") == body  # loaded lazily from where the record says
    seen = Seen()
    assert await client.safe_process_batch(event, seen) == {"batchItemFailures": []}
    assert seen.bodies == [body]
    assert not object_exists(s3, bucket, object_key)


async def test_multibyte_text_over_the_limit_in_bytes_is_not_sent_inline(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    text = "é" * 600_000  # 600,000 characters, 1,200,000 bytes in UTF-8
    await client.send_message(queue.url, text)
    event = receive_event(sqs, queue.url)
    pointer_of(event["Records"][0])  # a pointer, not the text
    seen = Seen()
    assert await client.safe_process_batch(event, seen) == {"batchItemFailures": []}
    assert seen.bodies == [text]


async def test_the_payload_is_kept_after_a_failure_and_deleted_after_the_success(
    client: MessageClient, queue: Queue, sqs: Any, s3: Any
) -> None:
    await client.send_message(queue.url, "z" * 1_100_000)
    event = receive_event(sqs, queue.url)
    record = event["Records"][0]
    bucket, object_key = pointer_of(record)
    failed = await client.safe_process_batch(event, Seen(failing=True))
    assert len(failed["batchItemFailures"]) == 1
    assert object_exists(s3, bucket, object_key)  # a retry needs it
    sqs.change_message_visibility(
        QueueUrl=queue.url, ReceiptHandle=record["receiptHandle"], VisibilityTimeout=0
    )
    event = receive_event(sqs, queue.url)
    assert await client.safe_process_batch(event, Seen()) == {"batchItemFailures": []}
    assert not object_exists(s3, bucket, object_key)
    # a late duplicate of the processed message finds its payload gone: skipped, not failed
    seen = Seen()
    assert await client.safe_process_batch(event, seen) == {"batchItemFailures": []}
    assert seen.bodies == []


async def test_a_pointer_to_a_missing_object_fails_that_message_alone(
    client: MessageClient, queue: Queue, sqs: Any, caplog: pytest.LogCaptureFixture
) -> None:
    sqs.send_message(QueueUrl=queue.url, MessageBody="plain")
    sqs.send_message(
        QueueUrl=queue.url,
        MessageBody=json.dumps([POINTER, {"s3BucketName": "nowhere", "s3Key": "gone"}]),
        MessageAttributes={"ExtendedPayloadSize": {"DataType": "Number", "StringValue": "9"}},
    )
    event = receive_event(sqs, queue.url, max_messages=2)
    pointer_id = next(r["messageId"] for r in event["Records"] if r["body"] != "plain")
    seen = Seen()
    with caplog.at_level(logging.WARNING, logger="sqs_cluster"):
        response = await client.safe_process_batch(event, seen)
    assert response == {"batchItemFailures": [{"itemIdentifier": pointer_id}]}
    assert seen.bodies == ["plain"]
    assert "s3://nowhere/gone could not be read" in caplog.text


async def test_a_legacy_pointer_is_resolved(
    base_config: Config, client: MessageClient, queue: Queue, sqs: Any, s3: Any
) -> None:
    bucket = base_config.bucket
    s3.put_object(Bucket=bucket, Key="legacy/one", Body=b"from an old sender")
    sqs.send_message(
        QueueUrl=queue.url,
        MessageBody=json.dumps([LEGACY_POINTER, {"s3BucketName": bucket, "s3Key": "legacy/one"}]),
        MessageAttributes={"SQSLargePayloadSize": {"DataType": "Number", "StringValue": "18"}},
    )
    event = receive_event(sqs, queue.url)
    message = await client.resolve_sqs_record(event["Records"][0])
    assert message.body == "from an old sender" and message.payload is not None
    assert "SQSLargePayloadSize" not in message.message_attributes
    assert client.read_sqs_record(event["Records"][0]).payload_pending


async def test_resolving_a_missing_payload_raises_a_clear_error(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    sqs.send_message(
        QueueUrl=queue.url,
        MessageBody=json.dumps([POINTER, {"s3BucketName": "nowhere", "s3Key": "k"}]),
        MessageAttributes={"ExtendedPayloadSize": {"DataType": "Number", "StringValue": "1"}},
    )
    event = receive_event(sqs, queue.url)
    with pytest.raises(PayloadMissingError, match=r"s3://nowhere/k could not be read"):
        await client.resolve_sqs_record(event["Records"][0])


async def test_a_cluster_with_an_offloaded_task_completes(
    client: MessageClient, queue: Queue, sqs: Any, s3: Any
) -> None:
    big = {"n": 1, "blob": "ü" * 700_000}  # 1.4 MB in UTF-8
    key = await client.create_message_cluster(queue.url, [{"n": 0}, big], omit_globals=True)
    event = receive_event(sqs, queue.url, max_messages=2)
    pointers = [r for r in event["Records"] if r["body"].startswith(f'["{POINTER}"')]
    assert len(pointers) == 1
    seen = Seen()
    assert await client.safe_process_batch(event, seen) == {"batchItemFailures": []}
    assert sorted(seen.bodies, key=lambda t: t["n"]) == [{"n": 0}, big]
    cluster = await client.get_message_cluster(key, consistent_read=True)
    assert (cluster.status, cluster.completed) == (Status.COMPLETE, 2)
    assert not object_exists(s3, *pointer_of(pointers[0]))


async def test_a_batch_of_large_messages_is_split_within_the_batch_limit(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    bodies = [str(i) * 400_000 for i in range(4)]  # 1.6 MB in all: more than one batch call
    before = client.request_counts.get("sqs.SendMessageBatch", 0)
    await client.send_message_batch(queue.url, bodies)
    assert client.request_counts["sqs.SendMessageBatch"] - before >= 2
    event = receive_event(sqs, queue.url, max_messages=4)
    seen = Seen()
    assert await client.safe_process_batch(event, seen) == {"batchItemFailures": []}
    assert sorted(seen.bodies) == bodies


EXTENDED_CLIENT = textwrap.dedent(
    """
    import json, sys
    import boto3
    import sqs_extended_client  # noqa: F401  (patches boto3's session: a process of its own)

    endpoint, queue, bucket, mode = sys.argv[1:5]
    sqs = boto3.session.Session().client("sqs", endpoint_url=endpoint, region_name="us-east-1")
    sqs.large_payload_support = bucket
    sqs.delete_payload_from_s3 = True
    if mode == "send":
        sqs.send_message(QueueUrl=queue, MessageBody="a" * 400_000)
    else:
        got = sqs.receive_message(QueueUrl=queue, MessageAttributeNames=["All"], WaitTimeSeconds=1)
        print(json.dumps([m["Body"] for m in got.get("Messages", [])]))
    """
)


def extended_client(endpoint: str, queue: str, bucket: str, mode: str) -> str:
    """Run AWS's Python extended client in a child process (it patches boto3 globally)."""
    done = subprocess.run(
        [sys.executable, "-c", EXTENDED_CLIENT, endpoint, queue, bucket, mode],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={
            **os.environ,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": endpoint,  # its S3 client takes no endpoint of its own
        },
    )
    return done.stdout


async def test_a_message_from_awss_extended_client_is_consumed(
    base_config: Config, client: MessageClient, queue: Queue, sqs: Any
) -> None:
    assert base_config.endpoint_url and base_config.bucket
    extended_client(base_config.endpoint_url, queue.url, base_config.bucket, "send")
    event = receive_event(sqs, queue.url)
    assert "ExtendedPayloadSize" in event["Records"][0]["messageAttributes"]
    seen = Seen()
    assert await client.safe_process_batch(event, seen) == {"batchItemFailures": []}
    assert seen.bodies == ["a" * 400_000]


async def test_our_offloaded_message_is_read_by_awss_extended_client(
    base_config: Config, client: MessageClient, queue: Queue
) -> None:
    assert base_config.endpoint_url and base_config.bucket
    await client.send_message(queue.url, "b" * 1_200_000)
    out = extended_client(base_config.endpoint_url, queue.url, base_config.bucket, "receive")
    assert json.loads(out) == ["b" * 1_200_000]
