"""``create_message_cluster``: validate everything, then cluster record, globals, tasks, messages.

Fan-out runs in units of 50 tasks (two BatchWriteItem calls, then five SendMessageBatch calls);
right after each unit's sends, what it sent is added to the cluster's progress item (or, if that
write fails for good, to the unit's marker), so a second call with the same ``cluster_id``
resumes where the first stopped. One call sends at a time: it holds the fan-out lease
(``fanout_lease``). Any failure after the id is claimed raises ClusterSendError naming the id.
The cluster can only end when every one of its ``total`` tasks has been counted, so it can
never end before all were sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping
from typing import Any

from .._aws.clients import AWS
from .._aws.conditional import put_if, update_if
from .._aws.provision import CLUSTERS_INDEX_PK, CLUSTERS_INDEX_SK, CLUSTERS_PARTITION
from .._concurrency import chunked
from .._errors import ConfigError, ValidationError
from .._messages.outgoing import Prepared
from .._messages.sending import UNIT, Progress, Unit, write_then_send
from .._observe import PRODUCER, queue_name
from .._records.codec import from_item, key_item, now_iso, record_from_item, to_attr
from .._records.model import MessageRecord, RecordKey, RecordType, Status, StatusCode
from .._records.store import batch_get_raw, get_raw, update_raw
from .errors import ClusterSendError
from .fanout_lease import FanoutLease
from .globals import write_globals
from .model import counter_key, progress_key, progress_marker_key
from .plan import ClusterPlan, check_group, prepare_task, validate_task
from .progress import ProgressWriter
from .shards import quota, shard_key
from .stream import TaskStream, open_shard_items, seal, sealed_total

logger = logging.getLogger("sqs_cluster")
NOT_ATTEMPTED = "not attempted: the fan-out stopped first"


async def create_cluster_record(aws: AWS, plan: ClusterPlan) -> bool:
    """Claim the cluster id, then write the cluster record; False for a resumed create.

    The id is claimed with the counter item, which carries the total and the queue URL: the
    cluster's items share its ``pKey`` whatever the queue, so reusing an id for another
    cluster (or another queue) must fail here, before anything else is written.
    """
    expires = str(int(time.time()) + aws.config.record_ttl_seconds)
    shards = plan.shards
    counter: dict[str, Any] = {
        "pKey": {"S": plan.key.p_key},
        "rKey": {"S": counter_key(plan.key).r_key},
        "url": {"S": plan.queue_url},
        "expiresAt": {"N": expires},
        "shards": {"N": str(shards)},
        "shardsLeft": {"N": str(shards)},
    }
    if plan.stream is None:  # a stream's total is written when it ends (``stream.seal``)
        counter["total"] = {"N": str(len(plan.tasks))}
    else:
        counter["stream"] = {"BOOL": True}
    fresh = await _put_if_absent(aws, counter)
    if not fresh:
        await _check_same_cluster(aws, plan)
    # before any task is sent, so nothing can count before its shard exists; a crash may come
    # in between, and a resume writes what is missing (each write applies only if absent)
    if plan.stream is None:
        items = [_shard_item(plan, shard, shards, expires) for shard in range(shards)]
    else:
        items = open_shard_items(plan.key, expires)
    await asyncio.gather(*(_put_if_absent(aws, item) for item in items))
    await _put_if_absent(aws, _cluster_item(aws, plan, expires))
    return fresh


def _shard_item(plan: ClusterPlan, shard: int, shards: int, expires: str) -> dict[str, Any]:
    key = shard_key(plan.key, shard)
    return {
        "pKey": {"S": key.p_key},
        "rKey": {"S": key.r_key},
        "room": {"N": str(quota(len(plan.tasks), shards, shard))},
        "completed": {"N": "0"},
        "failed": {"N": "0"},
        "expiresAt": {"N": expires},
    }


def _cluster_item(aws: AWS, plan: ClusterPlan, expires: str) -> dict[str, Any]:
    stamp = now_iso()
    item: dict[str, Any] = {
        "pKey": {"S": plan.key.p_key},
        "rKey": {"S": plan.key.r_key},
        "id": {"S": plan.key.id},
        "type": {"S": RecordType.CLUSTER.value},
        "url": {"S": plan.queue_url},
        "status": {"S": Status.PRE_FLIGHT.value},
        "statusCode": {"N": str(int(StatusCode.PRE_FLIGHT))},
        "startedAt": {"S": stamp},
        "updatedAt": {"S": stamp},
        "expiresAt": {"N": expires},
        "toleratedFailures": {"N": str(plan.tolerated)},
        CLUSTERS_INDEX_PK: {"S": CLUSTERS_PARTITION},  # the sparse index of recent clusters
        CLUSTERS_INDEX_SK: {"S": f"{stamp}#{plan.key.id}"},
    }
    if plan.stream is None:
        item["total"] = {"N": str(len(plan.tasks))}
    else:
        item["stream"] = {"BOOL": True}
    if plan.meta_text is not None:
        item["meta"] = {"S": plan.meta_text}
    if plan.location is not None:
        item["globals"] = to_attr(dict(plan.location))
    if plan.on_complete_text is not None:
        item["onComplete"] = {"S": plan.on_complete_text}
    if plan.results_to is not None:
        item["resultsTo"] = {"S": plan.results_to}
    return item


async def _put_if_absent(aws: AWS, item: dict[str, Any]) -> bool:
    params = {
        "TableName": aws.config.table,
        "Item": item,
        "ConditionExpression": "attribute_not_exists(pKey)",
    }
    return (await put_if(aws, params)).applied


async def _check_same_cluster(aws: AWS, plan: ClusterPlan) -> None:
    existing = from_item(await get_raw(aws, counter_key(plan.key), consistent_read=True) or {})
    if plan.stream is not None:  # its total is checked once the stream ended
        same = existing.get("url") == plan.queue_url and bool(existing.get("stream"))
    else:
        same = existing.get("url") == plan.queue_url and existing.get("total") == len(plan.tasks)
    if not same:
        raise ValidationError(
            "cluster_id",
            f"{plan.key.id!r} is already used by a cluster of {existing.get('total')} tasks on "
            f"{existing.get('url')}; pick another id (or resume with the same queue and tasks)",
        )


def earlier_progress(item: Mapping[str, Any]) -> tuple[set[int], set[int], bool]:
    """From the progress item: (units confirmed sent, single tasks confirmed sent, fanned out).

    Units below ``sentBelow`` were folded out of ``sentUnits`` (see ``progress``)."""
    units = set(map(int, item.get("sentUnits", set())))
    units.update(range(int(item.get("sentBelow", 0))))
    return units, set(map(int, item.get("sentTasks", set()))), bool(item.get("fannedOut"))


def plan_units(
    aws: AWS, plan: ClusterPlan, sent_units: set[int], sent_tasks: set[int]
) -> Iterator[Unit]:
    """Lazily prepared units, skipping what a previous call confirmed sent."""
    for number, indexes in enumerate(chunked(range(len(plan.tasks)), UNIT)):
        if number in sent_units:
            continue
        items = [prepare_task(aws, plan, i) for i in indexes if i not in sent_tasks]
        if items:
            yield Unit(number, items, items)


async def resolve_resumed(
    aws: AWS, cluster: RecordKey, unit: Unit, confirmed: dict[int, set[int]]
) -> Unit:
    """On resume, never overwrite a task record that exists, nor resend a task that consumers
    saw or that the unit's progress marker says was sent; ``confirmed`` gains those tasks.

    The marker is read in the same BatchGetItem as the unit's task records.
    """
    marker = progress_marker_key(cluster, unit.number)
    items = await batch_get_raw(aws, [*(p.key for p in unit.write), marker], consistent_read=True)
    found = {(i["pKey"]["S"], i["rKey"]["S"]): i for i in items}
    mark = from_item(found.pop((marker.p_key, marker.r_key), {}))
    marked = set(map(int, mark.get("sentTasks", set())))
    records = {k: record_from_item(i) for k, i in found.items()}

    def record(p: Prepared) -> MessageRecord[Any] | None:
        return records.get((p.key.p_key, p.key.r_key))

    seen = {
        p.index for p in unit.send if mark.get("whole") or p.index in marked or _claimed(record(p))
    }
    confirmed[unit.number] = seen
    write = [p for p in unit.write if record(p) is None and p.index not in seen]
    send = [p for p in unit.send if p.index not in seen]
    return Unit(unit.number, write, send)


def _claimed(record: MessageRecord[Any] | None) -> bool:
    return record is not None and record.status is not Status.PRE_FLIGHT


async def mark_fanned_out(aws: AWS, plan: ClusterPlan) -> None:
    """Every task was sent: progress says all, and PRE FLIGHT -> IN PROGRESS (unless the
    tasks already ended the cluster). The two writes are independent, so they run together."""
    key = plan.key

    async def progress_says_all() -> None:
        await update_raw(
            aws,
            {
                "TableName": aws.config.table,
                "Key": key_item(progress_key(key)),
                "UpdateExpression": "SET sentCount = :n, fannedOut = :t",
                "ExpressionAttributeValues": {
                    ":n": {"N": str(len(plan.tasks))},
                    ":t": {"BOOL": True},
                },
            },
        )

    async def in_progress() -> None:  # refused: the tasks already ended the cluster
        await update_if(
            aws,
            {
                "TableName": aws.config.table,
                "Key": key_item(key),
                "UpdateExpression": "SET #s = :prog, statusCode = :progc, updatedAt = :now",
                "ConditionExpression": "#s = :pre",
                "ExpressionAttributeNames": {"#s": "status"},
                "ExpressionAttributeValues": {
                    ":prog": {"S": Status.IN_PROGRESS.value},
                    ":progc": {"N": str(int(StatusCode.IN_PROGRESS))},
                    ":pre": {"S": Status.PRE_FLIGHT.value},
                    ":now": {"S": now_iso()},
                },
            },
        )

    await asyncio.gather(progress_says_all(), in_progress())


async def create_cluster(
    aws: AWS, plan: ClusterPlan, *, progress: Progress | None = None
) -> RecordKey:
    """Write the cluster record and globals, then fan out (or resume) the tasks.

    Any failure once the id may be claimed raises ClusterSendError naming the cluster id and
    what was and was not sent, so the caller can resume with that id.
    """
    fanout = Fanout(aws, plan, progress)
    start = time.perf_counter()
    try:
        with aws.observe.span("sqs_cluster.fanout", fanout_attributes(plan), kind=PRODUCER):
            return await fanout.run()
    except (ClusterSendError, ValidationError, ConfigError):
        raise
    except Exception as exc:
        raise fanout.stopped(f"{type(exc).__name__}: {exc}") from exc
    finally:
        if aws.observe.metrics is not None:
            seconds = time.perf_counter() - start
            await aws.observe.fanout_done(queue_name(plan.queue_url), fanout.sent_now, seconds)


def fanout_attributes(plan: ClusterPlan) -> dict[str, Any]:
    """The fan-out span's attributes: the cluster, its queue and (unless streamed) its size."""
    attributes: dict[str, Any] = {
        "messaging.system": "aws_sqs",
        "messaging.destination.name": queue_name(plan.queue_url),
        "sqs_cluster.cluster_id": plan.key.id,
    }
    if plan.stream is None:
        attributes["sqs_cluster.tasks"] = len(plan.tasks)
    return attributes


