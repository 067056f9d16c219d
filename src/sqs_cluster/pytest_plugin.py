"""pytest fixtures for testing code built on sqs-cluster against the embedded local AWS.

The plugin is registered through the `pytest11` entry point, so installing
`sqs-cluster[local]` next to pytest is all it takes:

```python
def test_handler(sqs_cluster_event):
    event = sqs_cluster_event([{"id": 1, "quantity": 2}])
    assert lambda_handler(event, None) == {"batchItemFailures": []}
```

Every fixture name starts with `sqs_cluster_`. Nothing starts when the plugin loads: the local
server starts when a test first requests one of the fixtures, once per session, and is stopped
(by its PID) when the session ends. Under pytest-xdist (`pytest -n 2`) each worker is a session
of its own: each worker gets its own server, table and bucket, and the workers share nothing.

- `sqs_cluster_local` (session): a running `sqs_cluster.local.LocalAWS`, whose DynamoDB and
  S3 writes are atomic as on AWS while SQS long polls hold up nothing. While it runs,
  `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` are `testing`, and `AWS_PROFILE` and
  `AWS_SESSION_TOKEN` are unset, so no real credentials are used.
- `sqs_cluster_resources` (test): a `sqs_cluster.local.LocalResources` with a fresh queue and
  dead-letter queue for the test, on a table and bucket made once for the session.
  `SQS_CLUSTER_TABLE`, `SQS_CLUSTER_BUCKET`, `SQS_CLUSTER_REGION` and
  `SQS_CLUSTER_ENDPOINT_URL` point at them during the test, so `Config.from_env()` finds them.
  `@pytest.mark.sqs_cluster(fifo=True, max_receive_count=1, visibility_timeout=30)` changes
  how the queue is made.
- `sqs_cluster_config` (test): the `sqs_cluster.Config` of those resources.
- `sqs_cluster_client` (test, async): an open async `sqs_cluster.MessageClient` on them (needs
  an async test plugin such as pytest-asyncio).
- `sqs_cluster_sync_client` (test): an open blocking `sqs_cluster.sync.MessageClient` on them.
- `sqs_cluster_event` (test): an `EventFactory`: `sqs_cluster_event(bodies)` sends the bodies
  as tracked messages, receives them and returns the Lambda SQS event a function would get.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

if TYPE_CHECKING:
    from . import Config, MessageClient
    from . import sync as sync_api
    from .local import LocalAWS, LocalResources

__all__ = ["MARKER", "EventFactory"]

MARKER = "sqs_cluster"
"""``@pytest.mark.sqs_cluster(**options)``: how ``sqs_cluster_resources`` makes the queue."""

_QUEUE_OPTIONS: dict[str, Any] = {"fifo": False, "max_receive_count": 3, "visibility_timeout": 360}
_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
_REGION = "us-east-1"
_DLQ_RETENTION_SECONDS = "1209600"  # as ensure_resources makes them: 14 days

_T = TypeVar("_T")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(fifo=False, max_receive_count=3, visibility_timeout=360): how the "
        "sqs_cluster_resources fixture makes the test's queue and dead-letter queue",
    )


def _async_fixture(func: Callable[..., Any]) -> Any:
    """An async fixture that works in pytest-asyncio's strict and auto modes alike."""
    try:
        import pytest_asyncio
    except ImportError:  # another async plugin (or none: requesting the fixture then fails)
        return pytest.fixture(func)
    return pytest_asyncio.fixture(func)


