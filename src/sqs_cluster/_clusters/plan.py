"""The plan of a cluster: every input validated before its first write, and each task's entry.

``plan_cluster`` checks the queue URL, the task list (every task, by index), the globals, the
meta, the cluster id and, for a FIFO queue, every task's message group id, so a bad input fails
before anything is written; ``prepare_task`` then builds a task's record item and batch entry
from the cluster's templates.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from .._aws.clients import AWS
from .._errors import ConfigError, ValidationError
from .._messages.outgoing import (
    KEY_ATTRIBUTE_OVERHEAD,
    Message,
    Prepared,
    Sizing,
    check_message_size,
    fast_dumps,
    prepare_message,
    sizing_for,
    validate_queue_url,
)
from .._records.codec import dumps
from .._records.limits import MAX_SHARDS, check_meta_size
from .._records.model import RecordKey, RecordType
from .bound import on_complete_text
from .globals import globals_body
from .model import cluster_key, globals_object_key, tolerated_count, validate_cluster_id
from .shards import shard_count
from .stream import TaskStream, task_batches
from .task_wire import TaskWire

GroupId = str | Callable[[Any], str]
"""A FIFO queue's message group id of every task, or a function of the task returning it."""
FIFO_ID = re.compile(r"^[!-~]{1,128}$")
"""SQS's message group and deduplication ids: 1-128 alphanumeric or punctuation characters."""


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
    sizing: Sizing
    fifo: bool = False
    groups: str | Sequence[str] | None = None
    """FIFO only: one group id for every task, one per task, or None for one group per task."""
    on_complete_text: str | None = None
    """The bound completion as the cluster record stores it (``bound.on_complete_text``)."""
    results_to: str | None = None
    """``"s3"``: write every result as one JSON Lines object when the cluster ends."""
    dedup_suffix: str = ""
    """FIFO only: added to each task's deduplication id (a redrive's messages are new ones)."""
    stream: TaskStream | None = None
    """A stream fanned out as it is read (``tasks`` is then its window, see ``stream``)."""
    tolerated_spec: int | str | None = None
    """``tolerated_failures`` as given: a percentage of a stream is resolved when it ends."""
    fixed_shards: int | None = None
    """The shards of a cluster that exists (a redrive's plan), else derived from its tasks."""

    @cached_property
    def shards(self) -> int:
        """How many counter shards the cluster counts into (all of them for a stream)."""
        if self.fixed_shards is not None:
            return self.fixed_shards
        return MAX_SHARDS if self.stream is not None else shard_count(len(self.tasks))

    @cached_property
    def wire(self) -> TaskWire:
        """The templates of this cluster's task bodies and keys."""
        return TaskWire.for_cluster(self.key, self.location, self.shards)


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
    queue_max_bytes: Callable[[str], Awaitable[int | None]],
    message_group_id: GroupId | None = None,
    on_complete: Any = None,
    results: str | None = None,
) -> ClusterPlan:
    """Validate every input (every task included) before anything is written.

    ``queue_max_bytes`` reads the queue's MaximumMessageSize (None if it may not be read); it
    runs after the cheap checks, and raises ResourceMissingError when there is no queue.
    A task is capped by the queue's MaximumMessageSize; a larger one goes through S3 like any
    message (see ``Config.offload_payloads``).
    """
    validate_queue_url(queue_url)
    stream = tasks if isinstance(tasks, TaskStream) else None
    if stream is None and (
        isinstance(tasks, (str, bytes, Mapping)) or not isinstance(tasks, Sequence)
    ):
        raise ValidationError(
            "tasks",
            f"expected a list or an (async) iterable of tasks, got {type(tasks).__name__}",
        )
    if not tasks:
        raise ValidationError("tasks", "a cluster needs at least one task")
    fifo = queue_url.rstrip("/").endswith(".fifo")
    groups: str | Sequence[str] | None
    if stream is None:
        groups = plan_groups(queue_url, fifo, message_group_id, tasks)
    else:  # checked now, computed as the stream is read
        groups = plan_groups(queue_url, fifo, message_group_id, [])
        if isinstance(groups, list):
            assert callable(message_group_id)
            stream.group_of, groups = message_group_id, stream.groups
    cid = validate_cluster_id(cluster_id) if cluster_id is not None else uuid.uuid4().hex
    key = cluster_key(cid, queue_url)
    location = None
    if not omit_globals:
        if not aws.config.bucket:
            raise ConfigError("bucket: clusters with globals need Config.bucket (or omit_globals)")
        location = {"Bucket": aws.config.bucket, "Key": globals_object_key(key)}
        globals_body({} if globals_value is None else globals_value)
    meta_text = None if meta is None else dumps(meta, field="meta")
    check_meta_size(meta_text)
    bound = None if on_complete is None else on_complete_text(on_complete)
    if results not in (None, "s3"):
        raise ValidationError("results", f'expected None or "s3", got {results!r}')
    if results == "s3" and not aws.config.bucket:
        raise ConfigError('bucket: results="s3" needs Config.bucket')
    limit = await queue_max_bytes(queue_url)
    tolerated = tolerated_count(tolerated_failures, 0 if stream else len(tasks))
    plan = ClusterPlan(
        key=key,
        queue_url=queue_url,
        tasks=tasks if stream is None else stream.window,
        location=location,
        meta_text=meta_text,
        globals_value={} if globals_value is None else globals_value,
        tolerated=tolerated,
        sizing=sizing_for(aws.config, limit),
        fifo=fifo,
        groups=groups,
        on_complete_text=bound,
        results_to=results,
        stream=stream,
        tolerated_spec=tolerated_failures,
    )
    if stream is None:  # a stream's tasks are checked as they are read
        for index, task in enumerate(tasks):
            validate_task(plan, index, task)
    return plan


