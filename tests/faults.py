"""Fault-injection helpers: a client proxy that injects per-entry faults into real calls
against the local server, and the queues and reads the fault tests (tests/fault_injection/)
share."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sqs_cluster import MessageClient
from sqs_cluster._messages.lambda_shape import lambda_event

from .conftest import REGION, Queue, unique

Interceptor = Callable[[Callable[..., Awaitable[Any]], dict[str, Any]], Awaitable[Any]]


class FaultyClient:
    """Wraps an aiobotocore client; ``intercept[op](call, kwargs)`` replaces named operations."""

    def __init__(self, real: Any, **intercept: Interceptor) -> None:
        self._real = real
        self._intercept = intercept
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._real, name)
        if name not in self._intercept:
            return attr
        interceptor = self._intercept[name]

        async def wrapper(**kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            return await interceptor(attr, kwargs)

        return wrapper


def fail_entries_once(count: int, *, sender_fault: bool = False) -> Interceptor:
    """SendMessageBatch: withhold the first ``count`` entries of the first call, report Failed."""
    state = {"done": False}

    async def interceptor(call: Callable[..., Awaitable[Any]], kwargs: dict[str, Any]) -> Any:
        if state["done"]:
            return await call(**kwargs)
        state["done"] = True
        entries = kwargs["Entries"]
        withheld, rest = entries[:count], entries[count:]
        resp = await call(**{**kwargs, "Entries": rest}) if rest else {"Successful": []}
        failed = [
            {"Id": e["Id"], "SenderFault": sender_fault, "Code": "InternalError", "Message": "boom"}
            for e in withheld
        ]
        return {**resp, "Failed": list(resp.get("Failed", [])) + failed}

    return interceptor


def always_fail_entry(entry_id: str) -> Interceptor:
    """SendMessageBatch: the entry with this Id fails with a sender fault on every call."""

    async def interceptor(call: Callable[..., Awaitable[Any]], kwargs: dict[str, Any]) -> Any:
        entries = kwargs["Entries"]
        keep = [e for e in entries if e["Id"] != entry_id]
        resp = await call(**{**kwargs, "Entries": keep}) if keep else {"Successful": []}
        failed = list(resp.get("Failed", []))
        if len(keep) != len(entries):
            failed.append({"Id": entry_id, "SenderFault": True, "Code": "InvalidMessage"})
        return {**resp, "Failed": failed}

    return interceptor


def unprocessed_once(count: int) -> Interceptor:
    """BatchWriteItem: withhold ``count`` items of the first call and return them unprocessed."""
    state = {"done": False}

    async def interceptor(call: Callable[..., Awaitable[Any]], kwargs: dict[str, Any]) -> Any:
        if state["done"]:
            return await call(**kwargs)
        state["done"] = True
        ((table, requests),) = kwargs["RequestItems"].items()
        withheld, rest = requests[:count], requests[count:]
        resp = await call(RequestItems={table: rest}) if rest else {}
        return {**resp, "UnprocessedItems": {table: withheld}}

    return interceptor


def unprocessed_keys_once(count: int) -> Interceptor:
    """BatchGetItem: withhold ``count`` keys of the first call and return them unprocessed."""
    state = {"done": False}

    async def interceptor(call: Callable[..., Awaitable[Any]], kwargs: dict[str, Any]) -> Any:
        if state["done"]:
            return await call(**kwargs)
        state["done"] = True
        ((table, request),) = kwargs["RequestItems"].items()
        keys = request["Keys"]
        resp = await call(RequestItems={table: {**request, "Keys": keys[count:]}})
        return {**resp, "UnprocessedKeys": {table: {"Keys": keys[:count]}}}

    return interceptor


# -- queues and reads shared by the fault tests --------------------------------------------------


async def fresh_queue(client: MessageClient) -> Queue:
    """A queue without a redrive policy: no fault run may push a task to a DLQ and hide it."""
    resp = await client._aws.sqs.create_queue(
        QueueName=unique("fq"), Attributes={"VisibilityTimeout": "30"}
    )
    return Queue(resp["QueueUrl"], "")


async def redrive_queue(client: MessageClient) -> Queue:
    """A queue that allows one receive: a second one moves the message to its dead-letter queue."""
    sqs = client._aws.sqs
    dlq = (await sqs.create_queue(QueueName=unique("fdlq")))["QueueUrl"]
    attrs = await sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])
    redrive = {"deadLetterTargetArn": attrs["Attributes"]["QueueArn"], "maxReceiveCount": "1"}
    resp = await sqs.create_queue(
        QueueName=unique("fq"),
        Attributes={"VisibilityTimeout": "30", "RedrivePolicy": json.dumps(redrive)},
    )
    return Queue(resp["QueueUrl"], dlq)


async def receive_messages(
    client: MessageClient, queue_url: str, *, visibility: int = 60
) -> list[dict[str, Any]]:
    """Every visible message, as Lambda event records (received with the clean client)."""
    out: list[dict[str, Any]] = []
    while True:
        resp = await client._aws.sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            VisibilityTimeout=visibility,
            WaitTimeSeconds=0,
        )
        got = resp.get("Messages", [])
        if not got:
            return out
        out.extend(lambda_event(got, queue_url=queue_url, region=REGION)["Records"])


async def receive_bodies(client: MessageClient, queue_url: str) -> list[str]:
    return sorted(r["body"] for r in await receive_messages(client, queue_url))


async def queue_depth(client: MessageClient, queue_url: str) -> int:
    resp = await client._aws.sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )
    attrs = resp["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


async def records_for_queue(client: MessageClient, queue_url: str) -> list[dict[str, Any]]:
    """Every record item the library wrote for this queue (a Scan of the module's own table)."""
    items: list[dict[str, Any]] = []
    request: dict[str, Any] = {
        "TableName": client.config.table,
        "FilterExpression": "rKey = :r AND #t IN (:message, :task, :cluster)",
        "ExpressionAttributeNames": {"#t": "type"},
        "ExpressionAttributeValues": {
            ":r": {"S": f"SQSMessage${queue_url}"},
            ":message": {"S": "message"},
            ":task": {"S": "task"},
            ":cluster": {"S": "cluster"},
        },
    }
    while True:
        resp: Any = await client._aws.ddb.scan(**request)
        items.extend(resp.get("Items", []))
        if "LastEvaluatedKey" not in resp:
            return items
        request["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


def key_of(record: Mapping[str, Any]) -> str:
    return str(record["messageAttributes"]["sqsClusterKey"]["stringValue"])
