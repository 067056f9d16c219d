# Generated — do not edit: scripts/gen_sync.py writes this from sqs_cluster.
# Body digest: d4f8a7956e366995 (gen_sync.py --check tells hand edits from stale files).
"""Blocking twin of :mod:`sqs_cluster` (generated): the same API, with no ``async``.

Each client keeps its own event loop in a background thread, so calls block while the
async core still fans out concurrently and keeps its connections warm. See docs/sync.md.
"""

from __future__ import annotations

from .. import (
    ENV_VARS,
    BatchItemFailure,
    CallbackImportError,
    CallbackState,
    Claim,
    ClaimOutcome,
    ClusterSendError,
    CompletionQueue,
    Config,
    ConfigError,
    ConflictError,
    ErrorEntry,
    IdempotencyConflictError,
    LambdaContext,
    MalformedEventError,
    Message,
    MessageInProgressError,
    MessageRecord,
    PartialBatchResponse,
    PartialSendError,
    PayloadMissingError,
    PayloadRef,
    QueueArn,
    RecordKey,
    RecordNotFoundError,
    RecordType,
    RedriveError,
    ResourceMissingError,
    Resources,
    SentKeys,
    SQSClusterError,
    Status,
    StatusCode,
    TaskResult,
    UnsentMessage,
    ValidationError,
    WorkerOptions,
    WorkerStats,
    __version__,
    parse_record,
)
from ._aws_provision import ensure_resources
from ._callbacks import ClusterCallback, Handler
from ._cli_worker import Worker, run_worker
from ._client import MessageClient
from ._clusters_model import ClusterRecord
from ._messages_event import ReceivedMessage

__all__ = [
    "ENV_VARS",
    "Config",
    "MessageClient",
    "Resources",
    "ensure_resources",
    "ErrorEntry",
    "MessageRecord",
    "RecordKey",
    "RecordType",
    "Status",
    "StatusCode",
    "CallbackState",
    "ClusterCallback",
    "ClusterRecord",
    "BatchItemFailure",
    "Claim",
    "ClaimOutcome",
    "Handler",
    "Message",
    "PartialBatchResponse",
    "QueueArn",
    "ReceivedMessage",
    "SentKeys",
    "UnsentMessage",
    "parse_record",
    "LambdaContext",
    "Worker",
    "WorkerOptions",
    "WorkerStats",
    "run_worker",
    "ClusterSendError",
    "ConfigError",
    "ConflictError",
    "IdempotencyConflictError",
    "MalformedEventError",
    "CallbackImportError",
    "CompletionQueue",
    "TaskResult",
    "PayloadMissingError",
    "PayloadRef",
    "MessageInProgressError",
    "PartialSendError",
    "RedriveError",
    "RecordNotFoundError",
    "ResourceMissingError",
    "SQSClusterError",
    "ValidationError",
    "__version__",
]
