"""Group commit of a batch's settlements: one transaction for what finishes together.

Each message of a batch joins when it starts and either hands in what settling it writes (an
``Entry``) or leaves without one (it failed, bounced, or was settled already). When no joined
message is still running, what was handed in is written in one ``count.settle`` (a
transaction for the whole batch), so a batch of ten tasks costs one request to complete and
count instead of ten, and adds one round trip after its handlers instead of two or three.
Messages keep their leases (renewed) until their settlement is written.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .._aws.clients import AWS
from .count import MAX_ACTIONS, Entry, Outcome, settle

MAX_GROUP = MAX_ACTIONS // 3
"""Entries written together at most: with a shard (and a top counter) action per cluster,
a group of this size always fits in one transaction."""


class FanIn:
    """The group commit of one batch (see the module docstring). Not thread-safe: one loop."""

    def __init__(self, aws: AWS) -> None:
        self._aws = aws
        self._running = 0
        self._pending: list[tuple[Entry, asyncio.Future[Outcome]]] = []
        self._writes: set[asyncio.Future[None]] = set()

    def join(self) -> None:
        """A message starts: later hand-ins wait for it (or for its ``leave``)."""
        self._running += 1

    def leave(self) -> None:
        """A joined message ends without handing anything in."""
        self._running -= 1
        self._flush_if_ready()

    async def settle(self, entry: Entry) -> Outcome:
        """Hand in a joined message's settlement; returns once it was written."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._pending.append((entry, future))
        self._running -= 1
        self._flush_if_ready()
        return await asyncio.shield(future)

    def _flush_if_ready(self) -> None:
        if not self._pending or (self._running > 0 and len(self._pending) < MAX_GROUP):
            return
        group, self._pending = self._pending[:MAX_GROUP], self._pending[MAX_GROUP:]
        write = asyncio.ensure_future(self._write(group))
        self._writes.add(write)
        write.add_done_callback(self._writes.discard)
        if self._pending:
            self._flush_if_ready()

    async def _write(self, group: list[tuple[Entry, asyncio.Future[Outcome]]]) -> None:
        try:
            outcomes = await settle(self._aws, [entry for entry, _ in group])
        except BaseException as exc:
            for _, future in group:
                _fail(future, exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), outcome in zip(group, outcomes, strict=True):
            if not future.done():
                future.set_result(outcome)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if future.done():
        return
    if not isinstance(exc, Exception):  # cancelled: so are the waiters
        future.cancel()
        return
    future.set_exception(exc)
    future.add_done_callback(lambda f: f.exception())  # retrieved: its waiter may be gone
