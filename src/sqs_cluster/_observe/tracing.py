"""OpenTelemetry spans and the producer's trace context on each message.

Built only when ``Config.tracing`` is on and ``opentelemetry-api`` is importable; spans go to
the global tracer provider. The context rides in the ``traceparent`` message attribute (W3C)
when one of SQS's 10 attributes is free, else in the ``AWSTraceHeader`` system attribute
(X-Ray's format); a consumer reads either, the attribute first.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

logger = logging.getLogger("sqs_cluster")

TRACE_ATTRIBUTE = "traceparent"
"""The message attribute carrying the producer's W3C ``traceparent``."""
XRAY_ATTRIBUTE = "AWSTraceHeader"
"""The system attribute used when every message attribute is taken."""
MAX_MESSAGE_ATTRIBUTES = 10

_W3C = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_XRAY_ROOT = re.compile(r"^1-([0-9a-f]{8})-([0-9a-f]{24})$")


def w3c_to_xray(traceparent: str) -> str | None:
    """``00-<trace>-<span>-<flags>`` as X-Ray's ``Root=1-...;Parent=...;Sampled=...``."""
    match = _W3C.match(traceparent)
    if match is None:
        return None
    trace_id, span_id, flags = match.groups()
    sampled = int(flags, 16) & 1
    return f"Root=1-{trace_id[:8]}-{trace_id[8:]};Parent={span_id};Sampled={sampled}"


def xray_to_w3c(header: str) -> str | None:
    """X-Ray's trace header as a W3C ``traceparent``; None without a root and a parent."""
    parts = dict(p.strip().partition("=")[::2] for p in header.split(";") if "=" in p)
    root = _XRAY_ROOT.match(parts.get("Root", "").lower())
    parent = parts.get("Parent", "").lower()
    if root is None or not re.fullmatch(r"[0-9a-f]{16}", parent):
        return None
    flags = "01" if parts.get("Sampled") == "1" else "00"
    return f"00-{root.group(1)}{root.group(2)}-{parent}-{flags}"


def _string_value(attribute: Any) -> str | None:
    """A message attribute's string, in a Lambda event's shape or SQS's."""
    if not isinstance(attribute, Mapping):
        return None
    value = attribute.get("stringValue", attribute.get("StringValue"))
    return value if isinstance(value, str) else None


def traceparent_of(attributes: Mapping[str, Any], system: Mapping[str, Any]) -> str | None:
    """The producer's ``traceparent``: from the message attribute, else ``AWSTraceHeader``."""
    value = _string_value(attributes.get(TRACE_ATTRIBUTE))
    if value is not None:
        return value
    header = system.get(XRAY_ATTRIBUTE)
    return xray_to_w3c(header) if isinstance(header, str) else None


def with_trace(
    entry: Mapping[str, Any], traceparent: str, room: int | None = None
) -> dict[str, Any]:
    """A copy of a SendMessage(Batch) entry carrying ``traceparent``: as a message attribute
    when one is free and the message has ``room`` for it (bytes under the queue's limit),
    else as ``AWSTraceHeader``, which does not count towards the message's size. An entry
    that has either is left as it is."""
    attrs = entry.get("MessageAttributes") or {}
    system = entry.get("MessageSystemAttributes") or {}
    if TRACE_ATTRIBUTE in attrs or XRAY_ATTRIBUTE in system:
        return dict(entry)
    fits = room is None or room >= len(TRACE_ATTRIBUTE) + len("String") + len(traceparent)
    if fits and len(attrs) < MAX_MESSAGE_ATTRIBUTES:
        value = {"DataType": "String", "StringValue": traceparent}
        return {**entry, "MessageAttributes": {**attrs, TRACE_ATTRIBUTE: value}}
    header = w3c_to_xray(traceparent)
    if header is None:
        return dict(entry)
    xray = {"DataType": "String", "StringValue": header}
    return {**entry, "MessageSystemAttributes": {**system, XRAY_ATTRIBUTE: xray}}


class Tracing:
    """The spans of one client, on the global tracer provider's ``sqs_cluster`` tracer."""

    def __init__(self) -> None:
        from opentelemetry import propagate, trace

        self._trace = trace
        self._propagate = propagate
        self._tracer = trace.get_tracer("sqs_cluster")

    @contextmanager
    def span(
        self,
        name: str,
        attributes: Mapping[str, Any],
        *,
        kind: str = "INTERNAL",
        traceparent: str | None = None,
    ) -> Iterator[Any]:
        """A span, current while the block runs; its parent is the producer's context when
        ``traceparent`` is given, else the current span."""
        parent = None
        if traceparent is not None:
            parent = self._propagate.extract({TRACE_ATTRIBUTE: traceparent})
        with self._tracer.start_as_current_span(
            name,
            context=parent,
            kind=getattr(self._trace.SpanKind, kind),
            attributes=dict(attributes),
        ) as span:
            yield span

    def traceparent(self) -> str | None:
        """The current span's W3C ``traceparent``, None when no span is recording."""
        carrier: dict[str, str] = {}
        self._propagate.inject(carrier)
        return carrier.get(TRACE_ATTRIBUTE)


def tracing_for(enabled: bool) -> Tracing | None:
    """Tracing when asked for and ``opentelemetry-api`` is installed; None otherwise."""
    if not enabled:
        return None
    try:
        return Tracing()
    except ImportError:
        logger.warning(
            "tracing is on but opentelemetry-api is not installed: "
            "pip install 'sqs-cluster[tracing]'; no spans are made"
        )
        return None
