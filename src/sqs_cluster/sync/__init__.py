# Generated — do not edit: scripts/gen_sync.py writes this from sqs_cluster.
# Body digest: 8e0776f9f3f6c541 (gen_sync.py --check tells hand edits from stale files).
"""Blocking twin of :mod:`sqs_cluster` (generated): the same API, with no ``async``.

Each client keeps its own event loop in a background thread, so calls block while the
async core still fans out concurrently and keeps its connections warm. See docs/sync.md.
"""

from __future__ import annotations

from .. import (
    ENV_VARS,
    BatchItemFailure,
    CallbackState,
    Claim,
    ClaimOutcome,
    ClusterSendError,
    Config,
    ConfigError,
    ConflictError,
    ErrorEntry,
    LambdaContext,
    MalformedEventError,
    Message,
    MessageInProgressError,
    MessageRecord,
    PartialBatchResponse,
    PartialSendError,
    QueueArn,
    RecordKey,
    RecordNotFoundError,
    RecordType,
    ResourceMissingError,
    Resources,
    SQSClusterError,
    Status,
    StatusCode,
    UnsentMessage,
    ValidationError,
    WorkerOptions,
    WorkerStats,
    __version__,
    parse_record,
)
from ._batch import Handler
from ._client import MessageClient
from ._event import ReceivedMessage
from ._model import ClusterCallback, ClusterRecord
from ._provision import ensure_resources
from ._worker import Worker, run_worker

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
    "MalformedEventError",
    "MessageInProgressError",
    "PartialSendError",
    "RecordNotFoundError",
    "ResourceMissingError",
    "SQSClusterError",
    "ValidationError",
    "__version__",
]
