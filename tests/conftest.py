"""Shared fixtures: one embedded local AWS per session, fresh resources per test where needed.

How the suite is laid out:

- ``tests/unit/``: server-free tests (records, codec, outgoing messages, events, cluster keys,
  task bodies, write tokens, config, the fault spec, the bad input that fails before any
  request). They may not request the server (collection fails if one does) and may not open a
  connection (``tests/unit/conftest.py`` refuses it). Marked ``unit``; ``pytest tests/unit``
  runs them alone, in a few seconds.
- every other test may use the server: ``local_aws`` is the pytest plugin's own
  ``sqs_cluster_local`` (``sqs_cluster.pytest_plugin``), one local AWS per session.
  Under pytest-xdist (``-n 4``), each worker is a session of its own, so each worker has its
  own server, table and bucket, and nothing is shared between workers.
- ``slow``: full-size versions of end-to-end scenarios, left out by default (``addopts``);
  a smaller twin of each runs by default. ``pytest -m slow`` or ``nox -s slow`` runs them.
- ``smoke``: the few server tests listed in ``SMOKE`` below (a tracked message, a small
  cluster end to end, the sync facade); with the unit tests they are what CI runs on the
  other supported Pythons (``pytest -m "unit or smoke"``).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from aiobotocore.session import get_session

from sqs_cluster import Config, MessageClient
from sqs_cluster._aws.provision import ensure_resources
from sqs_cluster._messages.lambda_shape import lambda_event
from sqs_cluster.local import LocalAWS

from .sync_api import awaitable_facade

REGION = "us-east-1"
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
for _var in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
    os.environ.pop(_var, None)


UNIT = Path(__file__).resolve().parent / "unit"
SERVER_FIXTURES = frozenset({"sqs_cluster_local", "local_aws", "endpoint", "base_config"})
"""Fixtures that start or need the local server: a test under tests/unit/ may request none."""

SMOKE = frozenset(
    {
        # a tracked message: record first, then the message (async client and sync facade)
        "tests/test_messages.py::test_record_is_written_before_the_message",
        # a small cluster end to end: fan-out, globals, counting, the callback once
        "tests/test_clusters.py::test_cluster_lifecycle",
        # the sync facade: its lifecycle, a cluster callback, and the blocking worker
        "tests/test_sync.py::test_close_leaves_no_thread_loop_or_client_behind",
        "tests/test_sync.py::test_sync_cluster_callback_gets_a_view_and_blocking_globals",
        "tests/test_sync.py::test_a_classic_handler_runs_under_the_blocking_worker",
    }
)
"""The server tests that also run on every other supported Python (with the unit tests)."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks ``unit`` (tests/unit/, which may not use the server) and ``smoke`` (``SMOKE``)."""
    modules: dict[str, Any] = {}
    for item in items:
        function = item.nodeid.split("[", 1)[0]
        module = getattr(item, "module", None)
        if module is not None:
            modules[function.split("::", 1)[0]] = module
        if function in SMOKE:
            item.add_marker(pytest.mark.smoke)
        if UNIT in item.path.parents:
            uses = SERVER_FIXTURES & set(getattr(item, "fixturenames", ()))
            if uses:
                raise pytest.UsageError(
                    f"{item.nodeid} is under tests/unit/ but requests the server ({sorted(uses)})"
                )
            item.add_marker(pytest.mark.unit)
    for smoke in SMOKE:
        path, name = smoke.split("::", 1)
        if path in modules and not hasattr(modules[path], name):
            raise pytest.UsageError(f"SMOKE names a test that does not exist (renamed?): {smoke}")


