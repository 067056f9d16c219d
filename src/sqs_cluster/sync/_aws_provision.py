# Generated — do not edit: scripts/gen_sync.py writes this from sqs_cluster._aws.provision.
# Body digest: c27af2b2e8c47ba8 (gen_sync.py --check tells hand edits from stale files).
"""Blocking twin of ``sqs_cluster._aws.provision`` (generated)."""

from __future__ import annotations

from typing import Any

from .._aws.provision import DEFAULT_MAX_RECEIVE_COUNT, Resources
from .._aws.provision import ensure_resources as _async_ensure_resources
from .._config import Config
from .._facade import runtime as _facade


def ensure_resources(
    config: Config,
    *,
    queue_name: str | None = None,
    max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT,
    visibility_timeout: int = 360,
    session: Any = None,
) -> Resources:
    """Create the table and bucket of ``config`` and, if named, a queue with a DLQ."""
    return _facade.call_function(
        _async_ensure_resources,
        config,
        queue_name=queue_name,
        max_receive_count=max_receive_count,
        visibility_timeout=visibility_timeout,
        session=session,
    )
