# Generated — do not edit: scripts/gen_sync.py writes this from sqs_cluster._cli.worker.
# Body digest: c0d4abaec89b37fd (gen_sync.py --check tells hand edits from stale files).
"""Blocking twin of ``sqs_cluster._cli.worker`` (generated)."""

from __future__ import annotations

import asyncio

from .._cli.worker import LambdaHandler, WorkerOptions, WorkerStats
from .._cli.worker import Worker as _AsyncWorker
from .._cli.worker import run_worker as _async_run_worker
from .._facade import runtime as _facade
from ._client import MessageClient


class Worker(_facade.View[_AsyncWorker], core_type=_AsyncWorker):
    """Polls one queue with ``options.concurrency`` pollers until stopped.

    Blocking twin generated from :class:`sqs_cluster.Worker`: it runs on the event-loop thread of
    the client it is given; its methods block and return the result. See docs/sync.md.
    """

    __slots__ = ()

    def __init__(
        self,
        client: MessageClient,
        queue_url: str,
        handler: LambdaHandler,
        options: WorkerOptions | None = None,
    ) -> None:
        self._build(_AsyncWorker, client, queue_url, handler, options)

    @property
    def queue_url(self) -> str:
        return self._core.queue_url

    @property
    def handler(self) -> LambdaHandler:
        return self._core.handler

    @property
    def options(self) -> WorkerOptions:
        return self._core.options

    @property
    def stats(self) -> WorkerStats:
        return self._core.stats

    def stop(self) -> None:
        """Finish the batches in flight, then return from :meth:`run`."""
        self._run(self._core.stop)

    def run(self) -> WorkerStats:
        """Poll until :meth:`stop` (or ``max_empty_polls`` empty receives in a row), between
        the ``on_startup`` and ``on_shutdown`` hooks of the options.
        """
        return self._call(self._core.run)


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
    return _facade.call_function(
        _async_run_worker, queue_url, handler, client=client, options=options, stop=stop
    )
