"""Metrics as CloudWatch embedded-metric-format (EMF) lines, through Powertools' ``Metrics``
handed to the client, or through ``aws-embedded-metrics`` when ``Config.metrics_namespace``
is set. Off by default; an error while emitting is logged and ignored, never raised."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

logger = logging.getLogger("sqs_cluster")

COUNT, MILLISECONDS, PER_SECOND = "Count", "Milliseconds", "Count/Second"

Metric = tuple[str, str, Sequence[float]]
"""A metric's name, its unit and its values (one line may carry several values of one name)."""


class MetricSink(Protocol):
    """Where metrics go: one call is one event (a batch, a fan-out, a cluster's end)."""

    async def record(
        self, metrics: Sequence[Metric], dimensions: Mapping[str, str], *, own_line: bool
    ) -> None: ...


class PowertoolsSink:
    """Into the caller's Powertools ``Metrics``: its namespace, its dimensions, flushed by its
    ``log_metrics``. An event that needs its own dimensions (a cluster's end and its status)
    is written at once as its own line, with ``single_metric``, in the same namespace with
    the same ``service`` and default dimensions."""

    def __init__(self, metrics: Any) -> None:
        self.metrics = metrics

    async def record(
        self, metrics: Sequence[Metric], dimensions: Mapping[str, str], *, own_line: bool
    ) -> None:
        if own_line:
            self._own_lines(metrics, dimensions)
            return
        for name, unit, values in metrics:
            for value in values:
                self.metrics.add_metric(name=name, unit=unit, value=value)

    def _own_lines(self, metrics: Sequence[Metric], dimensions: Mapping[str, str]) -> None:
        from aws_lambda_powertools.metrics import MetricUnit, single_metric

        service = getattr(self.metrics, "service", None)
        defaults = {**({"service": service} if service else {})}
        defaults.update(getattr(self.metrics, "default_dimensions", None) or {})
        defaults.update(dimensions)
        namespace = self.metrics.namespace
        for name, unit, values in metrics:
            for value in values:
                with single_metric(
                    name=name, unit=MetricUnit(unit), value=value, namespace=namespace
                ) as metric:
                    for key, dim in defaults.items():
                        metric.add_dimension(name=key, value=dim)


class EmfSink:
    """One EMF line per event through ``aws-embedded-metrics`` (imported on first use), in
    ``namespace``, with the event's own dimensions only."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    async def record(
        self, metrics: Sequence[Metric], dimensions: Mapping[str, str], *, own_line: bool
    ) -> None:
        from aws_embedded_metrics.logger.metrics_logger_factory import create_metrics_logger

        line = create_metrics_logger()
        line.set_namespace(self.namespace)
        line.set_dimensions(dict(dimensions), use_default=False)
        for name, unit, values in metrics:
            for value in values:
                line.put_metric(name, value, unit)
        await line.flush()


def sink_for(namespace: str | None, metrics: Any) -> MetricSink | None:
    """The sink the client was given: a Powertools ``Metrics``, an EMF namespace, or none."""
    if metrics is not None:
        return PowertoolsSink(metrics)
    if namespace is None:
        return None
    if importlib.util.find_spec("aws_embedded_metrics") is None:  # found, not imported
        logger.warning(
            "metrics_namespace is set but aws-embedded-metrics is not installed: "
            "pip install 'sqs-cluster[metrics]'; no metrics are written"
        )
        return None
    return EmfSink(namespace)


async def emit(
    sink: MetricSink, metrics: Sequence[Metric], dimensions: Mapping[str, str], *, own_line: bool
) -> None:
    """Record one event; a failure is logged, never raised: metrics never fail processing."""
    try:
        await sink.record(metrics, dimensions, own_line=own_line)
    except Exception as exc:
        logger.warning("metrics not emitted (%s): %s", type(exc).__name__, exc)


class BatchStats:
    """What one batch measured while it ran: each handler run's duration."""

    __slots__ = ("durations_ms",)

    def __init__(self) -> None:
        self.durations_ms: list[float] = []


def batch_metrics(
    stats: BatchStats, *, processed: int, failed: int, duplicates: int, retried: int
) -> list[Metric]:
    """The metrics of one batch of ``safe_process_batch``."""
    metrics: list[Metric] = [
        ("MessagesProcessed", COUNT, [processed]),
        ("MessagesFailed", COUNT, [failed]),
        ("DuplicatesSkipped", COUNT, [duplicates]),
        ("MessagesRetried", COUNT, [retried]),
    ]
    if stats.durations_ms:  # EMF takes at most 100 values of one metric per line
        metrics.append(("HandlerDuration", MILLISECONDS, stats.durations_ms[:100]))
    return metrics


def fanout_metrics(tasks: int, seconds: float) -> list[Metric]:
    """The metrics of one ``create_message_cluster`` call: tasks sent and their rate."""
    rate = tasks / seconds if seconds > 0 else 0.0
    return [("TasksSent", COUNT, [tasks]), ("FanoutRate", PER_SECOND, [rate])]
