"""Fault injection and operation recording on the aiobotocore clients of a ``MessageClient``.

The injector hooks botocore's event system of each client, so every request still goes through
botocore's own serialising, retrying and parsing, exactly as against AWS:

* ``provide-client-params.<service>`` numbers the call, and for batch operations withholds some
  entries from the request (they are *not* performed) to report them back later;
* ``before-send.<service>`` decides per attempt: return an error response (throttling, 5xx, S3
  412/409, a cancelled transaction), raise a connection error, or send the request and then
  lose the response (a read timeout after the server did the work);
* ``after-call.<service>`` adds the withheld entries to the parsed response as DynamoDB
  ``UnprocessedItems``/``UnprocessedKeys`` or SQS ``Failed`` entries.

Decisions are seeded: each is a pure function of ``(seed, salt, service.Operation, n-th call of
that operation, attempt)``, so a sequential workload gets the same faults on every run. The
clients are reached through ``MessageClient._aws._clients`` (or a public ``clients`` mapping
when the AWS layer offers one): that internal seam is the only one this module relies on,
besides ``client._endpoint`` for read timeouts and for ``delay_scale``.

Worker processes configure an injector from the ``SQS_CLUSTER_FAULTS`` environment variable
(see :meth:`FaultInjector.from_env` and :func:`install_from_env`).
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import random
import re
import threading
import uuid
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from typing import Any

from botocore.exceptions import ConnectionClosedError, ConnectTimeoutError, ReadTimeoutError

logger = logging.getLogger("sqs_cluster.testing")

ENV_VAR = "SQS_CLUSTER_FAULTS"
"""Environment variable read by :meth:`FaultInjector.from_env`."""


class FaultKind(str, Enum):
    """What goes wrong. Request-level kinds are drawn per attempt, entry kinds per entry."""

    THROTTLING = "throttling"
    """DynamoDB 400 ThrottlingException / ProvisionedThroughputExceededException, SQS 400
    RequestThrottled, S3 503 SlowDown. Not performed; botocore retries it."""
    SERVER_ERROR = "server_error"
    """500 InternalError / 503 ServiceUnavailable. Not performed; botocore retries it."""
    CONNECTION_RESET = "connection_reset"
    """ConnectionClosedError before the request reached the server. Retried by botocore."""
    CONNECT_TIMEOUT = "connect_timeout"
    """ConnectTimeoutError: the server was never reached. Retried by botocore."""
    READ_TIMEOUT = "read_timeout"
    """The server performs the request, then the response is lost (ReadTimeoutError). Retried
    by botocore, so the request runs again: the case that tests idempotency."""
    UNPROCESSED = "unprocessed"
    """Per entry: DynamoDB BatchWriteItem ``UnprocessedItems`` / BatchGetItem ``UnprocessedKeys``.
    Withheld entries are not performed."""
    TRANSACTION_CONFLICT = "transaction_conflict"
    """TransactWriteItems cancelled with a ``TransactionConflict`` reason. Not performed."""
    SQS_FAILED_ENTRY = "sqs_failed_entry"
    """Per entry: a ``Failed`` entry with ``SenderFault: false`` in SendMessageBatch,
    DeleteMessageBatch or ChangeMessageVisibilityBatch. Not performed."""
    SQS_SENDER_FAULT = "sqs_sender_fault"
    """Per entry: a ``Failed`` entry with ``SenderFault: true``. Not performed."""
    S3_PRECONDITION_FAILED = "s3_precondition_failed"
    """412 PreconditionFailed on an S3 request with ``If-Match`` (another writer won). Not
    performed."""
    S3_CONFLICT = "s3_conflict"
    """409 ConditionalRequestConflict on a conditional S3 write (``If-Match`` or
    ``If-None-Match``): a concurrent conditional write; S3 says retry. Not performed."""


REQUEST_KINDS = (
    FaultKind.THROTTLING,
    FaultKind.SERVER_ERROR,
    FaultKind.CONNECTION_RESET,
    FaultKind.CONNECT_TIMEOUT,
    FaultKind.READ_TIMEOUT,
    FaultKind.TRANSACTION_CONFLICT,
    FaultKind.S3_PRECONDITION_FAILED,
    FaultKind.S3_CONFLICT,
)
"""Kinds drawn once per attempt, in this order (the first hit is injected)."""

SQS_BATCH_OPERATIONS = frozenset(
    {"SendMessageBatch", "DeleteMessageBatch", "ChangeMessageVisibilityBatch"}
)

FAULT_SCOPE: dict[FaultKind, frozenset[str] | None] = {
    FaultKind.THROTTLING: None,
    FaultKind.SERVER_ERROR: None,
    FaultKind.CONNECTION_RESET: None,
    FaultKind.CONNECT_TIMEOUT: None,
    FaultKind.READ_TIMEOUT: None,
    FaultKind.UNPROCESSED: frozenset({"dynamodb.BatchWriteItem", "dynamodb.BatchGetItem"}),
    FaultKind.TRANSACTION_CONFLICT: frozenset({"dynamodb.TransactWriteItems"}),
    FaultKind.SQS_FAILED_ENTRY: frozenset(f"sqs.{op}" for op in SQS_BATCH_OPERATIONS),
    FaultKind.SQS_SENDER_FAULT: frozenset(f"sqs.{op}" for op in SQS_BATCH_OPERATIONS),
    FaultKind.S3_PRECONDITION_FAILED: frozenset({"s3.PutObject", "s3.GetObject", "s3.HeadObject"}),
    FaultKind.S3_CONFLICT: frozenset({"s3.PutObject"}),
}
"""``service.Operation`` names each kind can hit (None: every operation of every service)."""


def fault_services(kind: FaultKind) -> frozenset[str]:
    """The services a kind can hit (``{"sqs", "dynamodb", "s3"}`` for request-level kinds)."""
    scope = FAULT_SCOPE[kind]
    if scope is None:
        return frozenset({"sqs", "dynamodb", "s3"})
    return frozenset(op.split(".", 1)[0] for op in scope)


@dataclass(frozen=True)
class InjectedFault:
    """One injected fault: which kind, on which call (and attempt) of which operation."""

    kind: FaultKind
    operation: str
    call: int
    attempt: int | None = None
    entries: int = 0
    detail: str = ""


@dataclass
class _Call:
    """The state of one API call, shared by its events (via a ContextVar and its context)."""

    service: str
    operation: str
    number: int
    eligible: bool
    attempts: int = 0
    synthetic: bool = False
    dropped_ddb: dict[str, Any] | None = None
    dropped_sqs: dict[str, bool] | None = None
    transact_items: int = 0


class _Body:
    """The ``raw`` of a synthetic response: what aiobotocore reads the body from."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def read(self, *_: Any) -> bytes:
        return self._data


