"""Write tokens: how a read-modify-write recognises its own write after the answer was lost.

A request whose response is lost (a read timeout) may have been performed; botocore retries
it, and the retry of a conditional write then fails its condition against the very change it
made. Each update call therefore stores a random token with its write, next to the tokens of
the latest earlier updates, and before applying its change again it looks for its token.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence


def new_token() -> str:
    """A random token for one update call (64 bits, 16 hex characters)."""
    return secrets.token_hex(8)


def parse_tokens(text: str | None) -> list[str]:
    """The tokens of a stored space-separated list, oldest first."""
    return text.split() if text else []


def append_token(tokens: Sequence[str], token: str, keep: int) -> str:
    """The stored list after this write: the latest ``keep - 1`` tokens read, then ``token``."""
    kept = list(tokens[-(keep - 1) :]) if keep > 1 else []
    return " ".join([*kept, token])


def may_have_run(exc: BaseException) -> bool:
    """Whether a failed request may have been performed: its answer was lost, or a 5xx."""
    from botocore.exceptions import HTTPClientError  # loaded by then; kept off import time

    if isinstance(exc, HTTPClientError):  # read timeout, connection closed after sending
        return True
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return False
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return isinstance(status, int) and status >= 500