class Fanout:
    """One create call: the lease, the units it runs, and what it knows when it stops."""

    def __init__(self, aws: AWS, plan: ClusterPlan, progress: Progress | None) -> None:
        self.aws, self.plan, self.progress = aws, plan, progress
        self.lease = FanoutLease(aws, progress_key(plan.key))
        self.sent_units: set[int] = set()  # units confirmed sent whole, by any call
        self.sent_tasks: set[int] = set()  # tasks confirmed sent one by one, by any call
        self.confirmed: dict[int, set[int]] = {}  # per unit: tasks a resume found sent
        self.failed: dict[int, str] = {}  # tasks this call failed to send, with the error
        self.sending: dict[int, list[int]] = {}  # units whose messages are being sent
        self.writer = ProgressWriter(aws, plan.key, known=self.confirmed)
        self.resumed: bool | None = None  # None until the counter item said
        self.progress_known = False
        self.sent_now = 0  # tasks this call confirmed sent (the fan-out rate's numerator)

    async def run(self) -> RecordKey:
        """Claim the id, take the fan-out lease, then send what is left; release the lease."""
        plan = self.plan
        fresh = await create_cluster_record(self.aws, plan)
        self.resumed = not fresh
        before = await self.lease.acquire()
        if before is None:
            logger.info("cluster %s: another create holds its fan-out lease", plan.key.id)
            return plan.key
        try:
            return await self._send(fresh, before)
        finally:
            await self.lease.release()

    async def _send(self, fresh: bool, before: Mapping[str, Any]) -> RecordKey:
        plan, aws = self.plan, self.aws
        units, tasks, fanned_out = earlier_progress(before)
        self.sent_units, self.sent_tasks = set(units), set(tasks)
        self.writer.start(int(before.get("sentBelow", 0)), units)
        self.progress_known = True
        # fresh: nothing was ever sent, so no task record needs reading first
        fresh = fresh and before.get("leaseOwner", self.lease.token) == self.lease.token
        fresh = fresh and not (units or tasks or fanned_out or "sentCount" in before)
        if fanned_out and plan.stream is not None:  # what was read of it is its sealed total
            plan.stream.window.read = await sealed_total(aws, plan.key) or 0
        total = len(plan.tasks)
        if fanned_out:
            self.sent_units = set(range(-(-total // UNIT)))
            if self.progress is not None:
                self.progress(total)
            await mark_fanned_out(aws, plan)
            return plan.key
        if plan.location is not None:  # never overwrite globals tasks may already have changed
            await write_globals(aws, plan.location, plan.globals_value, if_none_match=True)
        sizes = (UNIT if plan.stream else min(UNIT, total - u * UNIT) for u in units)
        already = len(tasks) + sum(sizes)
        if self.progress is not None and already:
            self.progress(already)
        if plan.stream is None:
            todo: Iterable[Unit] | AsyncIterable[Unit] = plan_units(aws, plan, units, tasks)
        else:
            todo = self._stream_units(plan.stream, units, tasks)
        try:
            await write_then_send(
                aws,
                plan.queue_url,
                todo,
                progress=self.progress,
                resolve=None if fresh else self._resolve,
                before_write=self._before_write,
                before_send=self._before_send,
                after_unit=self._after_unit,
                collect_keys=False,
            )
        except ValidationError as exc:  # a task of the stream, read after others were sent
            if plan.stream is None:
                raise
            raise self.stopped(str(exc)) from exc
        if self.failed:
            raise self.stopped(None)
        # every unit's progress was recorded before it finished, so the lease can go at once
        await asyncio.gather(mark_fanned_out(aws, plan), self.lease.release())
        return plan.key

    async def _stream_units(
        self, stream: TaskStream, sent_units: set[int], sent_tasks: set[int]
    ) -> AsyncIterator[Unit]:
        """A stream's units as it is read; the last one held back until the stream is sealed
        (so the seal always leaves room for a task not yet sent, see ``stream``)."""
        held: list[int] = []
        pending: list[int] = []
        index = 0
        async for batch in stream.batches():
            for task in batch:
                stream.window.values[index] = task
                if stream.group_of is not None:
                    where = f"message_group_id(tasks[{index}])"
                    stream.groups.values[index] = check_group(stream.group_of(task), where)
                pending.append(index)
                index += 1
                stream.window.read = index
                if len(pending) == UNIT:
                    unit = self._stream_unit(stream, held, sent_units, sent_tasks)
                    if unit is not None:
                        yield unit
                    held, pending = pending, []
        await seal(self.aws, self.plan.key, index, self.plan.tolerated_spec)
        for indexes in (held, pending):
            unit = self._stream_unit(stream, indexes, sent_units, sent_tasks)
            if unit is not None:
                yield unit

    def _stream_unit(
        self, stream: TaskStream, indexes: list[int], sent_units: set[int], sent_tasks: set[int]
    ) -> Unit | None:
        """The unit of ``indexes`` (None when sent already), its tasks checked and prepared,
        then dropped from the stream's window."""
        if not indexes:
            return None
        try:
            if indexes[0] // UNIT in sent_units:
                return None
            items = []
            for i in indexes:
                if i not in sent_tasks:
                    validate_task(self.plan, i, stream.window.values[i])
                    items.append(prepare_task(self.aws, self.plan, i))
            return Unit(indexes[0] // UNIT, items, items) if items else None
        finally:
            for i in indexes:
                stream.window.values.pop(i, None)
                stream.groups.values.pop(i, None)

    async def _resolve(self, unit: Unit) -> Unit:
        return await resolve_resumed(self.aws, self.plan.key, unit, self.confirmed)

    async def _before_write(self, unit: Unit, write: list[Prepared]) -> str | None:
        return await self.lease.hold_reason()  # a lost lease must not overwrite records either

    async def _before_send(self, unit: Unit, ready: list[Prepared]) -> str | None:
        held = await self.lease.hold_reason()
        if held is None:
            self.sending[unit.number] = [p.index for p in ready]
        return held

    async def _after_unit(self, unit: Unit, failed: dict[int, str]) -> None:
        # progress first: until it is written, the unit's tasks are "may have been sent"
        await self.writer.record(unit, failed)
        self.sending.pop(unit.number, None)
        self.failed.update(failed)
        self.sent_now += len(unit.send) - len(failed)
        if not failed:
            self.sent_units.add(unit.number)
        else:
            self.sent_tasks.update(p.index for p in unit.send if p.index not in failed)

    def stopped(self, reason: str | None) -> ClusterSendError:
        """The error saying exactly which tasks were sent, which were not, which may have been."""
        total = len(self.plan.tasks)
        uncertain = {i for indexes in self.sending.values() for i in indexes}
        if reason is not None and self.resumed is not False and not self.progress_known:
            reason += " (before the progress of earlier calls was read)"
        not_sent: dict[int, str] = {}
        for index in range(total):
            unit = index // UNIT
            if (
                unit in self.sent_units
                or index in self.sent_tasks
                or index in self.confirmed.get(unit, ())
                or index in uncertain
            ):
                continue
            not_sent[index] = self.failed.get(index) or NOT_ATTEMPTED
        return ClusterSendError(
            self.plan.key.id,
            total - len(not_sent) - len(uncertain),
            total,
            not_sent,
            uncertain=sorted(uncertain),
            unrecorded=sorted(set(self.writer.unrecorded) - uncertain),
            reason=reason,
        )
