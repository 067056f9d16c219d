# Generated — do not edit: scripts/gen_sync.py writes this from sqs_cluster._batch.
# Body digest: 04ff4a804ddb653e (gen_sync.py --check tells hand edits from stale files).
"""Blocking twin of ``sqs_cluster._batch`` (generated)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._event import ReceivedMessage

Handler = Callable[[ReceivedMessage[Any]], Any]
"""A record handler: sync or async, takes the parsed message; raising marks it failed."""
