"""safe_process_batch(model=...): payloads parsed into dataclasses or pydantic models before the
handler; a payload that does not parse fails its message alone, naming the field."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from sqs_cluster import Config, MessageClient, ReceivedMessage, Status, ValidationError

from .conftest import Queue, receive_event


@dataclass(frozen=True)
class Line:
    sku: str
    quantity: int


@dataclass(frozen=True)
class Order:
    order_id: str
    amount: float
    lines: list[Line]
    paid: bool = False
    note: str | None = None
    tags: dict[str, int] = field(default_factory=dict)


GOOD = {"order_id": "o-1", "amount": 12, "lines": [{"sku": "a", "quantity": 2}]}


async def event_of(
    client: MessageClient, sqs: Any, queue_url: str, bodies: list[Any]
) -> dict[str, Any]:
    await client.send_message_batch(queue_url, bodies)
    return receive_event(sqs, queue_url, max_messages=len(bodies))


def ids_of(event: dict[str, Any], text: str) -> list[str]:
    return [r["messageId"] for r in event["Records"] if text in r["body"]]


async def last_error(client: MessageClient, event: dict[str, Any], message_id: str) -> Any:
    record = next(r for r in event["Records"] if r["messageId"] == message_id)
    stored = await client.read_sqs_record(record).get_message_record(consistent_read=True)
    return stored.status, stored.errors[-1] if stored.errors else None


async def test_the_handler_gets_the_body_as_a_dataclass(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    event = await event_of(client, sqs, queue.url, [GOOD])
    seen: list[Order] = []

    async def handler(message: ReceivedMessage[Order]) -> float:
        seen.append(message.body)
        return message.body.amount * message.body.lines[0].quantity

    response = await client.safe_process_batch(event, handler, model=Order)
    assert response == {"batchItemFailures": []}
    assert seen == [Order("o-1", 12.0, [Line("a", 2)])]
    assert isinstance(seen[0].amount, float)
    record = await client.read_sqs_record(event["Records"][0]).get_message_record(True)
    assert (record.status, record.result) == (Status.COMPLETE, 24.0)


@pytest.mark.parametrize(
    ("body", "field_name", "says"),
    [
        ({**GOOD, "amount": "12"}, "body.amount", "expected float"),
        ({k: v for k, v in GOOD.items() if k != "order_id"}, "body.order_id", "is required"),
        ({**GOOD, "discount": 3}, "body.discount", "is not a field of Order"),
        ({**GOOD, "lines": [{"sku": "a", "quantity": True}]}, "body.lines[0].quantity", "int"),
        ({**GOOD, "paid": 1}, "body.paid", "expected bool"),
        ({**GOOD, "tags": {"x": "1"}}, "body.tags.x", "expected int"),
        ({**GOOD, "note": 5}, "body.note", "expected str"),
        (["not", "an", "object"], "body", "expected a JSON object for Order"),
    ],
)
async def test_a_body_that_does_not_parse_fails_alone_naming_the_field(
    client: MessageClient,
    queue: Queue,
    sqs: Any,
    body: Any,
    field_name: str,
    says: str,
) -> None:
    event = await event_of(client, sqs, queue.url, [body, {**GOOD, "order_id": "fine"}])
    handled: list[str] = []

    def handler(message: ReceivedMessage[Order]) -> None:
        handled.append(message.body.order_id)

    response = await client.safe_process_batch(event, handler, model=Order)
    bad = [r["messageId"] for r in event["Records"] if '"fine"' not in r["body"]]
    assert response == {"batchItemFailures": [{"itemIdentifier": bad[0]}]}
    assert handled == ["fine"]
    status, error = await last_error(client, event, bad[0])
    assert status is Status.ERROR
    assert error.type == "ValidationError"
    assert error.message.startswith(f"{field_name}: ")
    assert says in error.message


async def test_optional_fields_take_null_and_defaults(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    event = await event_of(client, sqs, queue.url, [{**GOOD, "note": None, "tags": {"a": 1}}])
    seen: list[Order] = []
    response = await client.safe_process_batch(
        event, lambda m: seen.append(m.body), model=Order, track=False
    )
    assert response == {"batchItemFailures": []}
    assert seen == [Order("o-1", 12.0, [Line("a", 2)], note=None, tags={"a": 1})]


async def test_a_cluster_task_is_parsed_and_a_bad_task_names_task_fields(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    await client.create_message_cluster(
        queue.url, [GOOD, {**GOOD, "amount": None}], omit_globals=True
    )
    event = receive_event(sqs, queue.url, max_messages=2)
    seen: list[Order] = []

    async def handler(message: ReceivedMessage[Order]) -> None:
        assert message.is_task
        seen.append(message.task)

    response = await client.safe_process_batch(event, handler, model=Order)
    bad = [r["messageId"] for r in event["Records"] if '"amount":null' in r["body"]]
    assert response == {"batchItemFailures": [{"itemIdentifier": bad[0]}]}
    assert seen == [Order("o-1", 12.0, [Line("a", 2)])]
    status, error = await last_error(client, event, bad[0])
    assert status is Status.ERROR
    assert error.message.startswith("task.amount: expected float, got None")


async def test_a_model_that_is_neither_a_dataclass_nor_pydantic_is_refused(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    event = await event_of(client, sqs, queue.url, [GOOD])
    with pytest.raises(ValidationError, match=r"^model: expected a dataclass or a pydantic"):
        await client.safe_process_batch(event, lambda m: None, model=dict)
    stored = await client.read_sqs_record(event["Records"][0]).get_message_record(True)
    assert stored.status is Status.PRE_FLIGHT  # refused before any record was touched


async def test_a_pydantic_model_parses_the_body_and_names_the_field(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    pydantic = pytest.importorskip("pydantic", reason="pydantic is not installed in this env")

    class Payment(pydantic.BaseModel):  # type: ignore[name-defined,misc]
        model_config = pydantic.ConfigDict(extra="forbid")
        payment_id: str
        amount: int

    event = await event_of(
        client, sqs, queue.url, [{"payment_id": "p", "amount": 5}, {"payment_id": "q"}]
    )
    seen: list[Any] = []
    response = await client.safe_process_batch(event, lambda m: seen.append(m.body), model=Payment)
    bad = [r["messageId"] for r in event["Records"] if '"q"' in r["body"]]
    assert response == {"batchItemFailures": [{"itemIdentifier": bad[0]}]}
    assert [(type(p).__name__, p.payment_id, p.amount) for p in seen] == [("Payment", "p", 5)]
    status, error = await last_error(client, event, bad[0])
    assert status is Status.ERROR
    assert error.message.startswith("body.amount: Field required")


async def test_the_sync_facade_takes_a_model(base_config: Config, queue: Queue, sqs: Any) -> None:
    from sqs_cluster import sync

    def run() -> tuple[Any, list[Order], list[Any]]:
        with sync.MessageClient(base_config) as client:
            client.send_message_batch(queue.url, [GOOD, {**GOOD, "lines": "none"}])
            event = receive_event(sqs, queue.url, max_messages=2)
            seen: list[Order] = []

            def handler(message: sync.ReceivedMessage[Order]) -> None:
                seen.append(message.body)

            response = client.safe_process_batch(event, handler, model=Order)
            errors = [
                client.read_sqs_record(r).get_message_record(consistent_read=True).errors
                for r in event["Records"]
                if '"none"' in r["body"]
            ]
            return response, seen, errors

    response, seen, errors = await asyncio.to_thread(run)
    assert len(response["batchItemFailures"]) == 1
    assert seen == [Order("o-1", 12.0, [Line("a", 2)])]
    assert errors[0][-1].message.startswith("body.lines: expected a JSON array")


def test_pydantic_is_never_imported_by_the_library() -> None:
    import subprocess
    import sys

    code = (
        "import sys, sqs_cluster, sqs_cluster.sync\n"
        "from sqs_cluster._messages.models import parse_model\n"
        "from dataclasses import dataclass\n"
        "@dataclass\nclass A:\n    n: int\n"
        "assert parse_model(A, {'n': 1}, 'body') == A(1)\n"
        "assert 'pydantic' not in sys.modules, 'pydantic was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
