"""The fan-out lease: one ``create_message_cluster`` call sends a cluster's tasks at a time.

A create takes the lease on the cluster's progress item (``leaseOwner``, a random token, and
``leaseUntilMs``, epoch milliseconds) before it writes the globals or any task, renews it every
third of its length while it runs, and releases it when it returns or raises. Another create
of the same cluster (a retry after a timeout, say) that finds a live lease waits: once the
lease is released it resumes whatever is left (nothing, if the first one finished); once it
expired (its holder died) it takes over. If the holder is still sending after one lease
length, the waiter returns and leaves the fan-out to it. A holder that cannot renew stops
sending before its lease can lapse, so a create that takes over never sends alongside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

from .._aws.clients import AWS
from .._aws.conditional import update_if
from .._aws.retry import backoff_delay
from .._config import Config
from .._records.codec import from_item, key_item
from .._records.model import RecordKey

logger = logging.getLogger("sqs_cluster")

MAX_LEASE_SECONDS = 30
"""The fan-out lease never lasts longer: a crashed create delays a resume by at most this."""
LOST = "another create of this cluster took over its fan-out lease"


def fanout_lease_seconds(config: Config) -> int:
    """The fan-out lease's length: ``Config.lease_seconds``, at most 30 seconds."""
    return min(config.lease_seconds, MAX_LEASE_SECONDS)


class FanoutLease:
    """One create's hold on a cluster's fan-out (see the module docstring)."""

    def __init__(self, aws: AWS, key: RecordKey) -> None:
        self._aws = aws
        self._key = key
        self.token = uuid.uuid4().hex
        self.seconds = fanout_lease_seconds(aws.config)
        self._valid_until = 0.0  # time.monotonic() until which the lease is surely held
        self._lost: str | None = None
        self._beat: asyncio.Task[None] | None = None
        self._renewing = asyncio.Lock()
        self._released = False

    async def acquire(self) -> dict[str, Any] | None:
        """Take the lease, waiting up to one lease length for another create to let it go.

        Returns the progress item as it was before (deserialised; empty if there was none),
        or None if another create still holds a live lease: it is sending this cluster.
        """
        deadline = time.monotonic() + self.seconds
        attempt = 0
        while True:
            before = await self._take()
            if before is not None:
                self._beat = asyncio.ensure_future(self._heartbeat())
                return before
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            attempt += 1
            await asyncio.sleep(min(remaining, backoff_delay(attempt, base=0.05, cap=1.0)))

    async def hold_reason(self) -> str | None:
        """None while the lease is surely held for a send to finish; else why not to send."""
        margin = self.seconds / 3
        if self._lost is None and time.monotonic() < self._valid_until - margin:
            return None
        async with self._renewing:
            if self._lost is None and time.monotonic() >= self._valid_until - margin:
                try:
                    await self._renew()
                except Exception as exc:
                    return f"fan-out lease not renewed ({type(exc).__name__}: {exc})"
        return self._lost

    async def release(self) -> None:
        """Stop renewing and let the next create of this cluster take over at once (once)."""
        if self._released:
            return
        self._released = True
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
        if self._lost is not None:
            return
        try:  # refused: someone took it over after it lapsed
            await self._update("SET #u = :zero", {":zero": {"N": "0"}})
        except Exception as exc:  # it expires by itself
            logger.warning("fan-out lease of %s not released: %s", self._key.p_key, exc)

    async def _take(self) -> dict[str, Any] | None:
        started = time.monotonic()
        now_ms = int(time.time() * 1000)
        expires = int(time.time()) + self._aws.config.record_ttl_seconds
        taken = await update_if(
            self._aws,
            {
                "TableName": self._aws.config.table,
                "Key": key_item(self._key),
                "UpdateExpression": "SET #o = :me, #u = :until, #x = if_not_exists(#x, :x)",
                "ConditionExpression": "attribute_not_exists(#o) OR #o = :me OR #u < :now",
                "ExpressionAttributeNames": {
                    "#o": "leaseOwner",
                    "#u": "leaseUntilMs",
                    "#x": "expiresAt",
                },
                "ExpressionAttributeValues": {
                    ":me": {"S": self.token},
                    ":until": {"N": str(now_ms + self.seconds * 1000)},
                    ":now": {"N": str(now_ms)},
                    ":x": {"N": str(expires)},
                },
                "ReturnValues": "ALL_OLD",
            },
        )
        if not taken.applied:
            return None
        self._valid_until = started + self.seconds
        return from_item(taken.item or {})

    async def _renew(self) -> None:
        started = time.monotonic()
        until = int(time.time() * 1000) + self.seconds * 1000
        if not await self._update("SET #u = :until", {":until": {"N": str(until)}}):
            self._lost = LOST
            return
        self._valid_until = max(self._valid_until, started + self.seconds)

    async def _update(self, expression: str, values: dict[str, Any]) -> bool:
        """An update of the lease while it is ours; False when it is no longer ours."""
        written = await update_if(
            self._aws,
            {
                "TableName": self._aws.config.table,
                "Key": key_item(self._key),
                "UpdateExpression": expression,
                "ConditionExpression": "#o = :me",
                "ExpressionAttributeNames": {"#o": "leaseOwner", "#u": "leaseUntilMs"},
                "ExpressionAttributeValues": {":me": {"S": self.token}, **values},
            },
        )
        return written.applied

    async def _heartbeat(self) -> None:
        while self._lost is None:
            await asyncio.sleep(self.seconds / 3)
            async with self._renewing:
                with contextlib.suppress(Exception):  # a send's hold_reason tries again
                    await self._renew()
