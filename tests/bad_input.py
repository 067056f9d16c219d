"""The bad input catalogue: each case raises a specific error naming the field and the limit,
and nothing is written (reads the validation needs, such as the queue's attributes, are fine).

Most cases fail before any request, and run without a server (tests/unit/test_bad_input.py);
the cases marked ``needs_server=True`` need one: a missing or foreign resource, or a check made
after reading the queue or the cluster (tests/test_bad_input.py). The catalogue is here, once.

Rows marked ``xfail`` are cases the library does not handle that way yet: the reason says what
happens instead. They are strict, so a fix shows up as XPASS and the mark can go.
"""

from __future__ import annotations

import inspect
import json
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiobotocore.session import AioSession

from sqs_cluster import (
    Backoff,
    Config,
    ConfigError,
    MalformedEventError,
    Message,
    MessageClient,
    RecordKey,
    ResourceMissingError,
    RetryAfter,
    ValidationError,
    WorkerOptions,
)

from .conftest import REGION, Queue

READS = frozenset(
    {
        "sqs.GetQueueAttributes",
        "sqs.GetQueueUrl",
        "dynamodb.GetItem",
        "dynamodb.BatchGetItem",
        "dynamodb.Query",
        "dynamodb.DescribeTable",
        "s3.GetObject",
        "s3.HeadObject",
        "s3.HeadBucket",
    }
)
"""Operations a rejected call may still have issued: they change nothing."""

ACCOUNT = "123456789012"
MISSING_QUEUE = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/no-such-queue-4f1c"
FOREIGN_TABLE = "another-apps-table-5c0d"
"""A table of another application (key ``id``), created by the ``foreign_table`` fixture."""


NINE = {f"a{i}": {"DataType": "String", "StringValue": "v"} for i in range(9)}
"""Nine user attributes: the most a message can carry inline, one too many offloaded."""


def deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


@dataclass
class Ctx:
    """What a case may use: an open client, a queue, an existing cluster, more clients."""

    client: MessageClient
    queue: Queue
    cluster: RecordKey
    config: Config
    session: AioSession
    opened: list[MessageClient] = field(default_factory=list)

    async def other(self, **changes: Any) -> MessageClient:
        """A client on a changed configuration (closed after the case; its requests count)."""
        client = MessageClient(self.config.with_changes(**changes), session=self.session)
        await client.__aenter__()
        self.opened.append(client)
        return client

    def arn(self) -> str:
        return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{self.queue.url.rsplit('/', 1)[1]}"


def sqs_record(ctx: Ctx, body: Any = "{}", **overrides: Any) -> dict[str, Any]:
    """A Lambda SQS record as Lambda builds it (no AWS call)."""
    record: dict[str, Any] = {
        "messageId": "059f36b4-87a3-44ab-83d2-661975830a7d",
        "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
        "body": body if isinstance(body, str) else json.dumps(body),
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": ctx.arn(),
        "awsRegion": REGION,
    }
    record.update(overrides)
    return record


def key_attribute(p_key: str, r_key: str) -> dict[str, Any]:
    value = json.dumps({"pKey": p_key, "rKey": r_key})
    return {"sqsClusterKey": {"stringValue": value, "dataType": "String"}}


def task_record(ctx: Ctx, body_p_key: str, **body: Any) -> dict[str, Any]:
    """A task of cluster ``ctx.cluster`` whose body names ``body_p_key`` as its cluster."""
    own = ctx.cluster
    task_body = {
        "pKey": body_p_key,
        "rKey": own.r_key,
        "task": 1,
        "type": "task",
        "index": 0,
        "shards": 1,
    }
    task_body.update(body)
    return sqs_record(ctx, task_body, messageAttributes=key_attribute(f"{own.p_key}.0", own.r_key))


S3_EVENT = {
    "Records": [
        {
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": REGION,
            "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "b"}, "object": {"key": "k"}},
        }
    ]
}
SNS_EVENT = {
    "Records": [
        {
            "EventVersion": "1.0",
            "EventSource": "aws:sns",
            "EventSubscriptionArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:topic:1",
            "Sns": {"Type": "Notification", "MessageId": "m", "Message": "{}"},
        }
    ]
}
KINESIS_EVENT = {
    "Records": [
        {
            "eventSource": "aws:kinesis",
            "eventID": "shardId-000000000006:4954",
            "eventSourceARN": f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/s",
            "kinesis": {"data": "e30=", "partitionKey": "1"},
        }
    ]
}
EVENTBRIDGE_EVENT = {"version": "0", "detail-type": "Scheduled Event", "source": "aws.events"}


