"""Lease lengths and the worker's error classification, without a server."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from sqs_cluster import ResourceMissingError, ValidationError
from sqs_cluster._aws.sqs import is_transient
from sqs_cluster._messages.lease import burns_receives, effective_lease, remaining_of


@pytest.mark.parametrize(
    ("lease", "visibility", "remaining_ms", "expected"),
    [
        (300, None, None, 300.0),  # nothing known: the configured lease
        (300, 30, None, 27.0),  # capped below the visibility timeout
        (300, 5, None, 4.0),
        (10, 360, None, 10.0),  # already shorter: unchanged
        (300, 30, 8000, 5.0),  # the invocation ends first (less the margin)
        (300, None, 8000, 7.0),  # less the time left's own margin
        (300, 30, 0, 2.0),  # never below the floor
    ],
)
def test_effective_lease(
    lease: int, visibility: int | None, remaining_ms: int | None, expected: float
) -> None:
    assert effective_lease(lease, visibility=visibility, remaining_ms=remaining_ms) == expected


def test_a_lease_outliving_the_visibility_burns_receives() -> None:
    assert burns_receives(300, 30) and burns_receives(30, 30)
    assert not burns_receives(20, 30)


def test_remaining_of_reads_lambdas_context_and_rejects_anything_else() -> None:
    class Context:
        def get_remaining_time_in_millis(self) -> int:
            return 1234

    assert remaining_of(Context())() == 1234
    assert remaining_of(None)() is None
    with pytest.raises(ValidationError, match=r"^context:"):
        remaining_of(object())


def _client_error(code: str) -> ClientError:
    error: Any = {"Error": {"Code": code, "Message": code}}
    return ClientError(error, "ReceiveMessage")


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (EndpointConnectionError(endpoint_url="http://x"), True),
        (_client_error("ThrottlingException"), True),
        (_client_error("InternalError"), True),
        (ConnectionResetError(), True),
        (_client_error("AccessDenied"), False),
        (_client_error("AWS.SimpleQueueService.NonExistentQueue"), False),
        (_client_error("InvalidClientTokenId"), False),
        (NoCredentialsError(), False),
        (ResourceMissingError("queue_url: no queue"), False),
        (TypeError("a bug"), False),
    ],
)
def test_is_transient(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient
