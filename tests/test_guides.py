"""The guides: every code block of docs/guides, docs/operations and docs/index.md is a file, and
each file runs here against the embedded local AWS (docs/examples/guide_testing.py runs in
tests/test_pytest_plugin.py, in a pytest subprocess of its own)."""

from __future__ import annotations

import asyncio
import importlib
import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.data_classes import SQSEvent, SQSRecord
from docs.examples import (
    guide_async_lambda,
    guide_deploy,
    guide_quickstart,
    guide_sync_lambda,
)

from sqs_cluster import ENV_VARS, Config, MessageClient, ReceivedMessage, RecordKey, Status
from sqs_cluster import sync as sync_api

from .conftest import REGION, Queue, make_queue, receive_event, unique
from .docblocks import CODE_LANGUAGES, DOCS, check_quotes_exactly, code_blocks

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = DOCS / "examples"
TEMPLATE = ROOT / "templates" / "sqs-cluster.yaml"
PAGES = sorted(
    [
        DOCS / "index.md",
        DOCS / "names.md",
        DOCS / "reference.md",
        *(DOCS / "guides").glob("*.md"),
        *(DOCS / "operations").glob("*.md"),
    ]
)
GUIDE_LANGUAGES = CODE_LANGUAGES | {"yaml", "yml", "dockerfile"}
ORDERS = [{"id": 1, "quantity": 2}, {"id": 2, "quantity": 0}]


# -- the markdown quotes the files exactly -------------------------------------------------------


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_every_code_block_is_a_file_quoted_exactly(page: Path) -> None:
    check_quotes_exactly(page, GUIDE_LANGUAGES)


def test_every_guide_file_and_the_template_are_quoted() -> None:
    quoted = {path for page in PAGES for path, _, _ in code_blocks(page) if path}
    files = {f"examples/{p.name}" for p in EXAMPLES.glob("guide_*") if p.is_file()}
    assert files | {"../templates/sqs-cluster.yaml"} == quoted


def test_the_dockerfile_copies_the_tested_files() -> None:
    dockerfile = (EXAMPLES / "guide_worker.Dockerfile").read_text()
    (copy,) = [line.split()[1:-1] for line in dockerfile.splitlines() if line.startswith("COPY")]
    assert copy and all((EXAMPLES / name).is_file() for name in copy)
    assert 'CMD ["bash", "guide_worker.sh"]' in dockerfile


# -- helpers ---------------------------------------------------------------------------------


def tracked_event(config: Config, queue_url: str, bodies: list[Any]) -> dict[str, Any]:
    """Send tracked messages (blocking) and receive them as a Lambda event."""
    with sync_api.MessageClient(config) as client:
        client.send_message_batch(queue_url, bodies)
    sqs = boto3.client("sqs", endpoint_url=config.endpoint_url, region_name=REGION)
    return receive_event(sqs, queue_url, max_messages=len(bodies))


def point_env_at(monkeypatch: pytest.MonkeyPatch, config: Config) -> None:
    for field in ("table", "bucket", "region", "endpoint_url"):
        monkeypatch.setenv(ENV_VARS[field], str(getattr(config, field) or ""))


def message_id_of(event: dict[str, Any], order_id: int) -> str:
    return str(
        next(r["messageId"] for r in event["Records"] if json.loads(r["body"])["id"] == order_id)
    )


async def records_by_order(config: Config, event: dict[str, Any]) -> dict[int, Any]:
    async with MessageClient(config) as client:
        messages = [client.read_sqs_record(r) for r in event["Records"]]
        return {m.body["id"]: await m.get_message_record(consistent_read=True) for m in messages}


def records_now(config: Config, event: dict[str, Any]) -> dict[int, Any]:
    """``records_by_order`` from a sync test (on its own loop, in a thread)."""
    with sync_api.MessageClient(config) as client:
        messages = [client.read_sqs_record(r) for r in event["Records"]]
        return {m.body["id"]: m.get_message_record(consistent_read=True) for m in messages}


# -- getting started -------------------------------------------------------------------------


async def test_quickstart() -> None:
    assert await guide_quickstart.main() == [Status.PRE_FLIGHT] * 3


