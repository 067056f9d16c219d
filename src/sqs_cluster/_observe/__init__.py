"""Observability: metrics (EMF lines) and OpenTelemetry spans, both off by default.

Every layer calls the hooks of one ``Observer``, carried by the ``AWS`` object each layer
already receives (``AWS.observe``); with both off each hook is a branch and returns a shared
no-op, so the hot paths pay nothing else. Nothing heavy is imported here: the EMF library
and OpenTelemetry are imported only when turned on. It imports nothing else of the package,
so every layer may import it without a cycle.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from .metrics import (
    COUNT,
    BatchStats,
    MetricSink,
    batch_metrics,
    emit,
    fanout_metrics,
    sink_for,
)
from .tracing import Tracing, traceparent_of, tracing_for, with_trace

PRODUCER, CONSUMER, INTERNAL = "PRODUCER", "CONSUMER", "INTERNAL"
"""Span kinds, by the name of OpenTelemetry's ``SpanKind`` member."""

_NOOP: AbstractContextManager[Any] = nullcontext()
_BATCH: contextvars.ContextVar[BatchStats | None] = contextvars.ContextVar(
    "sqs_cluster_batch", default=None
)


class Observer:
    """The metrics sink and the tracer of one client; either may be None (off)."""

    __slots__ = ("metrics", "tracing")

    def __init__(self, metrics: MetricSink | None = None, tracing: Tracing | None = None) -> None:
        self.metrics = metrics
        self.tracing = tracing

    @classmethod
    def for_config(cls, config: Any, metrics: Any = None) -> Observer:
        """From ``Config.metrics_namespace`` / ``Config.tracing`` and a Powertools ``Metrics``."""
        return cls(sink_for(config.metrics_namespace, metrics), tracing_for(config.tracing))

    def span(
        self, name: str, attributes: Mapping[str, Any], *, kind: str = "INTERNAL"
    ) -> AbstractContextManager[Any]:
        """A span around a block; a shared no-op when tracing is off."""
        if self.tracing is None:
            return _NOOP
        return self.tracing.span(name, attributes, kind=kind)

    def message_span(
        self, name: str, message: Any, *, kind: str = "CONSUMER"
    ) -> AbstractContextManager[Any]:
        """A span of one received message, child of its producer's span when it carries one."""
        if self.tracing is None:
            return _NOOP
        return self.tracing.span(
            name,
            message_attributes(message),
            kind=kind,
            traceparent=traceparent_of(message.message_attributes, message.attributes),
        )

    def handler(self, message: Any) -> AbstractContextManager[Any]:
        """Around one handler run: its span, and its duration into the batch's metrics."""
        if self.tracing is None and self.metrics is None:
            return _NOOP
        return self._handler(message)

    @contextmanager
    def _handler(self, message: Any) -> Iterator[None]:
        stats, start = _BATCH.get(), time.perf_counter()
        try:
            with self.message_span("sqs_cluster.handler", message):
                yield
        finally:
            if stats is not None:
                stats.durations_ms.append((time.perf_counter() - start) * 1000)

    def batch(self) -> AbstractContextManager[BatchStats | None]:
        """While one batch runs: its ``BatchStats`` (None when metrics are off)."""
        if self.metrics is None:
            return _NOOP
        return self._batch()

    @contextmanager
    def _batch(self) -> Iterator[BatchStats]:
        stats = BatchStats()
        token = _BATCH.set(stats)
        try:
            yield stats
        finally:
            _BATCH.reset(token)

    async def batch_done(self, stats: BatchStats, queue: str, **counts: int) -> None:
        """Emit one batch's metrics (``processed``, ``failed``, ``duplicates``, ``retried``)."""
        if self.metrics is not None:
            metrics = batch_metrics(stats, **counts)
            await emit(self.metrics, metrics, {"Queue": queue}, own_line=False)

    async def fanout_done(self, queue: str, tasks: int, seconds: float) -> None:
        """Emit one fan-out's metrics: tasks sent by this call and their rate."""
        if self.metrics is not None:
            metrics = fanout_metrics(tasks, seconds)
            await emit(self.metrics, metrics, {"Queue": queue}, own_line=False)

    async def cluster_ended(self, status: str) -> None:
        """Emit ``ClustersEnded`` with the cluster's final status as a dimension."""
        if self.metrics is not None:
            metrics = [("ClustersEnded", COUNT, [1.0])]
            await emit(self.metrics, metrics, {"Status": status}, own_line=True)

    def traceparent(self) -> str | None:
        """The current span's context to put on outgoing messages; None when off."""
        return None if self.tracing is None else self.tracing.traceparent()


def message_attributes(message: Any) -> dict[str, Any]:
    """A received message's span attributes (OpenTelemetry's messaging conventions)."""
    attributes: dict[str, Any] = {
        "messaging.system": "aws_sqs",
        "messaging.message.id": message.message_id,
        "messaging.destination.name": queue_name(message.queue_url),
        "sqs_cluster.receive_count": message.receive_count,
    }
    if message.cluster_key is not None:
        attributes["sqs_cluster.cluster_id"] = message.cluster_key.id
    return attributes


def send_attributes(queue_url: str, count: int) -> dict[str, Any]:
    """A send's span attributes: where to, and how many messages."""
    return {
        "messaging.system": "aws_sqs",
        "messaging.destination.name": queue_name(queue_url),
        "messaging.batch.message_count": count,
    }


def queue_name(queue_url: str) -> str:
    """The queue's name: the last part of its URL or ARN."""
    return queue_url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]


OFF = Observer()
"""Nothing observed: the default of an ``AWS`` built without a client."""

__all__ = [
    "CONSUMER",
    "INTERNAL",
    "OFF",
    "PRODUCER",
    "BatchStats",
    "Observer",
    "queue_name",
    "send_attributes",
    "with_trace",
]
