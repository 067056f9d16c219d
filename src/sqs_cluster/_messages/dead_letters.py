"""Settle dead letters: messages SQS gave up on while their record says nothing about it.

A handler that raises on a message's last allowed receive records the final failure itself.
A worker that dies on that receive (killed, timed out, out of memory) records nothing: SQS
moves the message to the dead-letter queue, its record stays ``PRE FLIGHT`` or ``IN PROGRESS``,
and a task's cluster never ends. ``process_dead_letters``, run on the dead-letter queue, marks
such a record failed for good and counts a task as failed in its cluster with the same
exactly-once transaction as the normal path, then ends the cluster and runs its callback.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

from .._aws.clients import AWS
from .._aws.conditional import update_if
from .._clusters.complete import not_stopped
from .._clusters.count import Entry, Outcome, settle
from .._errors import MalformedEventError, ValidationError
from .._records.codec import now_iso, record_from_item
from .._records.model import KEY_PREFIX, ErrorEntry, RecordKey, Status, StatusCode
from .._records.store import get_raw
from .batch import DEFAULT_BATCH_CONCURRENCY, BatchClient, PartialBatchResponse, run_records
from .event import QueueArn, ReceivedMessage, event_records
from .tracking import error_list_clause, error_list_full, fail_update

if TYPE_CHECKING:
    import anyio

    from .._clusters.model import ClusterCallback

logger = logging.getLogger("sqs_cluster")


class DeadLetterClient(BatchClient, Protocol):
    """What settling dead letters uses of a client (``MessageClient`` is one): the batch part,
    and its AWS layer for the conditional write that fails a record for good."""

    _aws: AWS


DEAD_LETTER_ERROR = "ReceivesExhausted"
"""``ErrorEntry.type`` of the failure recorded for a message settled from the dead-letter queue."""


async def process_dead_letters(
    client: DeadLetterClient,
    event: Any,
    *,
    on_cluster_complete: ClusterCallback | None = None,
    concurrency: int = DEFAULT_BATCH_CONCURRENCY,
) -> PartialBatchResponse:
    """Settle every record of a dead-letter queue's event. See the client method."""
    check_dead_letter_queue(client, event)

    async def one(message: ReceivedMessage[Any], limiter: anyio.CapacityLimiter) -> bool:
        try:
            return await settle_dead_letter(client, message, on_cluster_complete, limiter)
        except Exception as exc:  # this record comes back; the others are unaffected
            client.log_failure(message, exc)
            return False

    return await run_records(
        client, event, one, concurrency=concurrency, on_cluster_complete=on_cluster_complete
    )


def check_dead_letter_queue(client: DeadLetterClient, event: Any) -> None:
    """Raise ValidationError, before any write, if a tracked record comes from the very queue
    it was sent to: those messages are live, and settling them would fail them for good."""
    for index, record in enumerate(event_records(event)):
        try:
            message = client.read_sqs_record(record)
        except MalformedEventError:
            continue  # fails on its own, as in safe_process_batch
        arn = QueueArn.parse(message.queue_arn)
        sent_to = message.key.r_key.removeprefix(KEY_PREFIX).rstrip("/").split("/")[-2:]
        if message.tracked and sent_to == [arn.account, arn.name]:
            raise ValidationError(
                f"event.Records[{index}]",
                f"comes from {arn.name}, the queue its message was sent to: "
                "process_dead_letters settles only messages SQS moved to a dead-letter queue, "
                "so subscribe it to the dead-letter queue; nothing was written",
            )


def dead_letter_entry(message: ReceivedMessage[Any]) -> ErrorEntry:
    """The failure recorded for a message whose receives ran out with no outcome recorded."""
    queue = QueueArn.parse(message.queue_arn).name
    return ErrorEntry(
        type=DEAD_LETTER_ERROR,
        message=(
            f"receives exhausted: SQS moved the message to the dead-letter queue {queue} "
            "with no outcome recorded (its last delivery's worker crashed, timed out or was "
            "stopped before finishing)"
        ),
        at=now_iso(),
    )


