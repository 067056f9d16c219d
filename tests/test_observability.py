"""Metrics (EMF lines through Powertools' Metrics or aws-embedded-metrics) and OpenTelemetry
spans: what a batch, a fan-out and a cluster's end report, how the producer's trace context
reaches the consumer's handler span, and that both stay off unless turned on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aws_lambda_powertools.metrics import Metrics
from docs.examples import guide_observability as observability
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan

from sqs_cluster import Config, Message, MessageClient, ReceivedMessage, ValidationError, sync

from .conftest import Queue, make_queue, receive_event
from .otel import EXPORTER, finished_spans, install
from .sync_api import AsyncShaped

pytestmark = pytest.mark.asyncio


@pytest.fixture(autouse=True)
def no_spans_yet() -> Iterator[None]:
    install()
    finished_spans()
    EXPORTER.clear()
    yield
    EXPORTER.clear()


@asynccontextmanager
async def open_client(kind: str, config: Config, **options: Any) -> AsyncIterator[Any]:
    """The async client, or the blocking facade shaped like it, built with ``options``."""
    if kind == "async":
        async with MessageClient(config, **options) as client:
            yield client
        return
    facade = sync.MessageClient(config, **options)
    await asyncio.to_thread(facade.__enter__)
    try:
        yield AsyncShaped(facade, MessageClient, facade)
    finally:
        await asyncio.to_thread(facade.close)


def handler(message: ReceivedMessage[Any]) -> None:
    if message.body == "bad":
        raise ValueError("bad message")


async def mixed_batch(config: Config, queue: Queue, sqs: Any) -> dict[str, Any]:
    """Three messages delivered a second time: one already processed (a duplicate), one to
    succeed, one to fail."""
    async with MessageClient(config) as plain:
        await plain.send_message_batch(queue.url, ["done-before", "ok", "bad"])
        first = receive_event(sqs, queue.url, max_messages=3)
        done = [r for r in first["Records"] if r["body"] == "done-before"]
        await plain.safe_process_batch({"Records": done}, handler)
    for record in first["Records"]:  # back to the queue: each is received a second time
        sqs.change_message_visibility(
            QueueUrl=queue.url, ReceiptHandle=record["receiptHandle"], VisibilityTimeout=0
        )
    return receive_event(sqs, queue.url, max_messages=3)


def emf_lines(text: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return [line for line in lines if "_aws" in line]


def values(line: dict[str, Any], name: str) -> list[float]:
    """A metric's values in an EMF line (one value may be written bare)."""
    value = line[name]
    return value if isinstance(value, list) else [value]