def _run(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine on its own event loop in a thread (safe inside a running loop)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


class _Session:
    """What the session shares: the server, one table and bucket, and two warm clients."""

    def __init__(self, aws: LocalAWS) -> None:
        self.aws = aws
        self._config: Config | None = None
        self._sqs: Any = None
        self._client: sync_api.MessageClient | None = None

    @property
    def config(self) -> Config:
        """The session's table and bucket, made on first use."""
        if self._config is None:
            made = _run(self.aws.aprovision(prefix="sqs-cluster-test", queue=False, region=_REGION))
            self._config = made.config
        return self._config

    @property
    def sqs(self) -> Any:
        """A boto3 SQS client on the server."""
        if self._sqs is None:
            import boto3

            self._sqs = boto3.client("sqs", endpoint_url=self.aws.endpoint_url, region_name=_REGION)
        return self._sqs

    @property
    def client(self) -> sync_api.MessageClient:
        """A blocking MessageClient on the session's config (its loop thread stays warm)."""
        if self._client is None:
            from .sync import MessageClient

            self._client = MessageClient(self.config)
        return self._client

    def make_queue(self, *, fifo: bool, max_receive_count: int, visibility_timeout: int) -> Any:
        """A fresh queue with a dead-letter queue, made as ``ensure_resources`` makes them."""
        from .local import LocalResources

        name = f"test-{uuid.uuid4().hex[:12]}"
        suffix, fifo_attrs = (".fifo", {"FifoQueue": "true"}) if fifo else ("", {})
        dlq_url = self.sqs.create_queue(
            QueueName=f"{name}-dlq{suffix}",
            Attributes={"MessageRetentionPeriod": _DLQ_RETENTION_SECONDS, **fifo_attrs},
        )["QueueUrl"]
        dlq_arn = self.sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])
        redrive = {
            "deadLetterTargetArn": dlq_arn["Attributes"]["QueueArn"],
            "maxReceiveCount": str(max_receive_count),
        }
        queue_url = self.sqs.create_queue(
            QueueName=f"{name}{suffix}",
            Attributes={
                "VisibilityTimeout": str(visibility_timeout),
                "RedrivePolicy": json.dumps(redrive),
                **fifo_attrs,
            },
        )["QueueUrl"]
        return LocalResources(self.config, queue_url, dlq_url)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


@pytest.fixture(scope="session")
def sqs_cluster_local() -> Iterator[LocalAWS]:
    """A running local AWS for the session, stopped by its PID at the end."""
    from .local import LocalAWS

    with pytest.MonkeyPatch.context() as env:
        for name, value in _CREDENTIALS.items():
            env.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            env.delenv(name, raising=False)
        aws = LocalAWS()
        aws.start()
        try:
            yield aws
        finally:
            aws.stop()


@pytest.fixture(scope="session")
def _sqs_cluster_session(sqs_cluster_local: LocalAWS) -> Iterator[_Session]:
    session = _Session(sqs_cluster_local)
    try:
        yield session
    finally:
        session.close()


@pytest.fixture
def sqs_cluster_resources(
    request: pytest.FixtureRequest,
    _sqs_cluster_session: _Session,
    monkeypatch: pytest.MonkeyPatch,
) -> LocalResources:
    """A fresh queue and DLQ on the session's table and bucket; ``SQS_CLUSTER_*`` point there."""
    from ._config import ENV_VARS

    options: dict[str, Any] = dict(_QUEUE_OPTIONS)
    marker = request.node.get_closest_marker(MARKER)
    if marker is not None:
        if marker.args or not set(marker.kwargs) <= set(options):
            raise pytest.UsageError(
                f"@pytest.mark.{MARKER} takes the keyword arguments {sorted(options)}, "
                f"got {marker.args!r} {marker.kwargs!r}"
            )
        options.update(marker.kwargs)
    resources: LocalResources = _sqs_cluster_session.make_queue(**options)
    config = resources.config
    for field, value in (
        ("table", config.table),
        ("bucket", config.bucket),
        ("region", config.region),
        ("endpoint_url", config.endpoint_url),
    ):
        monkeypatch.setenv(ENV_VARS[field], value or "")
    return resources


@pytest.fixture
def sqs_cluster_config(sqs_cluster_resources: LocalResources) -> Config:
    """The Config of the test's resources."""
    return sqs_cluster_resources.config


@_async_fixture
async def sqs_cluster_client(sqs_cluster_resources: LocalResources) -> AsyncIterator[MessageClient]:
    """An open async MessageClient on the test's resources."""
    from ._client.client import MessageClient

    async with MessageClient(sqs_cluster_resources.config) as client:
        yield client