def noop(message: Any) -> None:
    return None


Call = Callable[[Ctx], Any]


DID_NOT_RAISE = pytest.fail.Exception


@dataclass(frozen=True)
class Case:
    """A row of the catalogue, and whether it needs the server."""

    param: Any
    needs_server: bool


def case(
    call: Call,
    error: type[BaseException],
    *needles: str,
    id: str,
    xfail: str | None = None,
    now: type[BaseException] = DID_NOT_RAISE,
    needs_server: bool = False,
) -> Case:
    """A row. ``xfail`` says what the library does instead, ``now`` what that raises here."""
    marks = [pytest.mark.xfail(strict=True, reason=xfail, raises=now)] if xfail else []
    return Case(pytest.param(call, error, needles, id=id, marks=marks), needs_server)


def cases(*, needs_server: bool) -> list[Any]:
    """The rows that need the server, or those that do not (pytest params)."""
    return [c.param for c in CASES if c.needs_server is needs_server]


CASES = [
    # -- wrong types and shapes ----------------------------------------------------------------
    case(
        lambda c: c.client.send_message_batch(c.queue.url, "abc"),
        ValidationError,
        "entries",
        "list",
        id="entries-a-string",
    ),
    case(
        lambda c: c.client.send_message_batch(c.queue.url, None),  # type: ignore[arg-type]
        ValidationError,
        "entries",
        "list",
        id="entries-none",
    ),
    case(
        lambda c: c.client.create_message_cluster(c.queue.url, []),
        ValidationError,
        "tasks",
        "at least one task",
        id="tasks-empty",
    ),
    case(
        lambda c: c.client.create_message_cluster(c.queue.url, {"a": 1}),
        ValidationError,
        "tasks",
        "list",
        id="tasks-a-mapping",
    ),
    case(
        lambda c: c.client.create_message_cluster(c.queue.url, None),  # type: ignore[arg-type]
        ValidationError,
        "tasks",
        "list",
        id="tasks-none",
    ),
    case(
        lambda c: c.client.update_message_record(c.cluster, ["meta"]),  # type: ignore[arg-type]
        ValidationError,
        "changes",
        "mapping",
        id="changes-not-a-mapping",
        needs_server=True,
    ),
    case(
        lambda c: c.client.update_message_record(c.cluster, {"status": "COMPLETE"}),
        ValidationError,
        "changes.status",
        "managed by sqs-cluster",
        id="changes-reserved-field",
        needs_server=True,
    ),
    case(
        lambda c: c.client.send_message(c.queue.url, "x", Foo=1),
        ValidationError,
        "sqs_params.Foo",
        "not a SendMessage parameter",
        id="unknown-sqs-parameter",
    ),
    case(
        lambda c: c.client.create_message_cluster(c.queue.url, [1], tolerated_failures=True),
        ValidationError,
        "tolerated_failures",
        "count",
        id="tolerated-failures-bool",
        needs_server=True,
    ),
    case(
        lambda c: c.client.get_message_record(42),  # type: ignore[arg-type]
        ValidationError,
        "key",
        "pKey",
        id="record-key-an-int",
    ),
    case(
        lambda c: c.client.safe_process_batch(
            {"Records": [sqs_record(c)]},
            None,  # type: ignore[arg-type]
        ),
        ValidationError,
        "handler",
        "callable",
        id="handler-not-callable",
    ),
    case(
        lambda c: c.client.safe_process_batch(
            {"Records": [sqs_record(c)]},
            noop,
            retry=30,  # type: ignore[arg-type]
        ),
        ValidationError,
        "retry",
        "Backoff",
        id="retry-a-number",
    ),
    case(
        lambda c: c.client.safe_process_batch(
            {"Records": [sqs_record(c)]}, noop, retry=Backoff(base_seconds=0)
        ),
        ValidationError,
        "retry.base_seconds",
        "> 0",
        "43200",
        id="retry-base-zero",
    ),
    case(
        lambda c: Backoff(base_seconds=10, max_seconds=5),
        ValidationError,
        "retry.max_seconds",
        ">= base_seconds",
        id="retry-max-below-base",
    ),
    case(
        lambda c: Backoff(max_seconds=86400),
        ValidationError,
        "retry.max_seconds",
        "<= 43200",
        id="retry-max-beyond-sqs",
    ),
    case(
        lambda c: Backoff(on="TimeoutError"),  # type: ignore[arg-type]
        ValidationError,
        "retry.on",
        "exception class",
        id="retry-on-a-string",
    ),
    case(
        lambda c: RetryAfter(-1),
        ValidationError,
        "RetryAfter.seconds",
        ">= 0",
        id="retry-after-negative",
    ),
    case(
        lambda c: RetryAfter(50_000),
        ValidationError,
        "RetryAfter.seconds",
        "<= 43200",
        id="retry-after-beyond-sqs",
    ),
    case(
        lambda c: WorkerOptions(retry=Backoff(on=TimeoutError)),
        ValidationError,
        "retry.on",
        "the worker sees which messages failed, not why",
        id="worker-retry-on",
    ),
    case(
        lambda c: c.client.safe_process_batch(
            {"Records": [sqs_record(c)]}, noop, deadline_margin_seconds=-1
        ),
        ValidationError,
        "deadline_margin_seconds",
        ">= 0",
        id="deadline-margin-negative",
    ),
    case(
        lambda c: c.client.safe_process_batch(
            {"Records": [sqs_record(c)]},
            noop,
            deadline_margin_seconds="5",  # type: ignore[arg-type]
        ),
        ValidationError,
        "deadline_margin_seconds",
        "number of seconds",
        id="deadline-margin-a-string",
    ),
    case(
        lambda c: c.client.safe_process_batch(
            {"Records": [sqs_record(c)]},
            noop,
            raise_on_entire_batch_failure="yes",  # type: ignore[arg-type]
        ),
        ValidationError,
        "raise_on_entire_batch_failure",
        "True or False",
        id="raise-on-entire-batch-failure-a-string",
    ),
    case(
        lambda c: c.client.safe_process_batch(
            {"Records": [sqs_record(c)]},
            noop,
            on_failure=42,  # type: ignore[arg-type]
        ),
        ValidationError,
        "on_failure",
        "callable",
        id="on-failure-not-callable",
    ),
    # -- empty, oversized and non-JSON values --------------------------------------------------
    case(
        lambda c: c.client.send_message(c.queue.url, "x" * 1_100_000, MessageAttributes=NINE),
        ValidationError,
        "body.message_attributes",
        "at most 8",
        id="body-offloaded-with-nine-attributes",
    ),
    case(
        lambda c: c.client.create_message_cluster(c.queue.url, [1, "x" * 2_000_000, {1}]),
        ValidationError,
        "tasks[2]",
        "JSON",
        id="task-not-json-beside-an-oversized-one",
        needs_server=True,
    ),
    case(
        lambda c: c.client.send_message_batch(c.queue.url, [1, {2, 3}]),
        ValidationError,
        "entries[1]",
        "JSON",
        id="entry-a-set",
    ),
    case(
        lambda c: c.client.send_message(c.queue.url, b"raw bytes"),
        ValidationError,
        "body",
        "JSON",
        id="body-bytes",
    ),
    case(
        lambda c: c.client.send_message(c.queue.url, {"x": float("inf")}),
        ValidationError,
        "body",
        "inf",
        id="body-infinity",
    ),
    case(
        lambda c: c.client.create_message_cluster(c.queue.url, [1, float("nan")]),
        ValidationError,
        "tasks[1]",
        "nan",
        id="task-nan",
        needs_server=True,
    ),
    case(
        lambda c: c.client.create_message_cluster(c.queue.url, [deep(100)]),
        ValidationError,
        "tasks[0]",
        "64 levels",
        id="task-deep-nesting",
        needs_server=True,
    ),
    case(
        lambda c: c.client.send_message_batch(c.queue.url, [1, 2, Message(body=deep(70))]),
        ValidationError,
        "entries[2].body",
        "64 levels",
        id="entry-deep-nesting",
    ),
    case(
        lambda c: c.client.create_message_cluster(c.queue.url, [b"x"]),
        ValidationError,
        "tasks[0]",
        "JSON",
        id="task-bytes",
        needs_server=True,
    ),
    case(
        lambda c: c.client.send_message(c.queue.url, "x", meta={1, 2}),
        ValidationError,
        "meta",
        "JSON",
        id="meta-a-set",
    ),
    case(
        lambda c: c.client.create_message_cluster(c.queue.url, [1], meta="m" * 300_001),
        ValidationError,
        "meta",
        "300000",
        id="cluster-meta-oversized",
    ),
    case(
        lambda c: c.client.send_message_batch(c.queue.url, [1, 2], meta="m" * 420_000),
        ValidationError,
        "meta",
        "bytes",
        id="message-meta-oversized",
    ),
    case(
        lambda c: c.client.update_message_record(c.cluster, {"meta": "m" * 310_000}),
        ValidationError,
        "changes.meta",
        "300000 bytes",
        id="update-meta-oversized",
        needs_server=True,
    ),
    case(
        lambda c: c.client.update_message_record(
            c.cluster, {"a": "x" * 200_000, "b": "y" * 200_000}
        ),
        ValidationError,
        "changes",
        "380000 bytes",
        id="update-own-fields-oversized",
        needs_server=True,
    ),
    case(
        lambda c: c.client.create_message_cluster(c.queue.url, [1], globals={"a": {1, 2}}),
        ValidationError,
        "globals",
        "JSON",
        id="globals-a-set",
    ),
    case(
        lambda c: c.client.create_message_cluster(c.queue.url, [1], globals=float("nan")),
        ValidationError,
        "globals",
        "nan",
        id="globals-nan",
    ),
    case(
        lambda c: c.client.create_message_cluster(
            c.queue.url, [1], globals={"blob": "g" * (11 * 1024 * 1024)}
        ),
        ValidationError,
        "globals",
        "bytes",
        id="globals-oversized",
    ),
    case(
        lambda c: c.client.update_message_cluster_globals(c.cluster, {"s": {1}}),
        ValidationError,
        "globals",
        "JSON",
        id="globals-update-a-set",
    ),
    case(
        lambda c: c.client.update_message_cluster_globals(c.cluster, lambda g: b"bytes"),
        ValidationError,
        "globals",
        "JSON",
        id="globals-function-returns-bytes",
        needs_server=True,
    ),
    case(
        lambda c: c.client.send_message(c.queue.url, "x", DelaySeconds=901),
        ValidationError,
        "DelaySeconds",
        "900",
        id="delay-seconds-over-900",
    ),
    case(
        lambda c: c.client.send_message(
            c.queue.url,
            "x",
            MessageAttributes={
                f"a{i}": {"DataType": "String", "StringValue": "v"} for i in range(10)
            },
        ),
        ValidationError,
        "message_attributes",
        "at most 9",
        id="ten-message-attributes",
    ),
    case(
        lambda c: c.client.send_message(
            c.queue.url,
            "x",
            MessageAttributes={"sqsClusterKey": {"DataType": "String", "StringValue": "v"}},
        ),
        ValidationError,
        "message_attributes",
        "reserved",
        id="reserved-message-attribute",
    ),
    # -- ids ------------------------------------------------------------------------------------
    case(
        lambda c: c.client.send_message(c.queue.url, "x", idempotency_key=""),
        ValidationError,
        "idempotency_key",
        "non-empty string",
        id="idempotency-key-empty",
    ),
    case(
        lambda c: c.client.send_message(c.queue.url, "x", idempotency_key="k" * 1025),
        ValidationError,
        "idempotency_key",
        "at most 1024",
        id="idempotency-key-too-long",
    ),
    case(
        lambda c: c.client.send_message_batch(
            c.queue.url, [Message("a", idempotency_key="k"), Message("b", idempotency_key="k")]
        ),
        ValidationError,
        "entries[1].idempotency_key",
        "entries[0]",
        id="idempotency-key-twice-in-a-batch",
    ),
    case(
        lambda c: c.client.create_message_cluster(c.queue.url, [1], cluster_id="bad id!"),
        ValidationError,
        "cluster_id",
        "1-64 characters",
        id="cluster-id-bad-characters",
    ),
    case(
        lambda c: c.client.create_message_cluster(c.queue.url, [1], cluster_id="a" * 65),
        ValidationError,
        "cluster_id",
        "1-64 characters",
        id="cluster-id-too-long",
    ),
    case(
        lambda c: c.client.create_message_cluster(c.queue.url, [1], cluster_id="../other"),
        ValidationError,
        "cluster_id",
        "[A-Za-z0-9_-]",
        id="cluster-id-path",
    ),
    case(
        lambda c: c.client.create_message_cluster(c.queue.url, [1], tolerated_failures="150%"),
        ValidationError,
        "tolerated_failures",
        "'100%'",
        id="tolerated-failures-over-100-percent",
        needs_server=True,
    ),
    case(
        lambda c: c.client.create_message_cluster(c.queue.url, [1], tolerated_failures=-1),
        ValidationError,
        "tolerated_failures",
        ">= 0",
        id="tolerated-failures-negative",
        needs_server=True,
    ),
    case(
        lambda c: c.client.get_message_record({"pKey": "users#1", "rKey": "profile"}),
        ValidationError,
        "key",
        "SQSMessage$",
        id="record-key-outside-key-space",
    ),
    case(
        lambda c: c.client.get_message_cluster("users#1"),
        ValidationError,
        "key",
        "SQSMessage$",
        id="cluster-key-outside-key-space",
    ),
    # -- queue URLs and ARNs -------------------------------------------------------------------
    case(
        lambda c: c.client.send_message("my-queue", "x"),
        ValidationError,
        "queue_url",
        "queue URL",
        id="queue-url-a-name",
    ),
    case(
        lambda c: c.client.send_message_batch(f"https://sqs.{REGION}.amazonaws.com/", [1]),
        ValidationError,
        "queue_url",
        "<account>/<name>",
        id="queue-url-without-name",
    ),
    case(
        lambda c: c.client.create_message_cluster(42, [1]),  # type: ignore[arg-type]
        ValidationError,
        "queue_url",
        "42",
        id="queue-url-an-int",
    ),
    case(
        lambda c: c.client.create_message_cluster(MISSING_QUEUE, [1]),
        ResourceMissingError,
        "queue_url",
        "no queue",
        id="queue-missing-cluster",
        needs_server=True,
    ),
    case(
        lambda c: c.client.send_message_batch(MISSING_QUEUE, [1, 2]),
        ResourceMissingError,
        "queue_url",
        "no queue",
        id="queue-missing-batch",
        needs_server=True,
    ),
    case(
        lambda c: c.client.safe_process_batch(
            {"Records": [sqs_record(c, eventSourceARN=f"arn:aws:sns:{REGION}:{ACCOUNT}:t")]}, noop
        ),
        MalformedEventError,
        "event.Records[0].eventSourceARN",
        "arn:aws:sqs",
        id="arn-of-an-sns-topic",
    ),
    case(
        lambda c: c.client.read_sqs_record(sqs_record(c, eventSourceARN="queue-name")),
        MalformedEventError,
        "eventSourceARN",
        "arn:aws:sqs:<region>:<account>:<queue>",
        id="arn-garbage",
    ),
    # -- events from other sources -------------------------------------------------------------
    case(
        lambda c: c.client.safe_process_batch(S3_EVENT, noop),
        MalformedEventError,
        "event.Records[0].eventSource",
        "aws:sqs",
        id="s3-event",
    ),
    case(
        lambda c: c.client.safe_process_batch(SNS_EVENT, noop),
        MalformedEventError,
        "event.Records[0]",
        "aws:sns",
        id="sns-event",
    ),
    case(
        lambda c: c.client.safe_process_batch(KINESIS_EVENT, noop),
        MalformedEventError,
        "event.Records[0].eventSource",
        "aws:kinesis",
        id="kinesis-event",
    ),
    case(
        lambda c: c.client.safe_process_batch(EVENTBRIDGE_EVENT, noop),
        MalformedEventError,
        "event",
        "'Records'",
        id="eventbridge-event",
    ),
    case(
        lambda c: c.client.safe_process_batch([sqs_record(c)], noop),
        MalformedEventError,
        "event",
        "'Records'",
        id="event-a-list",
    ),
    case(
        lambda c: c.client.safe_process_batch(
            {"Records": [sqs_record(c), {k: v for k, v in sqs_record(c).items() if k != "body"}]},
            noop,
        ),
        MalformedEventError,
        "event.Records[1].body",
        "missing",
        id="record-without-body",
    ),
    case(
        lambda c: c.client.read_sqs_record(42),  # type: ignore[arg-type]
        MalformedEventError,
        "record",
        "mapping",
        id="record-an-int",
    ),
    # -- records from foreign senders ----------------------------------------------------------
    case(
        lambda c: c.client.read_sqs_record(
            sqs_record(
                c,
                messageAttributes={
                    "sqsClusterKey": {"stringValue": "{not json", "dataType": "String"}
                },
            )
        ),
        MalformedEventError,
        "messageAttributes.sqsClusterKey",
        "JSON",
        id="key-attribute-not-json",
    ),
    case(
        lambda c: c.client.read_sqs_record(
            sqs_record(c, messageAttributes=key_attribute("users#1", "SQSMessage$x"))
        ),
        MalformedEventError,
        "messageAttributes.sqsClusterKey",
        "SQSMessage$",
        id="key-attribute-outside-key-space",
    ),
    case(
        lambda c: c.client.read_sqs_record(task_record(c, "SQSMessage$another-cluster")),
        MalformedEventError,
        "body.pKey",
        "another-cluster",
        id="task-body-names-another-cluster",
    ),
    case(
        lambda c: c.client.read_sqs_record(
            task_record(c, c.cluster.p_key, globals={"Bucket": "payroll", "Key": "salaries.json"})
        ),
        MalformedEventError,
        "body.globals",
        "payroll",
        id="task-body-names-another-bucket",
    ),
    case(
        lambda c: c.client.read_sqs_record(task_record(c, c.cluster.p_key, index=7)),
        MalformedEventError,
        "body.index",
        "0",
        id="task-body-index-disagrees-with-key",
    ),
    # -- configuration, missing resources, wrong region ---------------------------------------
    case(
        lambda c: c.config.with_changes(max_concurrency=0),
        ConfigError,
        "max_concurrency",
        "> 0",
        id="config-max-concurrency-zero",
    ),
    case(
        lambda c: c.config.with_changes(endpoint_url="localhost:4566"),
        ConfigError,
        "endpoint_url",
        "http://",
        id="config-endpoint-without-scheme",
    ),
    case(
        lambda c: c.config.with_changes(lease_seconds=13 * 3600),
        ConfigError,
        "lease_seconds",
        "43200",
        id="config-lease-over-12-hours",
    ),
    case(
        lambda c: c.config.with_changes(table=""),
        ConfigError,
        "table",
        "required",
        id="config-table-empty",
    ),
    case(
        lambda c: _with_other(
            c, {"bucket": None}, lambda o: o.create_message_cluster(c.queue.url, [1])
        ),
        ConfigError,
        "bucket",
        "omit_globals",
        id="no-bucket-for-globals",
    ),
    case(
        lambda c: _with_other(
            c, {"table": "no-such-table-7b2e"}, lambda o: o.send_message_batch(c.queue.url, [1])
        ),
        ResourceMissingError,
        "table",
        "no-such-table-7b2e",
        id="table-missing",
        needs_server=True,
    ),
    case(
        lambda c: _with_other(
            c, {"table": FOREIGN_TABLE}, lambda o: o.send_message_batch(c.queue.url, [1])
        ),
        ConfigError,
        "table",
        FOREIGN_TABLE,
        "pKey (HASH)",
        id="table-with-another-key-schema",
        needs_server=True,
    ),
    case(
        lambda c: _with_other(
            c,
            {"bucket": "no-such-bucket-7b2e"},
            lambda o: o.create_message_cluster(c.queue.url, [1], globals={"g": 1}),
        ),
        ResourceMissingError,
        "bucket",
        "no-such-bucket-7b2e",
        id="bucket-missing",
        needs_server=True,
    ),
    case(
        lambda c: _with_other(
            c, {"region": "eu-west-1"}, lambda o: o.send_message_batch(c.queue.url, [1])
        ),
        ResourceMissingError,
        "eu-west-1",
        "table",
        id="wrong-region",
        needs_server=True,
    ),
]


async def _with_other(
    ctx: Ctx, changes: Mapping[str, Any], call: Callable[[MessageClient], Any]
) -> Any:
    client = await ctx.other(**changes)
    return await call(client)


def writes(ctx: Ctx, before: Mapping[str, int]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for client in [ctx.client, *ctx.opened]:
        counts.update(client.request_counts)
    counts.subtract(before)
    return {op: n for op, n in counts.items() if n > 0 and op not in READS}


async def check_case(
    ctx: Ctx, call: Call, error: type[BaseException], needles: tuple[str, ...]
) -> None:
    """The case raises ``error`` naming every needle (and the field), and nothing is written."""
    before = dict(ctx.client.request_counts)
    with pytest.raises(error) as info:
        result = call(ctx)
        if inspect.isawaitable(result):
            await result
    message = str(info.value)
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    if isinstance(info.value, ValidationError) and not isinstance(info.value, MalformedEventError):
        assert info.value.field in message
    assert writes(ctx, before) == {}, "something was written before the error"