_ATTACHED: weakref.WeakKeyDictionary[Any, FaultInjector] = weakref.WeakKeyDictionary()
_ATTACH_LOCK = threading.RLock()  # attach unwinds (and takes it again) on a conflict
_NAME = re.compile(r"^(?:[a-z0-9-]+\.)?[A-Z][A-Za-z0-9]+$")


class FaultInjector:
    """Seeded faults at configurable rates on a MessageClient's AWS clients.

    ``rates`` maps a :class:`FaultKind` (or its value) to a probability in ``[0, 1]``: per
    attempt for request-level kinds, per entry for UNPROCESSED and the SQS entry kinds.
    ``operations`` restricts faults to ``"service.Operation"`` (or bare ``"Operation"``) names;
    ``match(service, operation, params)`` restricts them further by the call's parameters;
    ``limit`` caps the number of faults; ``delay_scale`` multiplies botocore's retry sleeps
    (``0.01`` keeps a fault-heavy test fast). ``salt`` decorrelates processes sharing a seed.

    ::

        injector = FaultInjector(7, {FaultKind.THROTTLING: 0.2}, delay_scale=0.01)
        async with MessageClient(config) as client:
            with injector.attached(client):
                await client.send_message_batch(queue_url, bodies)
        print(injector.summary())
    """

    def __init__(
        self,
        seed: int | str = 0,
        rates: Mapping[FaultKind | str, float] | None = None,
        operations: Iterable[str] | None = None,
        *,
        match: Callable[[str, str, Mapping[str, Any]], bool] | None = None,
        limit: int | None = None,
        delay_scale: float | None = None,
        salt: str = "",
    ) -> None:
        self.seed = seed
        self.salt = salt
        self.rates: dict[FaultKind, float] = {}
        for kind, rate in (rates or {}).items():
            parsed = FaultKind(kind)
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
                raise ValueError(f"rates[{parsed.value}]: expected a probability 0-1, got {rate!r}")
            self.rates[parsed] = float(rate)
        self.operations = None if operations is None else frozenset(operations)
        for name in self.operations or ():
            if not _NAME.match(name):
                raise ValueError(
                    f"operations: expected 'service.Operation' or 'Operation', got {name!r}"
                )
        if limit is not None and (isinstance(limit, bool) or limit < 0):
            raise ValueError(f"limit: expected a count >= 0, got {limit!r}")
        if delay_scale is not None and not delay_scale >= 0:
            raise ValueError(f"delay_scale: expected a factor >= 0, got {delay_scale!r}")
        self.match = match
        self.limit = limit
        self.delay_scale = delay_scale
        self.enabled = True
        self._lock = threading.Lock()
        self._calls: Counter[str] = Counter()
        self._faults: list[InjectedFault] = []
        self._undo: list[Callable[[], None]] = []
        self._key = f"sqs_cluster.testing.{uuid.uuid4().hex}"
        self._current: contextvars.ContextVar[_Call | None] = contextvars.ContextVar(
            self._key, default=None
        )

    def __repr__(self) -> str:
        rates = ", ".join(f"{k.value}={v}" for k, v in self.rates.items())
        return f"FaultInjector(seed={self.seed!r}, {rates}, faults={len(self._faults)})"

    # -- configuration from the environment (worker processes) ---------------------------------

    @classmethod
    def parse(cls, spec: str, *, salt: str = "") -> FaultInjector:
        """Build an injector from JSON or ``seed=7,throttling=0.2,ops=sqs.SendMessageBatch|...``.

        JSON keys: ``seed``, ``rates`` (kind -> rate), ``operations`` (list), ``limit``,
        ``delay_scale``, ``salt``. The compact form takes the same keys (``ops`` for
        operations, ``|``-separated) and any kind name as a rate.
        """
        text = spec.strip()
        if text.startswith("{"):
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError(f"{ENV_VAR}: expected a JSON object")
            return cls(
                data.get("seed", 0),
                data.get("rates", {}),
                data.get("operations"),
                limit=data.get("limit"),
                delay_scale=data.get("delay_scale"),
                salt=salt or str(data.get("salt", "")),
            )
        seed: int | str = 0
        rates: dict[FaultKind | str, float] = {}
        ops: list[str] | None = None
        limit: int | None = None
        delay: float | None = None
        spec_salt = ""
        for part in filter(None, (p.strip() for p in re.split(r"[,;]", text))):
            name, sep, value = part.partition("=")
            if not sep:
                raise ValueError(f"{ENV_VAR}: expected name=value, got {part!r}")
            name = name.strip()
            value = value.strip()
            if name == "seed":
                seed = int(value) if value.lstrip("-").isdigit() else value
            elif name in {"ops", "operations"}:
                ops = [o for o in value.split("|") if o]
            elif name == "limit":
                limit = int(value)
            elif name == "delay_scale":
                delay = float(value)
            elif name == "salt":
                spec_salt = value
            else:
                rates[FaultKind(name)] = float(value)
        return cls(seed, rates, ops, limit=limit, delay_scale=delay, salt=salt or spec_salt)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, salt: str = ""
    ) -> FaultInjector | None:
        """The injector ``SQS_CLUSTER_FAULTS`` describes, or None when it is unset or empty."""
        spec = (os.environ if environ is None else environ).get(ENV_VAR, "")
        return cls.parse(spec, salt=salt) if spec.strip() else None

    def to_env(self) -> str:
        """The ``SQS_CLUSTER_FAULTS`` value that recreates this injector (``match`` is lost)."""
        data: dict[str, Any] = {
            "seed": self.seed,
            "rates": {k.value: v for k, v in self.rates.items()},
        }
        if self.operations is not None:
            data["operations"] = sorted(self.operations)
        if self.limit is not None:
            data["limit"] = self.limit
        if self.delay_scale is not None:
            data["delay_scale"] = self.delay_scale
        if self.salt:
            data["salt"] = self.salt
        return json.dumps(data, separators=(",", ":"))

    # -- attaching -----------------------------------------------------------------------------

    def attach(self, target: Any) -> Callable[[], None]:
        """Hook the clients of ``target``; returns a function that unhooks them.

        ``target`` is an open MessageClient (or its blocking facade), its ``AWS`` layer, a
        mapping of service name to aiobotocore client, or one aiobotocore client.
        """
        clients = clients_of(target)
        undo: list[Callable[[], None]] = []
        with _ATTACH_LOCK:
            for client in clients.values():
                owner = _ATTACHED.get(client)
                if owner is not None:
                    for step in reversed(undo):
                        step()
                    raise RuntimeError(f"{owner!r} is already attached to this client")
                undo.append(self._hook(client))
        self._undo.extend(undo)

        def detach() -> None:
            for step in reversed(undo):
                if step in self._undo:
                    self._undo.remove(step)
                    step()

        return detach

    def detach(self) -> None:
        """Unhook every client this injector is attached to."""
        while self._undo:
            self._undo.pop()()

    @contextmanager
    def attached(self, target: Any) -> Iterator[FaultInjector]:
        """``with injector.attached(client): ...`` attaches for the block."""
        detach = self.attach(target)
        try:
            yield self
        finally:
            detach()

    @contextmanager
    def paused(self) -> Iterator[FaultInjector]:
        """No new faults inside the block (calls are still numbered)."""
        before, self.enabled = self.enabled, False
        try:
            yield self
        finally:
            self.enabled = before

    def _hook(self, client: Any) -> Callable[[], None]:
        service = client.meta.service_model.service_id.hyphenize()
        events = client.meta.events

        def on_params(**kwargs: Any) -> Any:
            return self._on_params(service, kwargs["params"], kwargs["model"], kwargs["context"])

        async def on_send(**kwargs: Any) -> Any:
            return await self._on_send(service, client, kwargs["request"], kwargs["event_name"])

        def on_after(**kwargs: Any) -> None:
            self._on_after(kwargs["http_response"], kwargs["parsed"], kwargs["context"])

        handlers = {
            f"provide-client-params.{service}": on_params,
            f"before-send.{service}": on_send,
            f"after-call.{service}": on_after,
        }
        for event, handler in handlers.items():
            events.register(event, handler, unique_id=f"{self._key}.{event}")
        _ATTACHED[client] = self
        restore_sleep = self._scale_sleep(client)

        def undo() -> None:
            for event in handlers:
                events.unregister(event, unique_id=f"{self._key}.{event}")
            restore_sleep()
            with _ATTACH_LOCK:
                if _ATTACHED.get(client) is self:
                    del _ATTACHED[client]

        return undo

    def _scale_sleep(self, client: Any) -> Callable[[], None]:
        endpoint = getattr(client, "_endpoint", None)
        original = getattr(endpoint, "_sleep", None)
        if self.delay_scale is None or original is None:
            return lambda: None
        scale = self.delay_scale

        async def scaled(amount: float) -> None:
            await original(amount * scale)

        endpoint.__dict__["_sleep"] = scaled

        def restore() -> None:
            if endpoint.__dict__.get("_sleep") is scaled:
                del endpoint.__dict__["_sleep"]

        return restore

    # -- statistics ----------------------------------------------------------------------------

    @property
    def faults(self) -> list[InjectedFault]:
        """Every fault injected so far, in order."""
        with self._lock:
            return list(self._faults)

    @property
    def calls(self) -> dict[str, int]:
        """API calls seen so far, by ``service.Operation`` (attempts not counted)."""
        with self._lock:
            return dict(self._calls)

    def count(self, kind: FaultKind | str | None = None, operation: str | None = None) -> int:
        """How many faults were injected, optionally of one kind and/or on one operation."""
        wanted = None if kind is None else FaultKind(kind)
        return sum(
            1
            for f in self.faults
            if (wanted is None or f.kind is wanted) and (operation in (None, f.operation))
        )

    def summary(self) -> str:
        """One line: the faults by kind and operation."""
        faults = self.faults
        if not faults:
            return "no faults injected"
        by_kind = Counter((f.kind.value, f.operation) for f in faults)
        parts = [f"{kind} on {op} x{n}" for (kind, op), n in sorted(by_kind.items())]
        return f"{len(faults)} faults injected: " + ", ".join(parts)

    # -- decisions -----------------------------------------------------------------------------

    def _selected(self, service: str, operation: str) -> bool:
        if self.operations is None:
            return True
        return operation in self.operations or f"{service}.{operation}" in self.operations

    def _rng(self, call: _Call, what: str) -> random.Random:
        return random.Random(
            f"{self.seed}|{self.salt}|{call.service}.{call.operation}|{call.number}|{what}"
        )

    def _budget(self) -> bool:
        return self.enabled and (self.limit is None or len(self._faults) < self.limit)

    def _record(self, fault: InjectedFault) -> None:
        with self._lock:
            self._faults.append(fault)
        logger.debug("injected %s", fault)

    def _on_params(
        self, service: str, params: dict[str, Any], model: Any, context: dict[str, Any]
    ) -> dict[str, Any] | None:
        operation = model.name
        name = f"{service}.{operation}"
        with self._lock:
            self._calls[name] += 1
            number = self._calls[name]
        eligible = self._selected(service, operation) and (
            self.match is None or bool(self.match(service, operation, params))
        )
        call = _Call(service, operation, number, eligible)
        if name == "dynamodb.TransactWriteItems":
            call.transact_items = len(params.get("TransactItems", []))
        context[self._key] = call
        self._current.set(call)
        if not eligible or not self._budget():
            return None
        if name in ("dynamodb.BatchWriteItem", "dynamodb.BatchGetItem"):
            return self._withhold_ddb(call, params)
        if service == "sqs" and operation in SQS_BATCH_OPERATIONS:
            return self._withhold_sqs(call, params)
        return None

    def _withhold_ddb(self, call: _Call, params: dict[str, Any]) -> dict[str, Any] | None:
        rate = self.rates.get(FaultKind.UNPROCESSED, 0.0)
        if not rate:
            return None
        rng = self._rng(call, "entries")
        reads = call.operation == "BatchGetItem"
        kept: dict[str, Any] = {}
        dropped: dict[str, Any] = {}
        count = 0
        for table, request in params.get("RequestItems", {}).items():
            entries = request["Keys"] if reads else request
            rolls = [rng.random() < rate for _ in entries]
            keep = [e for e, lose in zip(entries, rolls, strict=True) if not lose]
            lost = [e for e, lose in zip(entries, rolls, strict=True) if lose]
            count += len(lost)
            if reads:
                spec = {k: v for k, v in request.items() if k != "Keys"}
                if keep:
                    kept[table] = {**spec, "Keys": keep}
                if lost:
                    dropped[table] = {**spec, "Keys": lost}
            else:
                if keep:
                    kept[table] = keep
                if lost:
                    dropped[table] = lost
        if not count:
            return None
        call.dropped_ddb = dropped
        self._record(InjectedFault(FaultKind.UNPROCESSED, _op(call), call.number, entries=count))
        if not kept:  # an empty request is invalid: answer it without sending (before-send)
            call.synthetic = True
            return None
        return {**params, "RequestItems": kept}

    def _withhold_sqs(self, call: _Call, params: dict[str, Any]) -> dict[str, Any] | None:
        failed_rate = self.rates.get(FaultKind.SQS_FAILED_ENTRY, 0.0)
        sender_rate = self.rates.get(FaultKind.SQS_SENDER_FAULT, 0.0)
        if not failed_rate and not sender_rate:
            return None
        rng = self._rng(call, "entries")
        entries = list(params.get("Entries", []))
        outcome: dict[str, bool] = {}
        for entry in entries:
            retryable, sender = rng.random(), rng.random()
            if retryable < failed_rate:
                outcome[entry["Id"]] = False
            elif sender < sender_rate:
                outcome[entry["Id"]] = True
        if not outcome:
            return None
        call.dropped_sqs = outcome
        for sender_fault in (False, True):
            n = sum(1 for v in outcome.values() if v is sender_fault)
            if n:
                kind = FaultKind.SQS_SENDER_FAULT if sender_fault else FaultKind.SQS_FAILED_ENTRY
                self._record(InjectedFault(kind, _op(call), call.number, entries=n))
        keep = [e for e in entries if e["Id"] not in outcome]
        if not keep:
            call.synthetic = True
            return None
        return {**params, "Entries": keep}

    def _draw(self, call: _Call, headers: Mapping[str, str]) -> tuple[FaultKind, random.Random]:
        rng = self._rng(call, f"attempt{call.attempts}")
        for kind in REQUEST_KINDS:
            roll = rng.random()
            rate = self.rates.get(kind, 0.0)
            if rate and roll < rate and _applies(kind, call, headers):
                return kind, rng
        raise LookupError

    async def _on_send(self, service: str, client: Any, request: Any, event_name: str) -> Any:
        call = self._current.get()
        if call is None or call.service != service or not event_name.endswith(f".{call.operation}"):
            return None
        call.attempts += 1
        if call.eligible and self._budget():
            try:
                kind, rng = self._draw(call, request.headers)
            except LookupError:
                pass
            else:
                self._record(InjectedFault(kind, _op(call), call.number, call.attempts))
                return await self._inject(kind, rng, call, client, request)
        if call.synthetic:
            return _synthetic_success(call, request.url)
        return None

    async def _inject(
        self, kind: FaultKind, rng: random.Random, call: _Call, client: Any, request: Any
    ) -> Any:
        url = request.url
        if kind is FaultKind.CONNECTION_RESET:
            raise ConnectionClosedError(endpoint_url=url)
        if kind is FaultKind.CONNECT_TIMEOUT:
            raise ConnectTimeoutError(endpoint_url=url)
        if kind is FaultKind.READ_TIMEOUT:
            if not call.synthetic:  # the server does the work; only the answer is lost
                response = await client._endpoint._send(request)
                await response.content
            raise ReadTimeoutError(endpoint_url=url, error="injected: response lost")
        status, code, extra = _error_for(kind, call, rng)
        return _error_response(call.service, status, code, url, extra)

    def _on_after(self, http_response: Any, parsed: dict[str, Any], context: Any) -> None:
        call = context.get(self._key) if isinstance(context, dict) else None
        if call is None or getattr(http_response, "status_code", 500) >= 300:
            return
        if call.dropped_ddb:
            name = "UnprocessedKeys" if call.operation == "BatchGetItem" else "UnprocessedItems"
            unprocessed = parsed.setdefault(name, {})
            for table, entries in call.dropped_ddb.items():
                if call.operation == "BatchGetItem":
                    slot = unprocessed.setdefault(table, {**entries, "Keys": []})
                    slot["Keys"].extend(entries["Keys"])
                else:
                    unprocessed.setdefault(table, []).extend(entries)
        if call.dropped_sqs:
            parsed.setdefault("Successful", [])
            failed = parsed.setdefault("Failed", [])
            for entry_id, sender in call.dropped_sqs.items():
                failed.append(_failed_entry(call.operation, entry_id, sender))


