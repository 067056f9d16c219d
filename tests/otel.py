"""One in-memory span exporter for the test process, on the global tracer provider that the
documented ``install_tracer_provider`` sets (OpenTelemetry allows setting it once)."""

from __future__ import annotations

from docs.examples import guide_observability as observability
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

EXPORTER = InMemorySpanExporter()


def install() -> None:
    """The example's provider, exporting to ``EXPORTER``; once per process."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        observability.install_tracer_provider(EXPORTER)


def finished_spans() -> tuple[ReadableSpan, ...]:
    """The spans ended so far (the batch processor flushed first)."""
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    provider.force_flush()
    return EXPORTER.get_finished_spans()
