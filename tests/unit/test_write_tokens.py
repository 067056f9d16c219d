"""Write tokens, without a server: how they are kept and which errors leave a write ambiguous.

What the tokens are for (updates that apply once when an answer is lost) is tested against
the server in tests/test_write_tokens.py.
"""

from __future__ import annotations

from typing import Any

from sqs_cluster._clusters.globals import KEPT_WRITES
from sqs_cluster._records.write_tokens import append_token, may_have_run, new_token, parse_tokens


def test_append_token_keeps_the_latest() -> None:
    tokens = [new_token() for _ in range(5)]
    assert len(set(tokens)) == 5 and all(len(t) == 16 for t in tokens)
    assert parse_tokens(append_token([], "a", 3)) == ["a"]
    assert parse_tokens(append_token(["a", "b"], "c", 3)) == ["a", "b", "c"]
    assert parse_tokens(append_token(["a", "b", "c", "d"], "e", 3)) == ["c", "d", "e"]
    assert parse_tokens(append_token(["a"], "b", 1)) == ["b"]
    assert parse_tokens(None) == [] and parse_tokens("") == []
    assert len(append_token([new_token()] * KEPT_WRITES, new_token(), KEPT_WRITES)) < 1200


def test_only_requests_that_may_have_run_count_as_ambiguous() -> None:
    from botocore.exceptions import ClientError, ConnectTimeoutError, ReadTimeoutError

    def client_error(status: int) -> ClientError:
        response: Any = {"Error": {"Code": "X"}, "ResponseMetadata": {"HTTPStatusCode": status}}
        return ClientError(response, "PutObject")

    assert may_have_run(ReadTimeoutError(endpoint_url="http://x"))
    assert may_have_run(client_error(500))
    assert not may_have_run(client_error(412))
    assert not may_have_run(ConnectTimeoutError(endpoint_url="http://x"))
    assert not may_have_run(ValueError("x"))
