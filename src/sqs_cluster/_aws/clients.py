"""The one layer that touches aiobotocore: session, long-lived clients and the shared semaphore.

Every AWS request of a :class:`MessageClient` runs inside ``AWS.slot()``, one bounded semaphore,
so fan-out, batch processing and S3 IO together never exceed ``Config.max_concurrency`` requests
in flight. The connection pool is sized to the semaphore (botocore's default is 10).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from .._config import Config
from .._errors import SQSClusterError

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_sqs import SQSClient

RequestHook = Callable[[str, str, Mapping[str, Any]], None]
"""Called as ``hook(service, operation, params)`` before every AWS request is sent."""

SERVICES = ("sqs", "dynamodb", "s3")


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
    ) -> None:
        self.config = config
        self._session = session
        self._given = dict(clients or {})
        self._stack: AsyncExitStack | None = None
        self._clients: dict[str, Any] = {}
        self._semaphore: asyncio.Semaphore | None = None
        self.request_counts: Counter[str] = Counter()
        self._hooks: list[RequestHook] = []

    async def __aenter__(self) -> AWS:
        if self._stack is not None:
            raise SQSClusterError("this client is already open; enter it once")
        self._semaphore = asyncio.Semaphore(self.config.max_concurrency)
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
        def before_call(model: Any, params: Any, **_: Any) -> None:
            self.request_counts[f"{service}.{model.name}"] += 1
            for hook in list(self._hooks):
                hook(service, model.name, params)

        client.meta.events.register(
            f"before-call.{client.meta.service_model.service_name}", before_call
        )

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
