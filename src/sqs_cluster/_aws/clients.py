"""The one layer that touches aiobotocore: session, long-lived clients and the shared semaphore.

Every AWS request of a :class:`MessageClient` runs inside ``AWS.slot()``, one bounded semaphore,
so fan-out, batch processing and S3 IO together never exceed ``Config.max_concurrency`` requests
in flight. The connection pool is sized to the semaphore (botocore's default is 10).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from .._config import Config
from .._errors import SQSClusterError
from .._observe import OFF, Observer

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_sqs import SQSClient

RequestHook = Callable[[str, str, Mapping[str, Any]], None]
"""Called as ``hook(service, operation, params)`` before every AWS request is sent."""

SERVICES = ("sqs", "dynamodb", "s3")


SENT_AT = "sqs_cluster_sent_at"
"""Request-context key: when (monotonic seconds) a request was about to be sent."""


class AWSClock:
    """AWS's clock, as told by the ``Date`` header of DynamoDB's answers, so that a wrong local
    clock cannot end a live lease early.

    The header is truncated to the second, and the answer was made between the request's
    sending and its receipt, so each answer bounds ``aws_time - monotonic`` from both sides;
    the bounds of successive answers narrow it to about a round trip. The local wall clock is
    used as it is while it lies within those bounds (an NTP-synced clock does: full precision),
    else the nearest bound is: a clock minutes or days off is read within the bounds (at most
    about a second plus a round trip from AWS's, less once several answers narrowed them), and
    a wall clock that jumps changes nothing. Bounds that contradict each other (drift, or a
    step of AWS's clock) start over from the latest answer.
    """

    def __init__(self) -> None:
        self._low: float | None = None
        self._high = float("inf")

    @property
    def synced(self) -> bool:
        """True once an answer told the time."""
        return self._low is not None

    def now_ms(self) -> int:
        """Epoch milliseconds on AWS's clock (the local wall clock before any answer)."""
        wall = time.time()
        if self._low is None:
            return int(wall * 1000)
        monotonic = time.monotonic()
        offset = min(max(wall - monotonic, self._low), self._high)
        return int((monotonic + offset) * 1000)

    def observe(self, parsed: Any = None, context: Any = None, **_: Any) -> None:
        """``after-call`` hook: narrow the offset with the answer's ``Date`` header."""
        received = time.monotonic()
        try:
            date = parsed["ResponseMetadata"]["HTTPHeaders"]["date"]
            server = parsedate_to_datetime(date).timestamp()
        except (KeyError, TypeError, ValueError, IndexError):
            return
        sent = context.get(SENT_AT, received) if isinstance(context, dict) else received
        # the answer was made at some point in [sent, received], at a time in [date, date + 1)
        low, high = server - received, server + 1 - sent
        if self._low is None or max(low, self._low) > min(high, self._high):
            self._low, self._high = low, high
        else:
            self._low, self._high = max(low, self._low), min(high, self._high)


class AWS:
    """Owns one session and one client per service, entered and closed with ``async with``.

    ``session`` may be an aiobotocore ``AioSession`` or an ``aioboto3.Session``; ``clients`` may
    hand in ready clients (``{"sqs": ..., "dynamodb": ..., "s3": ...}``), which are used as they
    are and not closed here.
    """

    def __init__(
        self,
        config: Config,
        *,
        session: Any = None,
        clients: Mapping[str, Any] | None = None,
        observe: Observer | None = None,
    ) -> None:
        self.config = config
        self.observe = observe or OFF
        """The metrics and spans every layer reports to (off unless the client turned them on)."""
        self._session = session
        self._given = dict(clients or {})
        self._stack: AsyncExitStack | None = None
        self._clients: dict[str, Any] = {}
        self._semaphore: asyncio.Semaphore | None = None
        self._syncing: asyncio.Lock | None = None
        self.request_counts: Counter[str] = Counter()
        self._hooks: list[RequestHook] = []
        self.clock = AWSClock()

    def now_ms(self) -> int:
        """Now on AWS's clock, in epoch milliseconds: what every lease is judged by (see
        :class:`AWSClock`). Before DynamoDB's first answer, the local clock."""
        return self.clock.now_ms()

    async def synced_now_ms(self) -> int:
        """:meth:`now_ms`, after hearing from DynamoDB once if this client has not yet (one
        DescribeTable of ``Config.table``): a lease is never judged by the local clock."""
        if not self.clock.synced:
            if self._syncing is None:  # made on first use: no loop is bound at construction
                self._syncing = asyncio.Lock()
            async with self._syncing:  # concurrent first claims share one request
                if not self.clock.synced:
                    async with self.slot():
                        await self.ddb.describe_table(TableName=self.config.table)
        return self.now_ms()

    async def __aenter__(self) -> AWS:
        if self._stack is not None:
            raise SQSClusterError("this client is already open; enter it once")
        self._semaphore = asyncio.Semaphore(self.config.max_concurrency)
        self._syncing = None
        stack = AsyncExitStack()
        try:
            for service in SERVICES:
                client = self._given.get(service)
                if client is None:
                    client = await stack.enter_async_context(self._create(service))
                self._register_events(service, client)
                self._clients[service] = client
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the clients this object created; safe to call twice."""
        stack, self._stack = self._stack, None
        self._clients = {}
        if stack is not None:
            await stack.aclose()

    def _create(self, service: str) -> Any:
        from aiobotocore.config import AioConfig

        cfg = self.config
        conf = AioConfig(
            max_pool_connections=max(10, cfg.max_concurrency),
            retries={"mode": "standard", "total_max_attempts": cfg.max_attempts},
            connect_timeout=cfg.connect_timeout,
            read_timeout=cfg.read_timeout,
            # Every DynamoDB request is built by the library from typed values; botocore's
            # client-side check of them was a fifth of each request's client CPU. SQS keeps
            # it: user-supplied message attributes go there.
            parameter_validation=service != "dynamodb",
        )
        kwargs: dict[str, Any] = {"config": conf}
        if cfg.region:
            kwargs["region_name"] = cfg.region
        if cfg.endpoint_url:
            kwargs["endpoint_url"] = cfg.endpoint_url
        session = self._session
        if session is None:
            from aiobotocore.session import get_session

            session = self._session = get_session()
        if hasattr(session, "create_client"):
            return session.create_client(service, **kwargs)
        return session.client(service, **kwargs)

    def _register_events(self, service: str, client: Any) -> None:
        def before_call(model: Any, params: Any, context: Any = None, **_: Any) -> None:
            if isinstance(context, dict):
                context[SENT_AT] = time.monotonic()
            self.request_counts[f"{service}.{model.name}"] += 1
            for hook in list(self._hooks):
                hook(service, model.name, params)

        name = client.meta.service_model.service_name
        client.meta.events.register(f"before-call.{name}", before_call)
        if service == "dynamodb":  # leases are judged on the clock of the store that holds them
            client.meta.events.register(f"after-call.{name}", self.clock.observe)

    def add_request_hook(self, hook: RequestHook) -> Callable[[], None]:
        """Call ``hook`` before every request; returns a function that removes it."""
        self._hooks.append(hook)
        return lambda: self._hooks.remove(hook)

    def slot(self) -> asyncio.Semaphore:
        """The shared semaphore: ``async with aws.slot(): await aws.sqs.send_message(...)``."""
        if self._semaphore is None:
            raise SQSClusterError("the client is not open: use 'async with MessageClient(...)'")
        return self._semaphore

    def _client(self, service: str) -> Any:
        try:
            return self._clients[service]
        except KeyError:
            raise SQSClusterError(
                "the client is not open: use 'async with MessageClient(...)'"
            ) from None

    @property
    def sqs(self) -> SQSClient:
        """The SQS client."""
        return self._client("sqs")  # type: ignore[no-any-return]

    @property
    def ddb(self) -> DynamoDBClient:
        """The DynamoDB client."""
        return self._client("dynamodb")  # type: ignore[no-any-return]

    @property
    def s3(self) -> S3Client:
        """The S3 client."""
        return self._client("s3")  # type: ignore[no-any-return]


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError, else None."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code is not None else None
    return None


def item_too_large(exc: BaseException) -> bool:
    """True when DynamoDB refused a write because the item would exceed its 400 KB limit (a
    ValidationException, or a transaction cancelled for that reason)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return False
    messages = [str(response.get("Error", {}).get("Message", ""))]
    if error_code(exc) == "TransactionCanceledException":
        reasons = response.get("CancellationReasons") or []
        messages = [
            str(r.get("Message", "")) for r in reasons if r.get("Code") == "ValidationError"
        ]
    elif error_code(exc) != "ValidationException":
        return False
    return any("size" in m.lower() and "exceed" in m.lower() for m in messages)