def dead_letter_update(
    aws: AWS, key: RecordKey, entry: ErrorEntry, *, full: bool = False
) -> dict[str, Any]:
    """UpdateItem parameters that fail a record for good, unless it is complete or leased.

    Unlike a handler's own failure, no delivery owns the record here: the write goes through
    only while no lease is live, so a worker that may still be running keeps its message.
    On a failed condition the record is returned as it stood, to tell why without a read.
    """
    update = fail_update(aws, key, entry, final=True, owner="", full=full)
    values = dict(update["ExpressionAttributeValues"])
    del values[":owner"]
    values[":now"] = {"N": str(aws.now_ms())}  # AWS's clock, as the lease was taken
    update["ExpressionAttributeValues"] = values
    update["ConditionExpression"] = (
        "attribute_exists(pKey) AND #s <> :done AND "
        "(attribute_not_exists(leaseUntilMs) OR leaseUntilMs < :now) AND "
        f"{error_list_clause(full)}"
    )
    update["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    return update


async def settle_dead_letter(
    client: DeadLetterClient,
    message: ReceivedMessage[Any],
    callback: ClusterCallback | None,
    limiter: anyio.CapacityLimiter,
) -> bool:
    """Fail a dead letter's record for good (counting a task once); True when it is settled.

    False leaves the record for later: its lease is still live, so a worker may still be
    running it.
    """
    if not message.tracked:
        return True  # nothing records it: nothing to settle
    aws = client._aws
    await aws.synced_now_ms()  # leases are judged on AWS's clock (see dead_letter_update)
    entry = dead_letter_entry(message)
    outcome = await _fail_for_good(aws, message, dead_letter_update(aws, message.key, entry))
    if not outcome.applied and error_list_full(outcome.item):  # at its cap: the bounded form
        update = dead_letter_update(aws, message.key, entry, full=True)
        outcome = await _fail_for_good(aws, message, update)
    if outcome.applied:
        logger.warning(
            "message %s: receives exhausted with no outcome recorded; failed for good",
            message.message_id,
            extra={
                "message_id": message.message_id,
                "record_key": message.key.to_dict(),
                "cluster_key": message.cluster_key.to_dict() if message.cluster_key else None,
            },
        )
        if message.is_task:  # end the cluster if this was its last task, and run the callback
            cluster = await client._after_settled(message, outcome)
            await client._run_callback(cluster, callback, limiter)
        return True
    if not await _settled(aws, message, outcome.item):
        return False
    if message.is_task:  # settled by another: end the cluster and run a due callback
        await client._after_task(message, callback, limiter)
    return True


async def _fail_for_good(
    aws: AWS, message: ReceivedMessage[Any], update: dict[str, Any]
) -> Outcome:
    """Write ``update`` (counting a task as failed once); whether it applied, and the item as
    it stood when it did not."""
    if message.is_task:
        assert message.cluster_key is not None and message.cluster_shards is not None
        entry = Entry(not_stopped(update), message.cluster_key, message.cluster_shards, "failed")
        (outcome,) = await settle(aws, [entry])
        return outcome
    written = await update_if(aws, not_stopped(update))
    return Outcome(written.applied, written.item)


async def _settled(aws: AWS, message: ReceivedMessage[Any], item: dict[str, Any] | None) -> bool:
    """After a refused write: True if the record is gone, complete or failed for good."""
    if item is None:  # absent, or not returned: look once
        item = await get_raw(aws, message.key, consistent_read=True)
    if item is None:  # deleted on completion (delete_completed), or expired
        return True
    record = record_from_item(item)
    if record.status is Status.COMPLETE or record.status_code is StatusCode.STOPPED:
        return True
    logger.info(
        "message %s: its record is %s with a lease until %s ms; it returns to the "
        "dead-letter queue until the lease has expired",
        message.message_id,
        record.status.value,
        record.lease_until_ms,
        extra={"message_id": message.message_id, "record_key": message.key.to_dict()},
    )
    return False