def unique(prefix: str) -> str:
    """A random resource name: moto's state is shared by every test of the session."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def local_aws(sqs_cluster_local: LocalAWS) -> LocalAWS:
    """The plugin's server for the session (one per xdist worker): DynamoDB and S3 writes atomic
    as on AWS, SQS concurrent; the plugin stops it by its PID when the session ends."""
    return sqs_cluster_local


@pytest.fixture(scope="session")
def endpoint(local_aws: LocalAWS) -> str:
    return local_aws.endpoint_url


@pytest.fixture(scope="session")
async def base_config(endpoint: str) -> Config:
    config = Config(
        table=unique("records"), bucket=unique("globals"), region=REGION, endpoint_url=endpoint
    )
    await ensure_resources(config)
    return config


@dataclass(frozen=True)
class Queue:
    """A queue made for one test, and its dead-letter queue."""

    url: str
    dlq_url: str


async def make_queue(
    config: Config,
    name: str | None = None,
    *,
    max_receive_count: int = 3,
    visibility_timeout: int = 360,
) -> Queue:
    """Create a queue with a DLQ on the test server: four plain SQS calls, not a full
    ``ensure_resources`` (the table and bucket already exist), so per-test setup stays fast."""
    name = name or unique("q")
    fifo = {"FifoQueue": "true"} if name.endswith(".fifo") else {}
    sqs = _sqs_client(config.endpoint_url)
    dlq_name = name.removesuffix(".fifo") + "-dlq" + (".fifo" if fifo else "")
    dlq = sqs.create_queue(QueueName=dlq_name, Attributes=fifo)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]
    redrive = {"deadLetterTargetArn": arn["QueueArn"], "maxReceiveCount": str(max_receive_count)}
    attributes = {
        "VisibilityTimeout": str(visibility_timeout),
        "RedrivePolicy": json.dumps(redrive),
        **fifo,
    }
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    return Queue(url, dlq)


_SQS_CLIENTS: dict[str | None, Any] = {}


def _sqs_client(endpoint: str | None) -> Any:
    if endpoint not in _SQS_CLIENTS:
        _SQS_CLIENTS[endpoint] = boto3.client("sqs", endpoint_url=endpoint, region_name=REGION)
    return _SQS_CLIENTS[endpoint]


@pytest.fixture
async def queue(base_config: Config) -> Queue:
    """A fresh queue (maxReceiveCount 3) with a DLQ, on the session's table and bucket."""
    return await make_queue(base_config, visibility_timeout=30)


@pytest.fixture(params=["async", "sync"])
async def client(
    request: pytest.FixtureRequest, base_config: Config
) -> AsyncIterator[MessageClient]:
    """The async client, and the blocking facade shaped like it: behaviour tests run on both."""
    if request.param == "sync":
        async with awaitable_facade(base_config) as facade:
            yield facade
        return
    async with MessageClient(base_config) as c:
        yield c


@pytest.fixture(scope="session")
def sqs(endpoint: str) -> Any:
    return boto3.client("sqs", endpoint_url=endpoint, region_name=REGION)


@pytest.fixture(scope="session")
def ddb(endpoint: str) -> Any:
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name=REGION)


def receive_event(
    sqs: Any, queue_url: str, *, max_messages: int = 10, visibility: int = 30
) -> dict[str, Any]:
    """Receive up to ``max_messages`` and shape them as a Lambda SQS event."""
    messages: list[dict[str, Any]] = []
    while len(messages) < max_messages:
        resp = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(10, max_messages - len(messages)),
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            VisibilityTimeout=visibility,
            WaitTimeSeconds=0,
        )
        got = resp.get("Messages", [])
        if not got:
            break
        messages.extend(got)
    return lambda_event(messages, queue_url=queue_url, region=REGION)


@pytest.fixture
async def real(base_config: Config) -> AsyncIterator[dict[str, Any]]:
    """Real aiobotocore clients, to be wrapped by FaultyClient and handed in ready."""
    session = get_session()
    async with (
        session.create_client(
            "sqs", region_name="us-east-1", endpoint_url=base_config.endpoint_url
        ) as sqs,
        session.create_client(
            "dynamodb", region_name="us-east-1", endpoint_url=base_config.endpoint_url
        ) as ddb,
        session.create_client(
            "s3", region_name="us-east-1", endpoint_url=base_config.endpoint_url
        ) as s3,
    ):
        yield {"sqs": sqs, "dynamodb": ddb, "s3": s3}


@pytest.fixture(scope="session", autouse=True)
def library_operations() -> Iterator[Any]:
    """Records every AWS operation sqs-cluster's own code issues in the session; at the end,
    fails if docs/iam-policy.json does not allow one of their IAM actions.

    Actions only: resources, leading keys and encryption are checked exactly, on a
    representative workload, in tests/test_security.py.
    """
    import json
    from pathlib import Path

    from sqs_cluster.testing import OperationRecorder

    recorder = OperationRecorder(library_only=True)
    with recorder.record_all_clients():
        yield recorder
    policy_path = Path(__file__).resolve().parent.parent / "docs" / "iam-policy.json"
    policy = json.loads(policy_path.read_text(encoding="utf-8"))
    problems = recorder.violations(policy, {}, actions_only=True)
    assert not problems, "docs/iam-policy.json does not allow:\n" + "\n".join(problems)
