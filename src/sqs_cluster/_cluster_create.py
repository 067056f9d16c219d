"""``create_message_cluster``: validate everything, then cluster record, globals, tasks, messages.

Fan-out runs in units of 50 tasks (two BatchWriteItem calls, then five SendMessageBatch calls);
after each unit the units confirmed sent are added to the cluster's progress item, so a second
call with the same ``cluster_id`` resumes where the first stopped. The cluster can only end when
every one of its ``total`` tasks has been counted, so it can never end before all were sent.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._aws import AWS, error_code
from ._cluster_model import (
    cluster_key,
    counter_key,
    globals_object_key,
    progress_key,
    task_key,
    tolerated_count,
    validate_cluster_id,
)
from ._codec import dumps, from_item, key_item, now_iso, to_attr
from ._concurrency import chunked
from ._errors import ClusterSendError, ConfigError, ValidationError
from ._globals import write_globals
from ._progress import ProgressWriter
from ._queue_ops import queue_attribute
from ._records import RecordKey, RecordType, Status, StatusCode
from ._sending import (
    MAX_MESSAGE_BYTES,
    UNIT,
    Prepared,
    Progress,
    Unit,
    body_text,
    prepare_message,
    validate_queue_url,
    write_then_send,
)
from ._store import get_records

MAX_META_BYTES = 300_000


@dataclass(frozen=True)
class ClusterPlan:
    """Everything validated before the first write."""

    key: RecordKey
    queue_url: str
    tasks: Sequence[Any]
    location: Mapping[str, str] | None
    meta_text: str | None
    globals_value: Any
    tolerated: int
    max_bytes: int

    @property
    def cluster_key_attr(self) -> dict[str, Any]:
        """The task records' ``clusterKey`` attribute value."""
        return {"M": {"pKey": {"S": self.key.p_key}, "rKey": {"S": self.key.r_key}}}


async def queue_max_message_size(aws: AWS, queue_url: str) -> int:
    """The queue's MaximumMessageSize (and a clear error if the queue does not exist)."""
    size = await queue_attribute(aws, queue_url, "MaximumMessageSize")
    return int(size) if size else MAX_MESSAGE_BYTES


def task_body(plan: ClusterPlan, index: int, task: Any) -> dict[str, Any]:
    """The design's task body, plus the index and where the globals are."""
    body: dict[str, Any] = {
        "pKey": plan.key.p_key,
        "rKey": plan.key.r_key,
        "task": task,
        "type": RecordType.TASK.value,
        "index": index,
    }
    if plan.location is not None:
        body["globals"] = dict(plan.location)
    return body


async def plan_cluster(
    aws: AWS,
    queue_url: str,
    tasks: Any,
    *,
    globals_value: Any,
    meta: Any,
    omit_globals: bool,
    cluster_id: str | None,
    tolerated_failures: int | str | None,
) -> ClusterPlan:
    """Validate every input (every task included) before anything is written."""
    validate_queue_url(queue_url)
    if isinstance(tasks, (str, bytes, Mapping)) or not isinstance(tasks, Sequence):
        raise ValidationError("tasks", f"expected a list of tasks, got {type(tasks).__name__}")
    if not tasks:
        raise ValidationError("tasks", "a cluster needs at least one task")
    cid = validate_cluster_id(cluster_id) if cluster_id is not None else uuid.uuid4().hex
    key = cluster_key(cid, queue_url)
    location = None
    if not omit_globals:
        if not aws.config.bucket:
            raise ConfigError("bucket: clusters with globals need Config.bucket (or omit_globals)")
        location = {"Bucket": aws.config.bucket, "Key": globals_object_key(key)}
        dumps({} if globals_value is None else globals_value, field="globals")
    meta_text = None if meta is None else dumps(meta, field="meta")
    if meta_text is not None and len(meta_text.encode()) > MAX_META_BYTES:
        raise ValidationError(
            "meta", f"is {len(meta_text.encode())} bytes; the limit is {MAX_META_BYTES}"
        )
    plan = ClusterPlan(
        key=key,
        queue_url=queue_url,
        tasks=tasks,
        location=location,
        meta_text=meta_text,
        globals_value={} if globals_value is None else globals_value,
        tolerated=tolerated_count(tolerated_failures, len(tasks)),
        max_bytes=await queue_max_message_size(aws, queue_url),
    )
    for index, task in enumerate(tasks):
        _validate_task(plan, index, task)
    return plan


def _validate_task(plan: ClusterPlan, index: int, task: Any) -> None:
    text = body_text(task_body(plan, index, task), f"tasks[{index}]")
    # the body plus the key attribute (name, type and a JSON key of similar length)
    size = len(text.encode()) + 2 * len(plan.key.p_key) + len(plan.key.r_key) + 80
    if size > plan.max_bytes:
        raise ValidationError(
            f"tasks[{index}]",
            f"message is {size} bytes; the queue's limit is {plan.max_bytes} bytes",
        )


def prepare_task(aws: AWS, plan: ClusterPlan, index: int) -> Prepared:
    """The record item and batch entry of task ``index``."""
    return prepare_message(
        index,
        plan.queue_url,
        task_body(plan, index, plan.tasks[index]),
        meta_text=None,
        ttl_seconds=aws.config.record_ttl_seconds,
        field_name=f"tasks[{index}]",
        key=task_key(plan.key, index),
        record_type=RecordType.TASK,
        extra={"clusterKey": plan.cluster_key_attr, "taskIndex": {"N": str(index)}},
        validated=True,
        max_bytes=plan.max_bytes,
    )


