"""sqs-cluster: tracked SQS messages and message clusters with exactly-once fan-in.

The async API lives here; ``sqs_cluster.sync`` is its generated blocking twin, and
``sqs_cluster.local`` starts an embedded local AWS for demos and tests.
"""

from __future__ import annotations

from ._batch import BatchItemFailure, Handler, PartialBatchResponse
from ._client import MessageClient
from ._cluster_model import CallbackState, ClusterCallback, ClusterRecord
from ._config import ENV_VARS, Config
from ._errors import (
    ClusterSendError,
    ConfigError,
    ConflictError,
    MalformedEventError,
    MessageInProgressError,
    PartialSendError,
    RecordNotFoundError,
    ResourceMissingError,
    SQSClusterError,
    ValidationError,
)
from ._event import QueueArn, ReceivedMessage, parse_record
from ._outgoing import Message, UnsentMessage
from ._provision import Resources, ensure_resources
from ._records import (
    ErrorEntry,
    MessageRecord,
    RecordKey,
    RecordType,
    Status,
    StatusCode,
)
from ._tracking import Claim, ClaimOutcome
from ._worker import LambdaContext, Worker, WorkerOptions, WorkerStats, run_worker

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
    # local worker
    "LambdaContext",
    "Worker",
    "WorkerOptions",
    "WorkerStats",
    "run_worker",
    # errors
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
