"""What the fault injector can do wrong, and the record of one API call while it runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

ENV_VAR = "SQS_CLUSTER_FAULTS"
"""Environment variable read by :meth:`FaultInjector.from_env`."""


class FaultKind(str, Enum):
    """What goes wrong. Request-level kinds are drawn per attempt, entry kinds per entry."""

    THROTTLING = "throttling"
    """DynamoDB 400 ThrottlingException / ProvisionedThroughputExceededException, SQS 400
    RequestThrottled, S3 503 SlowDown. Not performed; botocore retries it."""
    SERVER_ERROR = "server_error"
    """500 InternalError / 503 ServiceUnavailable. Not performed; botocore retries it."""
    CONNECTION_RESET = "connection_reset"
    """ConnectionClosedError before the request reached the server. Retried by botocore."""
    CONNECT_TIMEOUT = "connect_timeout"
    """ConnectTimeoutError: the server was never reached. Retried by botocore."""
    READ_TIMEOUT = "read_timeout"
    """The server performs the request, then the response is lost (ReadTimeoutError). Retried
    by botocore, so the request runs again: the case that tests idempotency."""
    UNPROCESSED = "unprocessed"
    """Per entry: DynamoDB BatchWriteItem ``UnprocessedItems`` / BatchGetItem ``UnprocessedKeys``.
    Withheld entries are not performed."""
    TRANSACTION_CONFLICT = "transaction_conflict"
    """TransactWriteItems cancelled with a ``TransactionConflict`` reason. Not performed."""
    SQS_FAILED_ENTRY = "sqs_failed_entry"
    """Per entry: a ``Failed`` entry with ``SenderFault: false`` in SendMessageBatch,
    DeleteMessageBatch or ChangeMessageVisibilityBatch. Not performed."""
    SQS_SENDER_FAULT = "sqs_sender_fault"
    """Per entry: a ``Failed`` entry with ``SenderFault: true``. Not performed."""
    S3_PRECONDITION_FAILED = "s3_precondition_failed"
    """412 PreconditionFailed on an S3 request with ``If-Match`` (another writer won). Not
    performed."""
    S3_CONFLICT = "s3_conflict"
    """409 ConditionalRequestConflict on a conditional S3 write (``If-Match`` or
    ``If-None-Match``): a concurrent conditional write; S3 says retry. Not performed."""


REQUEST_KINDS = (
    FaultKind.THROTTLING,
    FaultKind.SERVER_ERROR,
    FaultKind.CONNECTION_RESET,
    FaultKind.CONNECT_TIMEOUT,
    FaultKind.READ_TIMEOUT,
    FaultKind.TRANSACTION_CONFLICT,
    FaultKind.S3_PRECONDITION_FAILED,
    FaultKind.S3_CONFLICT,
)
"""Kinds drawn once per attempt, in this order (the first hit is injected)."""

SQS_BATCH_OPERATIONS = frozenset(
    {"SendMessageBatch", "DeleteMessageBatch", "ChangeMessageVisibilityBatch"}
)

FAULT_SCOPE: dict[FaultKind, frozenset[str] | None] = {
    FaultKind.THROTTLING: None,
    FaultKind.SERVER_ERROR: None,
    FaultKind.CONNECTION_RESET: None,
    FaultKind.CONNECT_TIMEOUT: None,
    FaultKind.READ_TIMEOUT: None,
    FaultKind.UNPROCESSED: frozenset({"dynamodb.BatchWriteItem", "dynamodb.BatchGetItem"}),
    FaultKind.TRANSACTION_CONFLICT: frozenset({"dynamodb.TransactWriteItems"}),
    FaultKind.SQS_FAILED_ENTRY: frozenset(f"sqs.{op}" for op in SQS_BATCH_OPERATIONS),
    FaultKind.SQS_SENDER_FAULT: frozenset(f"sqs.{op}" for op in SQS_BATCH_OPERATIONS),
    FaultKind.S3_PRECONDITION_FAILED: frozenset({"s3.PutObject", "s3.GetObject", "s3.HeadObject"}),
    FaultKind.S3_CONFLICT: frozenset({"s3.PutObject"}),
}
"""``service.Operation`` names each kind can hit (None: every operation of every service)."""


def fault_services(kind: FaultKind) -> frozenset[str]:
    """The services a kind can hit (``{"sqs", "dynamodb", "s3"}`` for request-level kinds)."""
    scope = FAULT_SCOPE[kind]
    if scope is None:
        return frozenset({"sqs", "dynamodb", "s3"})
    return frozenset(op.split(".", 1)[0] for op in scope)


@dataclass(frozen=True)
class InjectedFault:
    """One injected fault: which kind, on which call (and attempt) of which operation."""

    kind: FaultKind
    operation: str
    call: int
    attempt: int | None = None
    entries: int = 0
    detail: str = ""


@dataclass
class Call:
    """The state of one API call, shared by its events (via a ContextVar and its context)."""

    service: str
    operation: str
    number: int
    eligible: bool
    attempts: int = 0
    synthetic: bool = False
    dropped_ddb: dict[str, Any] | None = None
    dropped_sqs: dict[str, bool] | None = None
    transact_items: int = 0


def op_name(call: Call) -> str:
    """``service.Operation`` of a call."""
    return f"{call.service}.{call.operation}"


def applies(kind: FaultKind, call: Call, headers: Mapping[str, str]) -> bool:
    """Whether a request-level kind can hit this call (its scope; S3 conditions)."""
    scope = FAULT_SCOPE[kind]
    if scope is not None and op_name(call) not in scope:
        return False
    if kind is FaultKind.S3_PRECONDITION_FAILED:
        return "If-Match" in headers
    if kind is FaultKind.S3_CONFLICT:
        return "If-Match" in headers or "If-None-Match" in headers
    return True
