"""Test support for code built on sqs-cluster: seeded fault injection and operation recording.

``FaultInjector`` makes the AWS clients of a ``MessageClient`` throttle, fail, time out, lose
responses and return partial batch results at configurable, seeded rates, through botocore's
own event hooks (so botocore's retries and parsing run as in production). ``OperationRecorder``
records the operations a client issues and checks them against an IAM policy. See
``docs/reliability.md``.

Nothing here is imported by the library itself.
"""

from __future__ import annotations

from ._fault_kinds import (
    ENV_VAR,
    FAULT_SCOPE,
    REQUEST_KINDS,
    FaultKind,
    InjectedFault,
    fault_services,
)
from ._faults import FaultInjector, clients_of, install_from_env
from ._iam import IAM_ACTIONS, Access, OperationRecorder, iam_match, required_access

__all__ = [
    "ENV_VAR",
    "FAULT_SCOPE",
    "IAM_ACTIONS",
    "REQUEST_KINDS",
    "Access",
    "FaultInjector",
    "FaultKind",
    "InjectedFault",
    "OperationRecorder",
    "clients_of",
    "fault_services",
    "iam_match",
    "install_from_env",
    "required_access",
]
