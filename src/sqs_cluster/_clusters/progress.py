"""Fan-out progress: which tasks of a cluster were confirmed sent, for resuming a create.

Each unit's progress is written as soon as its messages were sent, before the unit counts as
done, so a stop (a crash, a lost lease) leaves unrecorded only the units still in flight. The
write goes to the cluster's progress item, guarded so that it applies once: botocore retries an
UpdateItem whose answer was lost, and an unguarded ``ADD`` would count the unit twice. If that
write fails for good (botocore's retries spent: the item is throttled, say), the same facts go
to one marker item for the unit (BatchWriteItem), in a partition of its own; a resume reads a
unit's marker with its task records. Only when both writes fail are the tasks reported as sent
but unrecorded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._aws.clients import AWS
from .._aws.conditional import update_if
from .._messages.outgoing import Prepared
from .._messages.sending import Unit, write_records
from .._records.codec import key_item
from .._records.model import RecordKey
from .model import progress_key, progress_marker_key

logger = logging.getLogger("sqs_cluster")

COMPACT = 64
"""Units sent whole in a row that are folded into ``sentBelow`` at once."""


@dataclass
class _Whole:
    """A unit sent whole, waiting for the group write that records it."""

    number: int
    sent: list[int]
    done: asyncio.Future[None]


class ProgressWriter:
    """Persists, unit by unit, which tasks were confirmed sent.

    One conditional UpdateItem records units: a unit sent whole goes to ``sentUnits``, the
    tasks of a unit sent in part to ``sentTasks``, and their number is added to ``sentCount``
    only if the units (or the part's first task) are not in the set yet, so a retried write
    counts once. Units sent whole that finish while a write is under way are recorded together
    by the next one (a group commit: one request for several units, each unit done only once
    its write landed). ``known`` maps a unit to the tasks a resume found sent already: a marker
    of that unit lists them too. Tasks whose progress could not be written anywhere end up in
    ``unrecorded`` (index -> why).
    """

    def __init__(
        self, aws: AWS, cluster: RecordKey, *, known: Mapping[int, set[int]] | None = None
    ) -> None:
        self._aws, self._cluster = aws, cluster
        self._key = progress_key(cluster)
        self._known = known if known is not None else {}
        self.unrecorded: dict[int, str] = {}
        self._waiting: list[_Whole] = []
        self._writing = False
        self._below = 0  # units below it are sent whole, as the item's ``sentBelow`` says
        self._whole: set[int] = set()  # units at or above it known sent whole

    def start(self, below: int, whole: set[int]) -> None:
        """What the progress item said when the fan-out began."""
        self._below = below
        self._whole = {u for u in whole if u >= below}

    async def record(self, unit: Unit, failed: Mapping[int, str]) -> None:
        """Record a finished unit: whole if nothing failed, else just the tasks that were sent."""
        sent = [p.index for p in unit.send if p.index not in failed]
        if not sent:
            return
        if failed:
            await self._write([(unit.number, sent)], whole=False)
            return
        # the whole unit is done, whatever an earlier call had sent of it
        waiting = _Whole(unit.number, sent, asyncio.get_running_loop().create_future())
        self._waiting.append(waiting)
        if self._writing:  # the write under way takes it next
            await waiting.done
            return
        self._writing = True
        group: list[_Whole] = []
        try:
            while self._waiting:
                group, self._waiting = self._waiting, []
                await self._write([(w.number, w.sent) for w in group], whole=True)
                for w in group:
                    w.done.set_result(None)
                group = []
                await self._compact()
        except BaseException:  # cancelled: the units it was to record stay "may have been sent"
            for w in [*group, *self._waiting]:
                if not w.done.done():
                    w.done.cancel()
            self._waiting = []
            raise
        finally:
            self._writing = False

    async def _compact(self) -> None:
        """Fold the units sent whole below the first one that is not into ``sentBelow``, once
        there are ``COMPACT`` of them: ``sentUnits`` then stays a few dozen numbers long, and
        a progress write costs a write unit or two at a million tasks, not a hundred."""
        below = self._below
        while below in self._whole:
            below += 1
        if below - self._below < COMPACT:
            return
        folded = list(range(self._below, below))
        try:
            await update_if(
                self._aws,
                {
                    "TableName": self._aws.config.table,
                    "Key": key_item(self._key),
                    "UpdateExpression": "SET sentBelow = :below DELETE sentUnits :folded",
                    "ConditionExpression": "attribute_not_exists(sentBelow) OR sentBelow < :below",
                    "ExpressionAttributeValues": {
                        ":below": {"N": str(below)},
                        ":folded": {"NS": [str(u) for u in folded]},
                    },
                },
            )
        except Exception as exc:  # the set stays longer; the next fold tries again
            logger.warning("progress of %s not folded: %s: %s", self._key, type(exc).__name__, exc)
            return
        self._whole.difference_update(folded)
        self._below = below

    async def _write(self, units: list[tuple[int, list[int]]], *, whole: bool) -> None:
        try:
            await self._update(units, whole)
            if whole:
                self._whole.update(number for number, _ in units)
        except Exception as exc:
            cause = f"{type(exc).__name__}: {exc}"
            logger.warning("progress of %s not written (%s); writing a marker", self._key, cause)
            for number, sent in units:
                await self._mark(number, sent, whole, cause)

    async def _update(self, units: list[tuple[int, list[int]]], whole: bool) -> None:
        if whole:
            field = "sentUnits"
            members = guards = [number for number, _ in units]
        else:
            ((_, sent),) = units
            field, members, guards = "sentTasks", sorted(sent), [min(sent)]
        values: dict[str, Any] = {
            ":n": {"N": str(sum(len(sent) for _, sent in units))},
            ":s": {"NS": [str(m) for m in members]},
            ":x": {"N": str(int(time.time()) + self._aws.config.record_ttl_seconds)},
        }
        for i, guard in enumerate(guards):
            values[f":g{i}"] = {"N": str(guard)}
        # applied already when the units (or the part's first task) are in the set, or folded
        # below ``sentBelow``: by this very write, whose answer was lost and which botocore sent
        # again (a fold comes after the write it follows has returned)
        condition = " AND ".join(f"NOT contains(#s, :g{i})" for i in range(len(guards)))
        values[":low"] = {"N": str(min(number for number, _ in units))}
        condition += " AND (attribute_not_exists(sentBelow) OR sentBelow <= :low)"
        written = await update_if(
            self._aws,
            {
                "TableName": self._aws.config.table,
                "Key": key_item(self._key),
                "UpdateExpression": "ADD #c :n, #s :s SET #x = if_not_exists(#x, :x)",
                "ConditionExpression": condition,
                "ExpressionAttributeNames": {"#c": "sentCount", "#s": field, "#x": "expiresAt"},
                "ExpressionAttributeValues": values,
            },
        )
        if not written.applied:
            logger.debug("progress of units %s of %s was written already", guards, self._key)

    async def _mark(self, number: int, sent: list[int], whole: bool, cause: str) -> None:
        """The fallback: one marker item for the unit, ``whole`` or listing its sent tasks."""
        expires = {"N": str(int(time.time()) + self._aws.config.record_ttl_seconds)}
        key = progress_marker_key(self._cluster, number)
        item: dict[str, Any] = {**key_item(key), "expiresAt": expires}
        if whole:
            item["whole"] = {"BOOL": True}
        else:
            tasks = {*sent, *self._known.get(number, ())}
            item["sentTasks"] = {"NS": [str(i) for i in sorted(tasks)]}
        marker = Prepared(number, key, item, {}, 0)
        try:
            failed = await write_records(self._aws, [marker])
        except Exception as exc:
            failed = {number: f"{type(exc).__name__}: {exc}"}
        for error in failed.values():
            why = f"progress not written ({cause}), nor its marker ({error})"
            for index in sent:
                self.unrecorded[index] = why