def _op(call: _Call) -> str:
    return f"{call.service}.{call.operation}"


def _applies(kind: FaultKind, call: _Call, headers: Mapping[str, str]) -> bool:
    scope = FAULT_SCOPE[kind]
    if scope is not None and _op(call) not in scope:
        return False
    if kind is FaultKind.S3_PRECONDITION_FAILED:
        return "If-Match" in headers
    if kind is FaultKind.S3_CONFLICT:
        return "If-Match" in headers or "If-None-Match" in headers
    return True


def _error_for(kind: FaultKind, call: _Call, rng: random.Random) -> tuple[int, str, dict[str, Any]]:
    service = call.service
    if kind is FaultKind.THROTTLING:
        if service == "s3":
            return 503, "SlowDown", {}
        if service == "sqs":
            return 400, "RequestThrottled", {}
        choice = rng.choice(["ThrottlingException", "ProvisionedThroughputExceededException"])
        return 400, choice, {}
    if kind is FaultKind.SERVER_ERROR:
        if rng.random() < 0.5:
            return 503, "ServiceUnavailable", {}
        return 500, ("InternalServerError" if service == "dynamodb" else "InternalError"), {}
    if kind is FaultKind.TRANSACTION_CONFLICT:
        size = max(1, call.transact_items)
        reasons = [{"Code": "None"} for _ in range(size)]
        reasons[rng.randrange(size)] = {
            "Code": "TransactionConflict",
            "Message": "Transaction is ongoing for the item",
        }
        codes = ", ".join(r["Code"] for r in reasons)
        return (
            400,
            "TransactionCanceledException",
            {
                "CancellationReasons": reasons,
                "message": f"Transaction cancelled, please refer cancellation reasons for "
                f"specific reasons [{codes}]",
            },
        )
    if kind is FaultKind.S3_PRECONDITION_FAILED:
        return 412, "PreconditionFailed", {}
    if kind is FaultKind.S3_CONFLICT:
        return 409, "ConditionalRequestConflict", {}
    raise AssertionError(kind)  # pragma: no cover - entry kinds never reach here


