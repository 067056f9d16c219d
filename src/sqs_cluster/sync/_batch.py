# Generated — do not edit: scripts/gen_sync.py writes this from sqs_cluster._messages.batch.
# Body digest: 717bb37ee3f387c0 (gen_sync.py --check tells hand edits from stale files).
"""Blocking twin of ``sqs_cluster._messages.batch`` (generated)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._event import ReceivedMessage

Handler = Callable[[ReceivedMessage[Any]], Any]
"""A record handler: sync or async, takes the parsed message; raising marks it failed.

A non-None return value (any JSON value) is stored on the record as its ``result``.
"""
