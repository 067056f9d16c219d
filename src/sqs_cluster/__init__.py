"""sqs-cluster: tracked SQS messages and message clusters with exactly-once fan-in.

The async API lives here; ``sqs_cluster.sync`` is its generated blocking twin, and
``sqs_cluster.local`` starts an embedded local AWS for demos and tests.
"""

from __future__ import annotations

from ._aws.provision import Resources, ensure_resources
from ._cli.worker import LambdaContext, Worker, WorkerOptions, WorkerStats, run_worker
from ._client.client import MessageClient
from ._clusters.bound import CallbackImportError, CompletionQueue
from ._clusters.errors import ClusterSendError, RedriveError
from ._clusters.model import CallbackState, ClusterCallback, ClusterRecord, TaskResult
from ._config import ENV_VARS, Config
from ._errors import (
    ConfigError,
    ConflictError,
    MalformedEventError,
    RecordNotFoundError,
    ResourceMissingError,
    SQSClusterError,
    ValidationError,
)
from ._messages.batch import BatchItemFailure, Handler, PartialBatchResponse
from ._messages.errors import (
    BatchFailedError,
    IdempotencyConflictError,
    MessageInProgressError,
    PartialSendError,
)
from ._messages.event import QueueArn, ReceivedMessage, parse_record
from ._messages.hooks import FailureHook, SuccessHook
from ._messages.outgoing import Message, SentKeys, UnsentMessage
from ._messages.payloads import PayloadMissingError, PayloadRef
from ._messages.retry import Backoff, RetryAfter
from ._messages.tracking import Claim, ClaimOutcome
from ._records.model import (
    ErrorEntry,
    MessageRecord,
    RecordKey,
    RecordType,
    Status,
    StatusCode,
)

__version__ = "0.1.0"

__all__ = [
    # client and configuration
    "ENV_VARS",
    "Config",
    "MessageClient",
    "Resources",
    "ensure_resources",
    # records
    "ErrorEntry",
    "MessageRecord",
    "RecordKey",
    "RecordType",
    "Status",
    "StatusCode",
    # clusters
    "CallbackState",
    "ClusterCallback",
    "ClusterRecord",
    # sending and consuming
    "Backoff",
    "BatchItemFailure",
    "Claim",
    "ClaimOutcome",
    "FailureHook",
    "Handler",
    "Message",
    "PartialBatchResponse",
    "QueueArn",
    "ReceivedMessage",
    "SentKeys",
    "RetryAfter",
    "SuccessHook",
    "UnsentMessage",
    "parse_record",
    # local worker
    "LambdaContext",
    "Worker",
    "WorkerOptions",
    "WorkerStats",
    "run_worker",
    # errors
    "BatchFailedError",
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
