"""Start a message cluster (resuming the fan-out if it stops part way) and check on it."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqs_cluster import ClusterSendError, MessageClient, RecordKey

log = logging.getLogger(__name__)


async def start_run(
    client: MessageClient, queue_url: str, hours: Mapping[str, int], run_id: str, rate: int
) -> RecordKey:
    """One task per customer; returns the cluster's key."""

    async def create() -> RecordKey:
        return await client.create_message_cluster(
            queue_url,
            [{"customer": c, "hours": h} for c, h in hours.items()],  # validated before writing
            globals={"rate": rate, "amounts": {}},  # a JSON object in S3 that every task can read
            meta={"run": run_id},  # JSON kept on the cluster record
            cluster_id=run_id,  # calling again with the same id resumes the fan-out
            progress=lambda n: log.info("%s: %d more tasks sent", run_id, n),
            tolerated_failures="10%",  # more failed tasks than this: the cluster ends ERROR
        )

    try:
        return await create()
    except ClusterSendError as exc:  # exc.sent of exc.total tasks were sent
        log.warning("%s", exc)
        return await create()  # sends only what was not sent


async def describe(client: MessageClient, run_id: str) -> dict[str, Any]:
    """Where a run stands, read by the cluster's pKey alone (one Query)."""
    cluster = await client.get_message_cluster(f"SQSMessage${run_id}")
    return {
        "status": cluster.status.value,  # PRE FLIGHT, IN PROGRESS, COMPLETE or ERROR
        "total": cluster.total,
        "sent": cluster.sent,
        "completed": cluster.completed,
        "failed": cluster.failed,
        "in_progress": cluster.in_progress,  # total - completed - failed
        "callback": cluster.callback_state,  # None until the cluster ends
        "meta": cluster.meta,
    }
