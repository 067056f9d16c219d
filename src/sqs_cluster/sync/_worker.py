# Generated — do not edit: scripts/gen_sync.py writes this from sqs_cluster._worker.
# Body digest: 2e24e97e1d8b6791 (gen_sync.py --check tells hand edits from stale files).
"""Blocking twin of ``sqs_cluster._worker`` (generated)."""

from __future__ import annotations

import asyncio

from .. import _sync_support
from .._worker import LambdaHandler, WorkerOptions, WorkerStats
from .._worker import run_worker as _async_run_worker
from ._client import MessageClient


def run_worker(
    queue_url: str,
    handler: LambdaHandler,
    *,
    client: MessageClient | None = None,
    options: WorkerOptions | None = None,
    stop: asyncio.Event | None = None,
) -> WorkerStats:
    """Run a worker until ``stop`` is set (or ``options.max_empty_polls`` empty polls).

    Without ``client`` one is made from the environment (``Config.from_env()``).
    """
    return _sync_support.call_function(
        _async_run_worker, queue_url, handler, client=client, options=options, stop=stop
    )