def _new_response(url: str, status: int, headers: dict[str, str], body: bytes) -> Any:
    from aiobotocore.awsrequest import AioAWSResponse

    return AioAWSResponse(url, status, headers, _Body(body))  # type: ignore[arg-type]


def _error_response(
    service: str, status: int, code: str, url: str, extra: Mapping[str, Any]
) -> Any:
    request_id = uuid.uuid4().hex
    message = extra.get("message") or f"{code} (injected by sqs_cluster.testing)"
    if service == "s3":
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message>"
            f"<RequestId>{request_id}</RequestId></Error>"
        )
        headers = {"Content-Type": "application/xml", "x-amz-request-id": request_id}
        return _new_response(url, status, headers, xml.encode())
    namespace = (
        "com.amazonaws.dynamodb.v20120810" if service == "dynamodb" else f"com.amazonaws.{service}"
    )
    body = {"__type": f"{namespace}#{code}", **extra, "message": message}
    headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": request_id}
    if service == "sqs":  # SQS speaks JSON with its query-era error codes in this header
        headers["x-amzn-query-error"] = f"{code};{'Sender' if status < 500 else 'Receiver'}"
    return _new_response(url, status, headers, json.dumps(body).encode())


def _synthetic_success(call: _Call, url: str) -> Any:
    """The answer to a batch whose every entry is withheld (an empty batch is invalid)."""
    if call.operation == "BatchGetItem":
        body: dict[str, Any] = {"Responses": {}, "UnprocessedKeys": {}}
    elif call.operation == "BatchWriteItem":
        body = {"UnprocessedItems": {}}
    else:
        body = {"Successful": [], "Failed": []}
    headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": uuid.uuid4().hex}
    return _new_response(url, 200, headers, json.dumps(body).encode())