# -- Lambda handlers -------------------------------------------------------------------------


@pytest.fixture
def async_lambda() -> Iterator[ModuleType]:
    yield guide_async_lambda
    client = guide_async_lambda._client
    if client is not None:
        guide_async_lambda._loop.run_until_complete(client.aclose())
        guide_async_lambda._client = None


@pytest.fixture
def sync_lambda() -> Iterator[ModuleType]:
    yield guide_sync_lambda
    if guide_sync_lambda._client is not None:
        guide_sync_lambda._client.close()
        guide_sync_lambda._client = None


@pytest.mark.parametrize("module_fixture", ["async_lambda", "sync_lambda"])
def test_lambda_handlers(
    module_fixture: str,
    request: pytest.FixtureRequest,
    base_config: Config,
    queue: Queue,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module: Any = request.getfixturevalue(module_fixture)
    point_env_at(monkeypatch, base_config)
    event = tracked_event(base_config, queue.url, ORDERS)
    bad = {"batchItemFailures": [{"itemIdentifier": message_id_of(event, 2)}]}
    assert module.lambda_handler(event, None) == bad
    first_client = module._client
    assert module.lambda_handler(event, None) == bad  # a redelivery: the good one is skipped
    assert module._client is first_client  # warm: the same client serves every invocation
    records = records_now(base_config, event)
    assert records[1].status is Status.COMPLETE and records[1].result == {"reserved": 2}
    assert records[1].consumption_count == 1
    assert records[2].status is Status.ERROR and len(records[2].errors) == 2

    other = base_config.with_changes(max_concurrency=8)  # a new configuration: a new client
    monkeypatch.setenv(ENV_VARS["max_concurrency"], "8")
    event = tracked_event(other, queue.url, [{"id": 3, "quantity": 1}])
    assert module.lambda_handler(event, None) == {"batchItemFailures": []}
    assert module._client is not first_client and module._client.config == other


# -- Powertools --------------------------------------------------------------------------------


async def test_powertools_event_classes_are_accepted(
    base_config: Config, queue: Queue, client: MessageClient
) -> None:
    event = await asyncio.to_thread(tracked_event, base_config, queue.url, ORDERS)
    wrapped = SQSEvent(event)
    seen: list[ReceivedMessage[Any]] = []

    async def handle(message: ReceivedMessage[Any]) -> None:
        seen.append(message)
        if message.body["quantity"] <= 0:
            raise ValueError("quantity must be positive")

    response = await client.safe_process_batch(wrapped, handle)
    assert response == {"batchItemFailures": [{"itemIdentifier": message_id_of(event, 2)}]}
    assert sorted(m.body["id"] for m in seen) == [1, 2]
    for raw, record in zip(event["Records"], wrapped.records, strict=True):
        assert isinstance(record, SQSRecord)
        parsed = client.read_sqs_record(record)
        assert parsed.key == client.read_sqs_record(raw).key and parsed.tracked
    good = next(r for r in wrapped.records if json.loads(r.body)["id"] == 1)
    assert await client.is_complete(good)  # claims and outcomes take an SQSRecord too


async def test_a_failure_is_logged_with_structured_fields(
    base_config: Config, queue: Queue, caplog: pytest.LogCaptureFixture
) -> None:
    async with MessageClient(base_config) as client:
        cluster = await client.create_message_cluster(queue.url, ["boom"], omit_globals=True)
        event = await asyncio.to_thread(receive_event, boto3_sqs(base_config), queue.url)

        async def handle(message: ReceivedMessage[Any]) -> None:
            raise ValueError(message.task)

        with caplog.at_level(logging.WARNING, logger="sqs_cluster"):
            await client.safe_process_batch(event, handle)
    (record,) = [r for r in caplog.records if r.name == "sqs_cluster" and "failed" in r.message]
    (raw,) = event["Records"]
    fields = record.__dict__
    assert record.levelno == logging.WARNING
    assert fields["message_id"] == raw["messageId"]
    assert fields["cluster_key"] == cluster.to_dict()
    assert RecordKey.coerce(fields["record_key"]).p_key.startswith("SQSMessage$")
    assert fields["receive_count"] == 1


def boto3_sqs(config: Config) -> Any:
    return boto3.client("sqs", endpoint_url=config.endpoint_url, region_name=REGION)


@dataclass
class FakeLambdaContext:
    """What Powertools' ``inject_lambda_context`` reads from Lambda's context."""

    function_name: str = "orders"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:orders"
    aws_request_id: str = "3f1a2b4c-0000-4000-8000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@pytest.fixture
def powertools_output() -> Iterator[tuple[Any, io.StringIO]]:
    """Import guide_powertools with its logging set up, its JSON lines going to a buffer.

    The module reconfigures the ``sqs_cluster`` logger at import (as a function does once per
    container); that is undone afterwards, so other tests' log capture is unaffected.
    """
    library = logging.getLogger("sqs_cluster")
    saved = (list(library.handlers), library.level, library.propagate)
    buffer = io.StringIO()
    try:
        module: Any = importlib.reload(importlib.import_module("docs.examples.guide_powertools"))
        handler: Any = module.logger.registered_handler
        previous = handler.setStream(buffer)
        try:
            yield module, buffer
        finally:
            handler.setStream(previous)
            if module._client is not None:
                module._client.close()
                module._client = None
    finally:
        library.handlers, library.level, library.propagate = saved


async def test_powertools_logger_renders_the_fields(
    powertools_output: tuple[Any, io.StringIO],
    base_config: Config,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module, buffer = powertools_output
    queue = await make_queue(base_config)
    point_env_at(monkeypatch, base_config)
    async with MessageClient(base_config) as client:
        cluster = await client.create_message_cluster(
            queue.url, [{"id": 7, "quantity": 0}, {"id": 8, "quantity": 1}], omit_globals=True
        )
    event = await asyncio.to_thread(receive_event, boto3_sqs(base_config), queue.url)
    response = await asyncio.to_thread(module.lambda_handler, event, FakeLambdaContext())
    (failed,) = response["batchItemFailures"]

    lines = [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]
    (warning,) = [line for line in lines if line.get("name") == "sqs_cluster"]
    assert warning["level"] == "WARNING"
    assert warning["message_id"] == failed["itemIdentifier"]
    assert warning["cluster_key"] == cluster.to_dict()
    assert set(warning["record_key"]) == {"pKey", "rKey"}
    assert warning["receive_count"] == 1
    assert warning["function_name"] == "orders" and warning["service"] == "orders"
    received = [line for line in lines if line.get("message") == "order received"]
    assert sorted(line["order_id"] for line in received) == [7, 8]


# -- the worker ------------------------------------------------------------------------------


def test_worker_script(base_config: Config, queue: Queue) -> None:
    event_bodies = [*ORDERS, {"id": 3, "quantity": 5}]
    with sync_api.MessageClient(base_config) as client:
        keys = client.send_message_batch(queue.url, event_bodies)
    env = {
        **os.environ,
        "QUEUE_URL": queue.url,
        "SQS_CLUSTER_TABLE": base_config.table,
        "SQS_CLUSTER_ENDPOINT_URL": base_config.endpoint_url or "",
        "SQS_CLUSTER_REGION": REGION,
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    done = subprocess.run(
        ["bash", "guide_worker.sh", "--wait-seconds", "0", "--max-empty-polls", "1"],
        cwd=EXAMPLES,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "batch:" in done.stderr
    with sync_api.MessageClient(base_config) as client:
        records = client.get_message_records(keys)
    assert [r.status if r else None for r in records] == [
        Status.COMPLETE,
        Status.ERROR,
        Status.COMPLETE,
    ]
    attrs = boto3_sqs(base_config).get_queue_attributes(
        QueueUrl=queue.url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )
    assert attrs["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "1"  # the failed one


# -- the CloudFormation template -------------------------------------------------------------


async def test_the_template_deploys_and_serves_the_library(base_config: Config) -> None:
    endpoint = base_config.endpoint_url
    outputs = await asyncio.to_thread(
        guide_deploy.deploy, TEMPLATE, unique("stack"), region=REGION, endpoint_url=endpoint
    )
    assert set(outputs) == {"TableName", "BucketName", "QueueUrl", "QueueArn", "DeadLetterQueueUrl"}
    config = guide_deploy.config_for(outputs, region=REGION, endpoint_url=endpoint)
    sqs = boto3_sqs(config)
    attrs = sqs.get_queue_attributes(QueueUrl=outputs["QueueUrl"], AttributeNames=["All"])
    assert attrs["Attributes"]["VisibilityTimeout"] == "360"
    assert json.loads(attrs["Attributes"]["RedrivePolicy"])["maxReceiveCount"] in (5, "5")
    async with MessageClient(config) as client:
        await client.send_message_batch(outputs["QueueUrl"], ORDERS)
        event = await asyncio.to_thread(receive_event, sqs, outputs["QueueUrl"])

        async def handle(message: ReceivedMessage[Any]) -> None:
            if message.body["quantity"] <= 0:
                raise ValueError("quantity must be positive")

        response = await client.safe_process_batch(event, handle)
        assert response == {"batchItemFailures": [{"itemIdentifier": message_id_of(event, 2)}]}
        # mark_failed read maxReceiveCount from the stack's redrive policy
        assert await client.max_receive_count(outputs["QueueUrl"]) == 5
    records = await records_by_order(config, event)
    assert records[1].status is Status.COMPLETE and records[2].status_code == 400


def test_the_template_matches_the_library() -> None:
    decode = pytest.importorskip("cfnlint.decode").decode
    template, problems = decode(str(TEMPLATE))
    assert problems == []
    params = {name: p.get("Default") for name, p in template["Parameters"].items()}
    assert params["LeaseSeconds"] == Config(table="t").lease_seconds
    assert params["FunctionTimeout"] <= params["LeaseSeconds"] < params["VisibilityTimeout"]
    resources = template["Resources"]
    table = resources["RecordsTable"]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]} == {
        "pKey": "HASH",
        "rKey": "RANGE",
    }
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
    bucket = resources["GlobalsBucket"]["Properties"]
    rules = {r["Id"]: r for r in bucket["LifecycleConfiguration"]["Rules"]}
    assert set(rules) == {"sqs-cluster-globals-expiry", "sqs-cluster-payloads-expiry"}
    assert all(r["Status"] == "Enabled" for r in rules.values())
    assert rules["sqs-cluster-globals-expiry"]["ExpirationInDays"] == 30
    payloads = rules["sqs-cluster-payloads-expiry"]  # past a queue's longest retention
    assert (payloads["Prefix"], payloads["ExpirationInDays"]) == ("sqs-cluster/payloads/", 15)
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    (sse,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert resources["DeadLetterQueue"]["Properties"]["MessageRetentionPeriod"] == 1209600
    function = resources["Function"]
    assert function["Condition"] == "HasFunction"
    (source,) = function["Properties"]["Events"].values()
    assert source["Type"] == "SQS"
    assert source["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    variables = function["Properties"]["Environment"]["Variables"]
    assert {ENV_VARS["table"], ENV_VARS["bucket"], ENV_VARS["lease_seconds"]} == set(variables)


def test_the_templates_function_role_follows_the_reference_policy() -> None:
    decode = pytest.importorskip("cfnlint.decode").decode
    template, _ = decode(str(TEMPLATE))
    (policy,) = template["Resources"]["Function"]["Properties"]["Policies"]
    reference = json.loads((DOCS / "iam-policy.json").read_text())
    by_sid = {s["Sid"]: s for s in reference["Statement"]}

    def actions(statement: Any) -> set[str]:
        action = statement["Action"]
        return {action} if isinstance(action, str) else set(action)

    for statement in policy["Statement"]:
        expected = by_sid[statement["Sid"]]
        assert statement["Effect"] == expected["Effect"] == "Allow"
        assert actions(statement) <= actions(expected), statement["Sid"]
        assert statement.get("Condition") == expected.get("Condition"), statement["Sid"]
    assert set(by_sid) == {s["Sid"] for s in policy["Statement"]}