def definitions(line: dict[str, Any]) -> dict[str, str]:
    """Metric name -> unit of one EMF line."""
    return {m["Name"]: m["Unit"] for d in line["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_powertools_metrics_count_a_batch(
    kind: str, base_config: Config, queue: Queue, sqs: Any
) -> None:
    event = await mixed_batch(base_config, queue, sqs)
    metrics = Metrics(namespace="SqsClusterTest", service="orders")
    metrics.clear_metrics()
    async with open_client(kind, base_config, metrics=metrics) as client:
        response = await client.safe_process_batch(event, handler)
    assert len(response["batchItemFailures"]) == 1
    line: dict[str, Any] = dict(metrics.serialize_metric_set())
    metrics.clear_metrics()
    assert values(line, "MessagesProcessed") == [1.0]
    assert values(line, "MessagesFailed") == [1.0]
    assert values(line, "DuplicatesSkipped") == [1.0]
    assert values(line, "MessagesRetried") == [3.0]
    assert len(values(line, "HandlerDuration")) == 2  # the two handlers that ran
    assert definitions(line)["HandlerDuration"] == "Milliseconds"
    assert line["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "SqsClusterTest"


async def run_cluster(client: Any, sqs: Any, queue: Queue, tasks: list[Any]) -> None:
    """Fan ``tasks`` out and consume them until the cluster ends."""
    await client.create_message_cluster(queue.url, tasks)
    event = receive_event(sqs, queue.url, max_messages=len(tasks))
    assert len(event["Records"]) == len(tasks)
    response = await client.safe_process_batch(
        event, lambda m: None, on_cluster_complete=lambda cluster, get_globals: None
    )
    assert response == {"batchItemFailures": []}


async def test_powertools_metrics_report_a_fanout_and_a_cluster_end(
    base_config: Config, queue: Queue, sqs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = Metrics(namespace="SqsClusterTest", service="orders")
    metrics.clear_metrics()
    async with MessageClient(base_config, metrics=metrics) as client:
        await run_cluster(client, sqs, queue, [1, 2, 3])
    line: dict[str, Any] = dict(metrics.serialize_metric_set())
    metrics.clear_metrics()
    assert values(line, "TasksSent") == [3.0]
    assert values(line, "FanoutRate")[0] > 0
    assert values(line, "MessagesProcessed") == [3.0]
    assert definitions(line)["FanoutRate"] == "Count/Second"
    ended = [x for x in emf_lines(capsys.readouterr().out) if "ClustersEnded" in x]
    assert len(ended) == 1
    assert values(ended[0], "ClustersEnded") == [1.0]
    assert ended[0]["Status"] == "COMPLETE"
    assert ended[0]["service"] == "orders"


@pytest.fixture
def emf_stdout(monkeypatch: pytest.MonkeyPatch) -> None:
    """aws-embedded-metrics writing to stdout, as it does in Lambda."""
    from aws_embedded_metrics import config
    from aws_embedded_metrics.environment import environment_detector

    monkeypatch.setattr(config.get_config(), "environment", "local")
    monkeypatch.setattr(environment_detector.EnvironmentCache, "environment", None)


@pytest.mark.usefixtures("emf_stdout")
async def test_embedded_metrics_lines_for_a_batch_and_a_cluster(
    base_config: Config, queue: Queue, sqs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    event = await mixed_batch(base_config, queue, sqs)
    config = base_config.with_changes(metrics_namespace="SqsClusterEmf")
    other = await make_queue(base_config, visibility_timeout=30)
    capsys.readouterr()
    async with MessageClient(config) as client:
        await client.safe_process_batch(event, handler)
        await run_cluster(client, sqs, other, ["a", "b"])
    lines = emf_lines(capsys.readouterr().out)
    batch, fanout, cluster_batch, ended = (
        lines[0],
        lines[1],
        lines[-1] if "MessagesProcessed" in lines[-1] else lines[-2],
        next(x for x in lines if "ClustersEnded" in x),
    )
    counts = [values(batch, n) for n in ("MessagesProcessed", "MessagesFailed")]
    assert counts == [[1.0], [1.0]]
    counts = [values(batch, n) for n in ("DuplicatesSkipped", "MessagesRetried")]
    assert counts == [[1.0], [3.0]]
    assert len(values(batch, "HandlerDuration")) == 2
    assert batch["Queue"] == queue.url.rsplit("/", 1)[1]
    assert batch["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "SqsClusterEmf"
    assert batch["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Queue"]]
    assert values(fanout, "TasksSent") == [2.0] and fanout["Queue"] == other.url.rsplit("/", 1)[1]
    assert values(cluster_batch, "MessagesProcessed") == [2.0]
    assert (values(ended, "ClustersEnded"), ended["Status"]) == ([1.0], "COMPLETE")
    assert ended["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Status"]]


async def test_metrics_and_tracing_are_off_by_default(
    base_config: Config, queue: Queue, sqs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (base_config.metrics_namespace, base_config.tracing) == (None, False)
    async with MessageClient(base_config) as client:
        await run_cluster(client, sqs, queue, [1, 2])
    assert emf_lines(capsys.readouterr().out) == []
    assert finished_spans() == ()


async def test_a_failing_metrics_sink_never_fails_processing(
    base_config: Config, queue: Queue, sqs: Any, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        namespace = "Broken"

        def add_metric(self, **_: Any) -> None:
            raise RuntimeError("sink down")

    async with MessageClient(base_config, metrics=Broken()) as client:
        await run_cluster(client, sqs, queue, [1])
    assert "metrics not emitted (RuntimeError): sink down" in caplog.text


async def test_metrics_given_twice_is_refused(base_config: Config) -> None:
    config = base_config.with_changes(metrics_namespace="Twice")
    with pytest.raises(ValidationError, match="metrics"):
        MessageClient(config, metrics=Metrics(namespace="Twice"))


def spans(name: str) -> list[ReadableSpan]:
    return [s for s in finished_spans() if s.name == name]


def parent_of(span: ReadableSpan) -> tuple[int, int]:
    assert span.parent is not None
    return span.parent.trace_id, span.parent.span_id


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_the_handler_span_is_a_child_of_the_send_span(
    kind: str, base_config: Config, queue: Queue, sqs: Any
) -> None:
    config = base_config.with_changes(tracing=True)
    async with open_client(kind, config) as client:
        await client.send_message(queue.url, {"n": 1})
        event = receive_event(sqs, queue.url, max_messages=1)
        assert "traceparent" in event["Records"][0]["messageAttributes"]
        await client.safe_process_batch(event, handler)
    (send,) = spans("sqs_cluster.send")
    (handled,) = spans("sqs_cluster.handler")
    assert parent_of(handled) == (send.context.trace_id, send.context.span_id)
    assert handled.kind is trace.SpanKind.CONSUMER and send.kind is trace.SpanKind.PRODUCER
    assert send.attributes is not None and handled.attributes is not None
    assert send.attributes["messaging.destination.name"] == queue.url.rsplit("/", 1)[1]
    assert handled.attributes["messaging.message.id"] == event["Records"][0]["messageId"]
    (claimed,) = spans("sqs_cluster.claim")
    assert parent_of(claimed) == (send.context.trace_id, send.context.span_id)


async def test_cluster_tasks_carry_the_fanout_span_and_the_end_has_spans(
    base_config: Config, queue: Queue, sqs: Any
) -> None:
    config = base_config.with_changes(tracing=True)
    async with MessageClient(config) as client:
        await run_cluster(client, sqs, queue, [1, 2, 3])
    (fanout,) = spans("sqs_cluster.fanout")
    handled = spans("sqs_cluster.handler")
    assert len(handled) == 3
    for span in handled:
        assert parent_of(span) == (fanout.context.trace_id, fanout.context.span_id)
        assert span.attributes is not None and "sqs_cluster.cluster_id" in span.attributes
    (ended,) = spans("sqs_cluster.complete")
    assert ended.attributes is not None and ended.attributes["sqs_cluster.status"] == "COMPLETE"
    assert len(spans("sqs_cluster.callback")) == 1


async def test_a_message_with_every_attribute_taken_carries_the_x_ray_header(
    base_config: Config, queue: Queue, sqs: Any
) -> None:
    config = base_config.with_changes(tracing=True)
    full = {f"a{i}": {"DataType": "String", "StringValue": "x"} for i in range(9)}
    async with MessageClient(config) as client:
        await client.send_message_batch(queue.url, [Message(body="b", message_attributes=full)])
        event = receive_event(sqs, queue.url, max_messages=1)
    record = event["Records"][0]
    assert "traceparent" not in record["messageAttributes"]
    (send,) = spans("sqs_cluster.send")
    context = send.context
    trace_id = f"{context.trace_id:032x}"
    header = f"Root=1-{trace_id[:8]}-{trace_id[8:]};Parent={context.span_id:016x};Sampled=1"
    if "AWSTraceHeader" in record["attributes"]:  # when the server passes it through
        assert record["attributes"]["AWSTraceHeader"] == header
    record["attributes"]["AWSTraceHeader"] = header  # as Lambda hands it over
    async with MessageClient(config) as client:
        await client.safe_process_batch(event, handler)
    (handled,) = spans("sqs_cluster.handler")
    assert parent_of(handled) == (context.trace_id, context.span_id)


# -- the documented example (docs/operations/observability.md; tests/test_guides.py checks
# that the page quotes it exactly) ------------------------------------------------------------


async def test_the_documented_lambda_handler_writes_the_batch_metrics(
    base_config: Config, queue: Queue, sqs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    orders = [{"id": 1, "address": "1 Main St"}, {"id": 2}]
    async with MessageClient(base_config) as sender:
        await sender.send_message_batch(queue.url, orders)
    event = receive_event(sqs, queue.url, max_messages=2)
    client = observability.make_client(base_config)
    try:
        handler = observability.make_handler(client)
        response = await asyncio.to_thread(handler, event, None)
    finally:
        await asyncio.to_thread(client.close)
    assert len(response["batchItemFailures"]) == 1
    (line,) = [x for x in emf_lines(capsys.readouterr().out) if "MessagesProcessed" in x]
    assert values(line, "MessagesProcessed") == values(line, "MessagesFailed") == [1.0]
    assert line["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Orders"
    assert line["service"] == "orders"


async def test_the_documented_trace_runs_from_checkout_to_the_handler(
    base_config: Config, queue: Queue, sqs: Any
) -> None:
    await observability.checkout(base_config, queue.url, [{"id": 1, "address": "1 Main St"}])
    event = receive_event(sqs, queue.url, max_messages=1)
    assert await observability.consume(base_config, event) == {"batchItemFailures": []}
    (checkout,) = spans("checkout")
    (send,) = spans("sqs_cluster.send")
    (handled,) = spans("sqs_cluster.handler")
    assert parent_of(send) == (checkout.context.trace_id, checkout.context.span_id)
    assert parent_of(handled) == (send.context.trace_id, send.context.span_id)
    assert handled.attributes is not None and handled.attributes["order.id"] == 1


async def test_a_blocking_send_joins_the_callers_span(
    base_config: Config, queue: Queue, sqs: Any
) -> None:
    """The facade runs on its own loop thread; the caller's span is still the send's parent."""
    client = sync.MessageClient(base_config.with_changes(tracing=True))

    def checkout() -> None:
        with trace.get_tracer("shop").start_as_current_span("checkout"):
            client.send_message(queue.url, "order")

    try:
        await asyncio.to_thread(checkout)
    finally:
        await asyncio.to_thread(client.close)
    (outer,) = spans("checkout")
    (send,) = spans("sqs_cluster.send")
    assert parent_of(send) == (outer.context.trace_id, outer.context.span_id)