async def create_cluster_record(aws: AWS, plan: ClusterPlan) -> bool:
    """Claim the cluster id, then write the cluster record; False for a resumed create.

    The id is claimed with the counter item, which carries the total and the queue URL: the
    cluster's items share its ``pKey`` whatever the queue, so reusing an id for another
    cluster (or another queue) must fail here, before anything else is written.
    """
    expires = str(int(time.time()) + aws.config.record_ttl_seconds)
    counter = {
        "pKey": {"S": plan.key.p_key},
        "rKey": {"S": counter_key(plan.key).r_key},
        "total": {"N": str(len(plan.tasks))},
        "url": {"S": plan.queue_url},
        "expiresAt": {"N": expires},
    }
    fresh = await _put_if_absent(aws, counter)
    if not fresh:
        await _check_same_cluster(aws, plan)
    await _put_if_absent(aws, _cluster_item(aws, plan, expires))  # a crash may come in between
    return fresh


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
        "total": {"N": str(len(plan.tasks))},
        "toleratedFailures": {"N": str(plan.tolerated)},
    }
    if plan.meta_text is not None:
        item["meta"] = {"S": plan.meta_text}
    if plan.location is not None:
        item["globals"] = to_attr(dict(plan.location))
    return item


async def _put_if_absent(aws: AWS, item: dict[str, Any]) -> bool:
    try:
        async with aws.slot():
            await aws.ddb.put_item(
                TableName=aws.config.table,
                Item=item,
                ConditionExpression="attribute_not_exists(pKey)",
            )
    except Exception as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            return False
        raise
    return True


async def _check_same_cluster(aws: AWS, plan: ClusterPlan) -> None:
    async with aws.slot():
        got = await aws.ddb.get_item(
            TableName=aws.config.table, Key=key_item(counter_key(plan.key)), ConsistentRead=True
        )
    existing = from_item(got.get("Item", {}))
    if existing.get("url") != plan.queue_url or existing.get("total") != len(plan.tasks):
        raise ValidationError(
            "cluster_id",
            f"{plan.key.id!r} is already used by a cluster of {existing.get('total')} tasks on "
            f"{existing.get('url')}; pick another id (or resume with the same queue and tasks)",
        )


async def read_progress(aws: AWS, plan: ClusterPlan) -> tuple[set[int], set[int]]:
    """For a resumed create: (units confirmed sent, single tasks confirmed sent)."""
    async with aws.slot():
        got = await aws.ddb.get_item(
            TableName=aws.config.table, Key=key_item(progress_key(plan.key)), ConsistentRead=True
        )
    progress = from_item(got.get("Item", {}))
    units = set(map(int, progress.get("sentUnits", set())))
    return units, set(map(int, progress.get("sentTasks", set())))


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


async def resolve_resumed(aws: AWS, unit: Unit) -> Unit:
    """On resume, never overwrite a task record that exists, nor resend a task consumers saw."""
    records = await get_records(aws, [p.key for p in unit.write], consistent_read=True)
    write = [p for p, r in zip(unit.write, records, strict=True) if r is None]
    send = [
        p
        for p, r in zip(unit.send, records, strict=True)
        if r is None or r.status is Status.PRE_FLIGHT
    ]
    return Unit(unit.number, write, send)


async def mark_fanned_out(aws: AWS, plan: ClusterPlan) -> None:
    """Every task was sent: progress says all, and PRE FLIGHT -> IN PROGRESS (unless the
    tasks already ended the cluster)."""
    key = plan.key
    async with aws.slot():
        await aws.ddb.update_item(
            TableName=aws.config.table,
            Key=key_item(progress_key(key)),
            UpdateExpression="SET sentCount = :n",
            ExpressionAttributeValues={":n": {"N": str(len(plan.tasks))}},
        )
    try:
        async with aws.slot():
            await aws.ddb.update_item(
                TableName=aws.config.table,
                Key=key_item(key),
                UpdateExpression="SET #s = :prog, statusCode = :progc, updatedAt = :now",
                ConditionExpression="#s = :pre",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":prog": {"S": Status.IN_PROGRESS.value},
                    ":progc": {"N": str(int(StatusCode.IN_PROGRESS))},
                    ":pre": {"S": Status.PRE_FLIGHT.value},
                    ":now": {"S": now_iso()},
                },
            )
    except Exception as exc:
        if error_code(exc) != "ConditionalCheckFailedException":
            raise


async def create_cluster(
    aws: AWS, plan: ClusterPlan, *, progress: Progress | None = None
) -> RecordKey:
    """Write the cluster record and globals, then fan out (or resume) the tasks."""
    fresh = await create_cluster_record(aws, plan)
    sent_units: set[int] = set()
    sent_tasks: set[int] = set()
    if not fresh:
        sent_units, sent_tasks = await read_progress(aws, plan)
    if plan.location is not None:  # never overwrite globals tasks may already have changed
        await write_globals(aws, plan.location, plan.globals_value, if_none_match=True)
    already = len(sent_tasks) + sum(min(UNIT, len(plan.tasks) - u * UNIT) for u in sent_units)
    if progress is not None and already:
        progress(already)

    writer = ProgressWriter(aws, progress_key(plan.key))

    async def after_unit(unit: Unit, failed: dict[int, str]) -> None:
        writer.add(unit, failed)

    try:
        outcome = await write_then_send(
            aws,
            plan.queue_url,
            plan_units(aws, plan, sent_units, sent_tasks),
            progress=progress,
            resolve=None if fresh else (lambda unit: resolve_resumed(aws, unit)),
            after_unit=after_unit,
            collect_keys=False,
        )
    finally:
        await writer.close()
    if outcome.failed:
        raise ClusterSendError(
            plan.key.id, already + outcome.sent_count, len(plan.tasks), outcome.failed
        )
    await mark_fanned_out(aws, plan)
    return plan.key