async def collect_tasks(tasks: Any) -> Any:
    """A list of the tasks an iterable or async iterable yields (lists and tuples as they
    are); anything else is returned for the caller to refuse with a clear error."""
    batches = task_batches(tasks)
    if batches is None:
        return tasks
    return [task async for batch in batches for task in batch]


def plan_groups(
    queue_url: str, fifo: bool, given: GroupId | None, tasks: Sequence[Any]
) -> str | list[str] | None:
    """Every task's message group id, checked: a constant, one per task, or None (the default:
    one group per task on a FIFO queue; no group on a standard queue)."""
    if given is None:
        return None
    if not fifo:
        raise ValidationError(
            "message_group_id",
            f"given ({given!r}), but {queue_url} is a standard queue; message groups are for "
            "FIFO queues (whose names end in .fifo)",
        )
    if isinstance(given, str):
        return check_group(given, "message_group_id")
    if not callable(given):
        raise ValidationError(
            "message_group_id",
            f"expected a string or a function of the task returning one, got "
            f"{type(given).__name__}",
        )
    return [
        check_group(given(task), f"message_group_id(tasks[{i}])") for i, task in enumerate(tasks)
    ]


def check_group(value: Any, field_name: str) -> str:
    """A message group id as SQS takes it (ValidationError naming ``field_name`` otherwise)."""
    if not isinstance(value, str) or not FIFO_ID.match(value):
        raise ValidationError(
            field_name,
            f"expected a string of 1-128 letters, digits or punctuation (SQS's limit for a "
            f"message group id), got {value!r}",
        )
    return value


def validate_task(plan: ClusterPlan, index: int, task: Any) -> None:
    """Check that task ``index`` is JSON and that its message fits the queue (or S3)."""
    wire = plan.wire
    text = wire.body(index, dumps(task, field=f"tasks[{index}]"))
    size = len(text.encode()) + KEY_ATTRIBUTE_OVERHEAD + len(wire.key_attribute(index).encode())
    sizing = plan.sizing
    if sizing.offload_above is not None and size > sizing.offload_above:
        return  # goes through S3
    check_message_size(size, sizing, f"tasks[{index}]")


def prepare_task(aws: AWS, plan: ClusterPlan, index: int) -> Prepared:
    """The record item and batch entry of task ``index`` (with its FIFO ids on a FIFO queue)."""
    wire = plan.wire
    body = wire.body(index, fast_dumps(plan.tasks[index]))  # validated by plan_cluster
    message: str | Message = body
    if plan.fifo:
        groups = plan.groups
        group = groups if isinstance(groups, str) else None if groups is None else groups[index]
        message = Message(
            body,
            message_group_id=group or wire.fifo_id(index),
            message_deduplication_id=wire.fifo_id(index) + plan.dedup_suffix,
        )
    return prepare_message(
        index,
        plan.queue_url,
        message,
        meta_text=None,
        ttl_seconds=aws.config.record_ttl_seconds,
        field_name=f"tasks[{index}]",
        key=wire.key(index),
        record_type=RecordType.TASK,
        validated=True,
        sizing=plan.sizing,
        key_json=wire.key_attribute(index),
    )
