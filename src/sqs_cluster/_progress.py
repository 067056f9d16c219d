"""Fan-out progress: which tasks of a cluster were confirmed sent, for resuming a create."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from ._aws import AWS
from ._codec import key_item
from ._records import RecordKey
from ._sending import Unit


class ProgressWriter:
    """Persists which tasks were confirmed sent, with at most one UpdateItem in flight.

    Units that finish while a write is under way are merged into the next one, and writes are
    at least ``interval`` apart, so a 100,000-task fan-out costs a few dozen progress writes
    rather than one per unit. A crash loses at most the last interval's marks; a resume then
    resends those tasks, and their claims absorb the duplicates.
    """

    def __init__(self, aws: AWS, key: RecordKey, interval: float = 0.25) -> None:
        self._aws, self._key, self._interval = aws, key, interval
        self._units: set[int] = set()
        self._tasks: set[int] = set()
        self._count = 0
        self._writer: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()

    def add(self, unit: Unit, failed: dict[int, str]) -> None:
        """Note a finished unit: whole if nothing failed, else just the tasks that were sent."""
        sent = [p.index for p in unit.send if p.index not in failed]
        self._count += len(sent)
        if not failed:  # the whole unit is done, whatever an earlier call had sent of it
            self._units.add(unit.number)
        else:
            self._tasks.update(sent)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._drain())

    async def close(self) -> None:
        """Write whatever is still pending (and surface a failed write)."""
        self._closing.set()
        if self._writer is not None:
            await self._writer
        await self._write()

    async def _drain(self) -> None:
        while self._units or self._tasks or self._count:
            await self._write()
            with contextlib.suppress(asyncio.TimeoutError):  # pace writes, unless closing
                await asyncio.wait_for(self._closing.wait(), self._interval)

    async def _write(self) -> None:
        units, tasks, count = self._units, self._tasks, self._count
        if not (units or tasks or count):
            return
        self._units, self._tasks, self._count = set(), set(), 0
        values: dict[str, Any] = {
            ":n": {"N": str(count)},
            ":x": {"N": str(int(time.time()) + self._aws.config.record_ttl_seconds)},
        }
        adds = ["#c :n"]
        if units:
            adds.append("sentUnits :u")
            values[":u"] = {"NS": [str(u) for u in sorted(units)]}
        if tasks:
            adds.append("sentTasks :t")
            values[":t"] = {"NS": [str(t) for t in sorted(tasks)]}
        async with self._aws.slot():
            await self._aws.ddb.update_item(
                TableName=self._aws.config.table,
                Key=key_item(self._key),
                UpdateExpression="ADD " + ", ".join(adds) + " SET #x = if_not_exists(#x, :x)",
                ExpressionAttributeNames={"#c": "sentCount", "#x": "expiresAt"},
                ExpressionAttributeValues=values,
            )
