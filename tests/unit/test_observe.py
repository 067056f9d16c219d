"""The producer's trace context on a message: W3C ``traceparent`` and X-Ray's header, both
ways, and where an entry carries it; observability without its libraries. Pure: no server."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from sqs_cluster import Config
from sqs_cluster._observe import Observer
from sqs_cluster._observe.tracing import traceparent_of, w3c_to_xray, with_trace, xray_to_w3c

W3C = "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01"
XRAY = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


def test_w3c_and_x_ray_headers_convert_both_ways() -> None:
    assert w3c_to_xray(W3C) == XRAY
    assert xray_to_w3c(XRAY) == W3C
    assert xray_to_w3c(XRAY.replace("Sampled=1", "Sampled=0")) == W3C[:-2] + "00"
    assert xray_to_w3c("Root=1-5759e988-bd862e3fe1be46a994272793") is None  # no parent
    assert w3c_to_xray("not a traceparent") is None


def test_the_attribute_wins_over_the_system_header() -> None:
    attribute = {"traceparent": {"stringValue": W3C, "dataType": "String"}}
    other = "Root=1-00000000-000000000000000000000001;Parent=0000000000000001;Sampled=1"
    assert traceparent_of(attribute, {"AWSTraceHeader": other}) == W3C
    assert traceparent_of({}, {"AWSTraceHeader": XRAY}) == W3C
    assert traceparent_of({}, {}) is None


def test_an_entry_takes_the_attribute_while_one_is_free() -> None:
    entry = {"MessageBody": "b", "MessageAttributes": {"k": {"DataType": "String"}}}
    stamped = with_trace(entry, W3C)
    assert stamped["MessageAttributes"]["traceparent"]["StringValue"] == W3C
    assert "traceparent" not in entry["MessageAttributes"]  # the prepared entry is kept as is
    full = {f"a{i}": {"DataType": "String", "StringValue": "x"} for i in range(10)}
    stamped = with_trace({"MessageBody": "b", "MessageAttributes": full}, W3C)
    assert stamped["MessageAttributes"] == full
    assert stamped["MessageSystemAttributes"]["AWSTraceHeader"]["StringValue"] == XRAY


def test_a_message_without_room_for_the_attribute_takes_the_system_header() -> None:
    entry = {"MessageBody": "b", "MessageAttributes": {}}
    assert "traceparent" in with_trace(entry, W3C, room=72)["MessageAttributes"]
    tight = with_trace(entry, W3C, room=71)  # 72 bytes: name, type and value
    assert tight["MessageAttributes"] == {}
    assert tight["MessageSystemAttributes"]["AWSTraceHeader"]["StringValue"] == XRAY


def test_observability_without_its_libraries_warns_and_stays_off(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("opentelemetry", "aws_embedded_metrics"):
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    observer = Observer.for_config(Config(table="t", metrics_namespace="N", tracing=True))
    assert (observer.metrics, observer.tracing) == (None, None)
    assert "pip install 'sqs-cluster[metrics]'" in caplog.text
    assert "pip install 'sqs-cluster[tracing]'" in caplog.text