@pytest.fixture
def sqs_cluster_sync_client(
    sqs_cluster_resources: LocalResources,
) -> Iterator[sync_api.MessageClient]:
    """An open blocking MessageClient (``sqs_cluster.sync``) on the test's resources."""
    from .sync import MessageClient

    with MessageClient(sqs_cluster_resources.config) as client:
        yield client


@pytest.fixture
def sqs_cluster_event(
    sqs_cluster_resources: LocalResources, _sqs_cluster_session: _Session
) -> EventFactory:
    """Send messages to the test's queue and get the Lambda SQS event that delivers them."""
    return EventFactory(sqs_cluster_resources, _sqs_cluster_session)


class EventFactory:
    """Sends messages to the test's queue and returns them as a Lambda SQS event.

    Blocking, so it works in sync and async tests alike (its client has its own event-loop
    thread). ``queue_url``, ``dlq_url`` and ``config`` say where the messages go.
    """

    def __init__(self, resources: LocalResources, session: _Session) -> None:
        if resources.queue_url is None:
            raise ValueError("the resources have no queue")
        self.resources = resources
        self.config: Config = resources.config
        self.queue_url: str = resources.queue_url
        self.dlq_url: str | None = resources.dlq_url
        self._session = session

    def __call__(
        self,
        bodies: Sequence[Any],
        *,
        meta: Any = None,
        tracked: bool = True,
        group_id: str = "default",
        visibility_timeout: int = 30,
    ) -> dict[str, Any]:
        """Send ``bodies`` (JSON values or strings) and return the event that delivers them.

        ``tracked=True`` sends them with ``send_message_batch``, so each has a record (with
        ``meta``); ``tracked=False`` sends plain SQS messages, as another producer would. On a
        FIFO queue they all go to the message group ``group_id``. They are received with
        ``visibility_timeout`` seconds of visibility, as an event source mapping would.
        """
        if isinstance(bodies, (str, bytes)) or not isinstance(bodies, Sequence):
            raise TypeError("bodies: expected a list of message bodies")
        fifo = self.queue_url.endswith(".fifo")
        group = group_id if fifo else None
        if tracked:
            from ._messages.outgoing import Message

            entries = [
                Message(body, message_group_id=group, message_deduplication_id=_dedup(fifo))
                for body in bodies
            ]
            self._session.client.send_message_batch(self.queue_url, entries, meta=meta)
        else:
            for body in bodies:
                self._session.sqs.send_message(**_plain_send(self.queue_url, body, group))
        return self._receive(len(bodies), visibility_timeout, patience=5.0)

    def receive(self, max_messages: int = 10, *, visibility_timeout: int = 30) -> dict[str, Any]:
        """Receive what is visible on the queue now (up to ``max_messages``) as an event."""
        return self._receive(max_messages, visibility_timeout, patience=0.0)

    def _receive(self, count: int, visibility_timeout: int, *, patience: float) -> dict[str, Any]:
        """Receive up to ``count`` messages; wait up to ``patience`` seconds for missing ones."""
        import time

        from ._messages.lambda_shape import lambda_event

        deadline = time.monotonic() + patience
        messages: dict[str, dict[str, Any]] = {}
        while len(messages) < count:
            got = self._session.client.receive_messages(
                self.queue_url,
                max_messages=min(10, count - len(messages)),
                wait_seconds=0,
                visibility_timeout=visibility_timeout,
            )
            for message in got:
                messages.setdefault(message["MessageId"], message)
            if not got:
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.05)
        region = self.config.region or _REGION
        return lambda_event(messages.values(), queue_url=self.queue_url, region=region)


def _dedup(fifo: bool) -> str | None:
    return uuid.uuid4().hex if fifo else None


def _plain_send(queue_url: str, body: Any, group_id: str | None) -> dict[str, Any]:
    """SendMessage parameters of an untracked message (no record, no key attribute)."""
    params: dict[str, Any] = {
        "QueueUrl": queue_url,
        "MessageBody": body if isinstance(body, str) else json.dumps(body),
    }
    if group_id is not None:
        params.update(MessageGroupId=group_id, MessageDeduplicationId=uuid.uuid4().hex)
    return params
