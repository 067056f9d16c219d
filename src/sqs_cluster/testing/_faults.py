"""Fault injection on the aiobotocore clients of a ``MessageClient`` (``FaultInjector``).

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
from typing import Any

from botocore.exceptions import ConnectionClosedError, ConnectTimeoutError, ReadTimeoutError

from ._fault_kinds import (
    ENV_VAR,
    REQUEST_KINDS,
    SQS_BATCH_OPERATIONS,
    Call,
    FaultKind,
    InjectedFault,
    applies,
    op_name,
)
from ._fault_responses import (
    error_for,
    error_response,
    report_withheld,
    split_ddb_request,
    split_sqs_entries,
    synthetic_success,
)
from ._fault_spec import parse_spec, spec_text

logger = logging.getLogger("sqs_cluster.testing")

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
        self._current: contextvars.ContextVar[Call | None] = contextvars.ContextVar(
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
        settings = parse_spec(spec)
        return cls(**{**settings, "salt": salt or settings.get("salt", "")})

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, salt: str = ""
    ) -> FaultInjector | None:
        """The injector ``SQS_CLUSTER_FAULTS`` describes, or None when it is unset or empty."""
        spec = (os.environ if environ is None else environ).get(ENV_VAR, "")
        return cls.parse(spec, salt=salt) if spec.strip() else None

    def to_env(self) -> str:
        """The ``SQS_CLUSTER_FAULTS`` value that recreates this injector (``match`` is lost)."""
        return spec_text(
            seed=self.seed,
            rates=self.rates,
            operations=self.operations,
            limit=self.limit,
            delay_scale=self.delay_scale,
            salt=self.salt,
        )

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

    def _rng(self, call: Call, what: str) -> random.Random:
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
        call = Call(service, operation, number, eligible)
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

    def _withhold_ddb(self, call: Call, params: dict[str, Any]) -> dict[str, Any] | None:
        rate = self.rates.get(FaultKind.UNPROCESSED, 0.0)
        if not rate:
            return None
        reads = call.operation == "BatchGetItem"
        rng = self._rng(call, "entries")
        kept, dropped, count = split_ddb_request(params, reads=reads, rate=rate, rng=rng)
        if not count:
            return None
        call.dropped_ddb = dropped
        self._record(
            InjectedFault(FaultKind.UNPROCESSED, op_name(call), call.number, entries=count)
        )
        if not kept:  # an empty request is invalid: answer it without sending (before-send)
            call.synthetic = True
            return None
        return {**params, "RequestItems": kept}

    def _withhold_sqs(self, call: Call, params: dict[str, Any]) -> dict[str, Any] | None:
        failed_rate = self.rates.get(FaultKind.SQS_FAILED_ENTRY, 0.0)
        sender_rate = self.rates.get(FaultKind.SQS_SENDER_FAULT, 0.0)
        if not failed_rate and not sender_rate:
            return None
        entries = list(params.get("Entries", []))
        rng = self._rng(call, "entries")
        outcome = split_sqs_entries(
            entries, failed_rate=failed_rate, sender_rate=sender_rate, rng=rng
        )
        if not outcome:
            return None
        call.dropped_sqs = outcome
        for sender_fault in (False, True):
            n = sum(1 for v in outcome.values() if v is sender_fault)
            if n:
                kind = FaultKind.SQS_SENDER_FAULT if sender_fault else FaultKind.SQS_FAILED_ENTRY
                self._record(InjectedFault(kind, op_name(call), call.number, entries=n))
        keep = [e for e in entries if e["Id"] not in outcome]
        if not keep:
            call.synthetic = True
            return None
        return {**params, "Entries": keep}

    def _draw(self, call: Call, headers: Mapping[str, str]) -> tuple[FaultKind, random.Random]:
        rng = self._rng(call, f"attempt{call.attempts}")
        for kind in REQUEST_KINDS:
            roll = rng.random()
            rate = self.rates.get(kind, 0.0)
            if rate and roll < rate and applies(kind, call, headers):
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
                self._record(InjectedFault(kind, op_name(call), call.number, call.attempts))
                return await self._inject(kind, rng, call, client, request)
        if call.synthetic:
            return synthetic_success(call, request.url)
        return None

    async def _inject(
        self, kind: FaultKind, rng: random.Random, call: Call, client: Any, request: Any
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
        status, code, extra = error_for(kind, call, rng)
        return error_response(call.service, status, code, url, extra)

    def _on_after(self, http_response: Any, parsed: dict[str, Any], context: Any) -> None:
        call = context.get(self._key) if isinstance(context, dict) else None
        if call is not None and getattr(http_response, "status_code", 500) < 300:
            report_withheld(call, parsed)


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