def _failed_entry(operation: str, entry_id: str, sender: bool) -> dict[str, Any]:
    if not sender:
        code = "InternalError"
    elif operation == "SendMessageBatch":
        code = "InvalidParameterValue"
    else:
        code = "ReceiptHandleIsInvalid"
    return {
        "Id": entry_id,
        "SenderFault": sender,
        "Code": code,
        "Message": f"{code} (injected by sqs_cluster.testing)",
    }


def clients_of(target: Any) -> dict[str, Any]:
    """The aiobotocore clients behind ``target``, by service (see :meth:`FaultInjector.attach`)."""
    if hasattr(target, "meta") and hasattr(target.meta, "events"):
        return {target.meta.service_model.service_id.hyphenize(): target}
    if isinstance(target, Mapping):
        return dict(target)
    core = getattr(target, "_core", None)  # the blocking facade wraps an async client
    if core is not None:
        target = core
    aws = getattr(target, "_aws", target)
    clients = getattr(aws, "clients", None)  # a public seam, if the AWS layer offers one
    if not isinstance(clients, Mapping):
        clients = getattr(aws, "_clients", None)
    if not isinstance(clients, Mapping):
        raise TypeError(f"cannot find AWS clients on {type(target).__name__}")
    if not clients:
        raise RuntimeError("the client is not open: attach after 'async with MessageClient(...)'")
    return dict(clients)


def install_from_env(
    target: Any, environ: Mapping[str, str] | None = None, *, salt: str = ""
) -> FaultInjector | None:
    """Attach the injector ``SQS_CLUSTER_FAULTS`` describes to ``target``; None when unset.

    For worker processes: give each process its own ``salt`` (e.g. its index) so processes that
    share a seed do not fail in lockstep.
    """
    injector = FaultInjector.from_env(environ, salt=salt)
    if injector is not None:
        injector.attach(target)
        logger.warning("fault injection enabled: %r", injector)
    return injector


__all__ = [
    "ENV_VAR",
    "FAULT_SCOPE",
    "REQUEST_KINDS",
    "FaultInjector",
    "FaultKind",
    "InjectedFault",
    "clients_of",
    "fault_services",
    "install_from_env",
]
