"""Fan-out progress: which tasks of a cluster were confirmed sent, for resuming a create.

Progress goes to the cluster's progress item. If that write fails for good (botocore's retries
spent: the item is throttled, say), the same facts go to one marker item per unit
(BatchWriteItem), each in a partition of its own; a resume reads a unit's marker with its task
records. Only when both writes fail are the tasks reported as sent but unrecorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

from .._aws.clients import AWS
from .._concurrency import chunked
from .._messages.outgoing import Prepared
from .._messages.sending import DDB_BATCH, Unit, write_records
from .._records.codec import key_item
from .._records.model import RecordKey
from .._records.store import update_raw
from .model import progress_key, progress_marker_key

logger = logging.getLogger("sqs_cluster")


class ProgressWriter:
    """Persists which tasks were confirmed sent, with at most one UpdateItem in flight.

    Units that finish while a write is under way are merged into the next one, and writes are
    at least ``interval`` apart, so a 100,000-task fan-out costs a few dozen progress writes
    rather than one per unit. A crash loses at most the last interval's marks; a resume then
    resends those tasks, and their claims absorb the duplicates. ``known`` maps a unit to the
    tasks a resume found sent already: a marker of that unit lists them too. Tasks whose
    progress could not be written anywhere end up in ``unrecorded`` (index -> why).
    """

    def __init__(
        self,
        aws: AWS,
        cluster: RecordKey,
        *,
        known: Mapping[int, set[int]] | None = None,
        interval: float = 0.25,
    ) -> None:
        self._aws, self._cluster, self._interval = aws, cluster, interval
        self._key = progress_key(cluster)
        self._known = known if known is not None else {}
        self._units: dict[int, list[int]] = {}  # units sent whole -> their tasks sent now
        self._tasks: dict[int, list[int]] = {}  # units sent in part -> their tasks sent now
        self._count = 0
        self._writer: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        self.unrecorded: dict[int, str] = {}

    def add(self, unit: Unit, failed: dict[int, str]) -> None:
        """Note a finished unit: whole if nothing failed, else just the tasks that were sent."""
        sent = [p.index for p in unit.send if p.index not in failed]
        self._count += len(sent)
        if not failed:  # the whole unit is done, whatever an earlier call had sent of it
            self._units[unit.number] = sent
        elif sent:
            self._tasks.setdefault(unit.number, []).extend(sent)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._drain())

    async def close(self) -> None:
        """Write whatever is still pending."""
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
        self._units, self._tasks, self._count = {}, {}, 0
        try:
            await self._update(units, tasks, count)
        except Exception as exc:
            cause = f"{type(exc).__name__}: {exc}"
            logger.warning("progress of %s not written (%s); writing markers", self._key, cause)
            await self._mark(units, tasks, cause)

    async def _update(
        self, units: dict[int, list[int]], tasks: dict[int, list[int]], count: int
    ) -> None:
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
            values[":t"] = {"NS": [str(t) for t in sorted(i for s in tasks.values() for i in s)]}
        await update_raw(
            self._aws,
            {
                "TableName": self._aws.config.table,
                "Key": key_item(self._key),
                "UpdateExpression": "ADD " + ", ".join(adds) + " SET #x = if_not_exists(#x, :x)",
                "ExpressionAttributeNames": {"#c": "sentCount", "#x": "expiresAt"},
                "ExpressionAttributeValues": values,
            },
        )

    async def _mark(
        self, units: dict[int, list[int]], tasks: dict[int, list[int]], cause: str
    ) -> None:
        """The fallback: one marker item per unit, ``whole`` or listing its sent tasks."""
        expires = {"N": str(int(time.time()) + self._aws.config.record_ttl_seconds)}
        markers: list[Prepared] = []
        for number in [*units, *tasks]:
            key = progress_marker_key(self._cluster, number)
            item: dict[str, Any] = {**key_item(key), "expiresAt": expires}
            if number in units:
                item["whole"] = {"BOOL": True}
            else:
                sent = {*tasks[number], *self._known.get(number, ())}
                item["sentTasks"] = {"NS": [str(i) for i in sorted(sent)]}
            markers.append(Prepared(number, key, item, {}, 0))
        for chunk in chunked(markers, DDB_BATCH):
            try:
                failed = await write_records(self._aws, chunk)
            except Exception as exc:
                failed = {p.index: f"{type(exc).__name__}: {exc}" for p in chunk}
            for number, error in failed.items():
                why = f"progress not written ({cause}), nor its marker ({error})"
                for index in units.get(number) or tasks.get(number, []):
                    self.unrecorded[index] = why
