"""Metrics as CloudWatch EMF lines through Powertools' ``Metrics``, and OpenTelemetry spans
that follow each message from the producer's send to the consumer's handler."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.metrics import Metrics
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from sqs_cluster import Config, MessageClient, PartialBatchResponse, ReceivedMessage, sync

metrics = Metrics(namespace="Orders", service="orders")


def ship(message: sync.ReceivedMessage[Any]) -> None:
    """Ship one order; raising fails it, and it counts in ``MessagesFailed``."""
    if not message.body.get("address"):
        raise ValueError(f"order {message.body['id']}: no address")


def make_client(config: Config) -> sync.MessageClient:
    """Once per container: the client adds each batch's metrics to ``metrics``."""
    return sync.MessageClient(config, metrics=metrics)


def make_handler(
    client: sync.MessageClient,
) -> Callable[[dict[str, Any], Any], PartialBatchResponse]:
    """The Lambda handler; ``log_metrics`` writes the invocation's metrics as one EMF line."""

    @metrics.log_metrics
    def lambda_handler(event: dict[str, Any], context: Any) -> PartialBatchResponse:
        return client.safe_process_batch(event, ship, context=context)

    return lambda_handler


def install_tracer_provider(exporter: SpanExporter) -> None:
    """Once per process: where spans go. sqs-cluster uses the global provider."""
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


async def checkout(config: Config, queue_url: str, orders: list[dict[str, Any]]) -> None:
    """Send orders inside the caller's span: each message carries its context."""
    tracer = trace.get_tracer("orders")
    async with MessageClient(config.with_changes(tracing=True)) as client:
        with tracer.start_as_current_span("checkout"):
            await client.send_message_batch(queue_url, orders)


async def pack(message: ReceivedMessage[Any]) -> None:
    """Pack one order; its span (``sqs_cluster.handler``) is the current span here."""
    trace.get_current_span().set_attribute("order.id", message.body["id"])


async def consume(config: Config, event: dict[str, Any]) -> PartialBatchResponse:
    """Each handler span is a child of the span that sent its message."""
    async with MessageClient(config.with_changes(tracing=True)) as client:
        return await client.safe_process_batch(event, pack)
