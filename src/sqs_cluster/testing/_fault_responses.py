"""What the fault injector answers: error responses, withheld batch entries, their reports.

Pure functions of the call and a seeded ``random.Random``; the injector decides when.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Mapping
from typing import Any

from ._fault_kinds import Call, FaultKind


class Body:
    """The ``raw`` of a synthetic response: what aiobotocore reads the body from."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def read(self, *_: Any) -> bytes:
        return self._data


def split_ddb_request(
    params: Mapping[str, Any], *, reads: bool, rate: float, rng: random.Random
) -> tuple[dict[str, Any], dict[str, Any], int]:
    """Roll each entry of a BatchWriteItem (or, ``reads``, BatchGetItem) request at ``rate``:
    returns the request items kept, those withheld, and how many entries were withheld."""
    kept: dict[str, Any] = {}
    dropped: dict[str, Any] = {}
    count = 0
    for table, request in params.get("RequestItems", {}).items():
        entries = request["Keys"] if reads else request
        rolls = [rng.random() < rate for _ in entries]
        keep = [e for e, lose in zip(entries, rolls, strict=True) if not lose]
        lost = [e for e, lose in zip(entries, rolls, strict=True) if lose]
        count += len(lost)
        if reads:
            spec = {k: v for k, v in request.items() if k != "Keys"}
            if keep:
                kept[table] = {**spec, "Keys": keep}
            if lost:
                dropped[table] = {**spec, "Keys": lost}
        else:
            if keep:
                kept[table] = keep
            if lost:
                dropped[table] = lost
    return kept, dropped, count


def split_sqs_entries(
    entries: list[dict[str, Any]], *, failed_rate: float, sender_rate: float, rng: random.Random
) -> dict[str, bool]:
    """Entry ``Id`` -> ``SenderFault`` for each entry withheld from an SQS batch request."""
    outcome: dict[str, bool] = {}
    for entry in entries:
        retryable, sender = rng.random(), rng.random()
        if retryable < failed_rate:
            outcome[entry["Id"]] = False
        elif sender < sender_rate:
            outcome[entry["Id"]] = True
    return outcome


def report_withheld(call: Call, parsed: dict[str, Any]) -> None:
    """Add a call's withheld entries to its parsed answer (UnprocessedItems/Keys, Failed)."""
    if call.dropped_ddb:
        name = "UnprocessedKeys" if call.operation == "BatchGetItem" else "UnprocessedItems"
        unprocessed = parsed.setdefault(name, {})
        for table, entries in call.dropped_ddb.items():
            if call.operation == "BatchGetItem":
                slot = unprocessed.setdefault(table, {**entries, "Keys": []})
                slot["Keys"].extend(entries["Keys"])
            else:
                unprocessed.setdefault(table, []).extend(entries)
    if call.dropped_sqs:
        parsed.setdefault("Successful", [])
        failed = parsed.setdefault("Failed", [])
        for entry_id, sender in call.dropped_sqs.items():
            failed.append(failed_entry(call.operation, entry_id, sender))


def error_for(kind: FaultKind, call: Call, rng: random.Random) -> tuple[int, str, dict[str, Any]]:
    """Status, error code and extra fields of a request-level fault."""
    service = call.service
    if kind is FaultKind.THROTTLING:
        if service == "s3":
            return 503, "SlowDown", {}
        if service == "sqs":
            return 400, "RequestThrottled", {}
        choice = rng.choice(["ThrottlingException", "ProvisionedThroughputExceededException"])
        return 400, choice, {}
    if kind is FaultKind.SERVER_ERROR:
        if rng.random() < 0.5:
            return 503, "ServiceUnavailable", {}
        return 500, ("InternalServerError" if service == "dynamodb" else "InternalError"), {}
    if kind is FaultKind.TRANSACTION_CONFLICT:
        size = max(1, call.transact_items)
        reasons = [{"Code": "None"} for _ in range(size)]
        reasons[rng.randrange(size)] = {
            "Code": "TransactionConflict",
            "Message": "Transaction is ongoing for the item",
        }
        codes = ", ".join(r["Code"] for r in reasons)
        return (
            400,
            "TransactionCanceledException",
            {
                "CancellationReasons": reasons,
                "message": f"Transaction cancelled, please refer cancellation reasons for "
                f"specific reasons [{codes}]",
            },
        )
    if kind is FaultKind.S3_PRECONDITION_FAILED:
        return 412, "PreconditionFailed", {}
    if kind is FaultKind.S3_CONFLICT:
        return 409, "ConditionalRequestConflict", {}
    raise AssertionError(kind)  # pragma: no cover - entry kinds never reach here


def new_response(url: str, status: int, headers: dict[str, str], body: bytes) -> Any:
    """An HTTP response as aiobotocore's endpoint returns it."""
    from aiobotocore.awsrequest import AioAWSResponse

    return AioAWSResponse(url, status, headers, Body(body))  # type: ignore[arg-type]


def error_response(service: str, status: int, code: str, url: str, extra: Mapping[str, Any]) -> Any:
    """An error answer in the service's own protocol (S3 XML, JSON with SQS's query codes)."""
    request_id = uuid.uuid4().hex
    message = extra.get("message") or f"{code} (injected by sqs_cluster.testing)"
    if service == "s3":
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message>"
            f"<RequestId>{request_id}</RequestId></Error>"
        )
        headers = {"Content-Type": "application/xml", "x-amz-request-id": request_id}
        return new_response(url, status, headers, xml.encode())
    namespace = (
        "com.amazonaws.dynamodb.v20120810" if service == "dynamodb" else f"com.amazonaws.{service}"
    )
    body = {"__type": f"{namespace}#{code}", **extra, "message": message}
    headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": request_id}
    if service == "sqs":  # SQS speaks JSON with its query-era error codes in this header
        headers["x-amzn-query-error"] = f"{code};{'Sender' if status < 500 else 'Receiver'}"
    return new_response(url, status, headers, json.dumps(body).encode())


def synthetic_success(call: Call, url: str) -> Any:
    """The answer to a batch whose every entry is withheld (an empty batch is invalid)."""
    if call.operation == "BatchGetItem":
        body: dict[str, Any] = {"Responses": {}, "UnprocessedKeys": {}}
    elif call.operation == "BatchWriteItem":
        body = {"UnprocessedItems": {}}
    else:
        body = {"Successful": [], "Failed": []}
    headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": uuid.uuid4().hex}
    return new_response(url, 200, headers, json.dumps(body).encode())


def failed_entry(operation: str, entry_id: str, sender: bool) -> dict[str, Any]:
    """A ``Failed`` entry of an SQS batch answer."""
    if not sender:
        code = "InternalError"
    elif operation == "SendMessageBatch":
        code = "InvalidParameterValue"
    else:
        code = "ReceiptHandleIsInvalid"
    return {
        "Id": entry_id,
        "SenderFault": sender,
        "Code": code,
        "Message": f"{code} (injected by sqs_cluster.testing)",
    }
