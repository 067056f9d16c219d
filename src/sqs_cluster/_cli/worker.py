"""A local worker: long-poll SQS and call a Lambda-style ``handler(event, context)``.

The same handler runs on Lambda, on ECS/EC2 and in tests. Each poller receives a batch, builds
the event Lambda would (same field names), extends the messages' visibility while the handler
runs, renews the DynamoDB lease of each message the handler claimed, deletes what succeeded
(honouring the partial batch response), and logs one line. A transient AWS error (a timeout, a
dropped connection, throttling) is logged and polling goes on after a jittered, capped
back-off; a configuration error (a missing queue, access denied, bad credentials) stops the
worker. On stop it finishes the batches in flight, then exits; messages it did not finish are
released back to the queue, never dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._aws.retry import backoff_delay
from .._aws.sqs import is_transient
from .._client.client import MessageClient
from .._concurrency import call_handler
from .._errors import ValidationError
from .._messages.event import ReceivedMessage
from .._messages.lambda_shape import lambda_event
from .._messages.lease import MIN_RENEW_PERIOD, stop
from .._messages.retry import Backoff, Delay, apply_delays

BACKOFF_BASE = 1.0
"""Seconds: the first back-off after a failed poll is up to this long (full jitter)."""
BACKOFF_CAP = 30.0
"""Seconds: no back-off is longer, however many polls failed in a row."""

logger = logging.getLogger("sqs_cluster.worker")

LambdaHandler = Callable[[dict[str, Any], Any], Any]
"""``handler(event, context)``, sync or async; returns None or a partial batch response."""


@dataclass
class LambdaContext:
    """The parts of Lambda's context object handlers use."""

    function_name: str
    deadline: float
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 0
    invoked_function_arn: str = ""
    log_group_name: str = ""
    log_stream_name: str = ""

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds until the batch's visibility would run out (Lambda: the timeout)."""
        return max(0, int((self.deadline - time.monotonic()) * 1000))


@dataclass
class WorkerStats:
    """What a worker did."""

    batches: int = 0
    received: int = 0
    succeeded: int = 0
    failed: int = 0
    redelivered: int = 0
    released: int = 0
    receives_cancelled: int = 0
    """Long polls ended early by :meth:`Worker.stop` (a message SQS handed out in that very
    moment comes back after its visibility timeout)."""


@dataclass(frozen=True)
class WorkerOptions:
    """How a worker polls: batch size, pollers, long-poll wait and when to stop by itself.

    ``retry``: a :class:`Backoff` for every message the handler reports as failed (all of the
    batch when it raises): its visibility timeout is set from its receive count once the
    handler returned, one ChangeMessageVisibilityBatch per 10 messages. The worker does not
    see why a message failed, so ``Backoff.on`` must stay at its default; a handler that sets
    delays itself (``safe_process_batch(..., retry=...)``, ``RetryAfter``) needs no ``retry``
    here, which would replace its delays.
    """

    batch_size: int = 10
    concurrency: int = 1
    wait_seconds: int = 20
    visibility_timeout: int | None = None
    max_empty_polls: int | None = None
    function_name: str = "sqs-cluster-worker"
    retry: Backoff | None = None
    on_startup: Callable[[], Any] | None = None
    """Called (sync or async, no arguments) before the first poll: open what the handler
    keeps for the life of the process. If it raises, the worker does not start."""
    on_shutdown: Callable[[], Any] | None = None
    """Called once the pollers stopped, even after an error: close what ``on_startup`` (or
    the handler) opened, e.g. ``await client.aclose()``."""

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= 10:
            raise ValidationError("batch_size", f"must be 1-10 (SQS limit), got {self.batch_size}")
        if not 1 <= self.concurrency <= 1000:
            raise ValidationError("concurrency", f"must be 1-1000, got {self.concurrency}")
        if not 0 <= self.wait_seconds <= 20:
            raise ValidationError(
                "wait_seconds", f"must be 0-20 (SQS limit), got {self.wait_seconds}"
            )
        for name in ("on_startup", "on_shutdown"):
            hook = getattr(self, name)
            if hook is not None and not callable(hook):
                raise ValidationError(name, f"expected a callable or None, got {hook!r}")
        if self.retry is not None and not isinstance(self.retry, Backoff):
            raise ValidationError("retry", f"expected a Backoff(...) or None, got {self.retry!r}")
        if self.retry is not None and self.retry.on != (Exception,):
            raise ValidationError(
                "retry.on",
                "the worker sees which messages failed, not why: leave on= at its default "
                "(or pass the Backoff to safe_process_batch in the handler)",
            )


def failed_ids(response: Any, event: Mapping[str, Any]) -> set[str]:
    """Message ids to keep on the queue, from a handler's return value (Lambda semantics)."""
    if response is None:
        return set()
    if not isinstance(response, Mapping) or not isinstance(
        response.get("batchItemFailures", []), list
    ):
        raise TypeError("handler must return None or {'batchItemFailures': [...]}")
    ids = {str(f.get("itemIdentifier")) for f in response.get("batchItemFailures", [])}
    known = {r["messageId"] for r in event["Records"]}
    if ids - known:  # Lambda treats an unknown identifier as a failure of the whole batch
        return known
    return ids


class Worker:
    """Polls one queue with ``options.concurrency`` pollers until stopped."""

    def __init__(
        self,
        client: MessageClient,
        queue_url: str,
        handler: LambdaHandler,
        options: WorkerOptions | None = None,
    ) -> None:
        self.client = client
        self.queue_url = queue_url
        self.handler = handler
        self.options = options or WorkerOptions()
        self.stats = WorkerStats()
        self._stopping: asyncio.Event | None = None

    def stop(self) -> None:
        """Finish the batches in flight, then return from :meth:`run`."""
        if self._stopping is not None:
            self._stopping.set()

    async def run(self) -> WorkerStats:
        """Poll until :meth:`stop` (or ``max_empty_polls`` empty receives in a row), between
        the ``on_startup`` and ``on_shutdown`` hooks of the options."""
        self._stopping = asyncio.Event()
        opts = self.options
        if opts.on_startup is not None:
            await call_handler(opts.on_startup)
        try:
            visibility = opts.visibility_timeout or await self.client.queue_visibility_timeout(
                self.queue_url
            )
            return await self._run_pollers(visibility)
        finally:
            if opts.on_shutdown is not None:
                await call_handler(opts.on_shutdown)

    async def _run_pollers(self, visibility: int) -> WorkerStats:
        pollers = [
            asyncio.ensure_future(self._poll(visibility)) for _ in range(self.options.concurrency)
        ]
        try:  # a poller that stops on an error stops the others after their batch in flight
            outcomes = await asyncio.gather(*pollers, return_exceptions=True)
        finally:
            for poller in pollers:
                poller.cancel()
            await asyncio.gather(*pollers, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return self.stats

    async def _poll(self, visibility: int) -> None:
        assert self._stopping is not None
        empty = errors = 0
        while not self._stopping.is_set():
            try:
                messages = await self._receive(visibility)
            except Exception as exc:
                errors += 1
                await self._back_off(exc, errors)
                continue
            errors = 0
            if not messages:
                empty += 1
                if (
                    self.options.max_empty_polls is not None
                    and empty >= self.options.max_empty_polls
                ):
                    return
                continue
            empty = 0
            try:
                await asyncio.shield(self._run_batch(messages, visibility))
            except Exception as exc:
                await self._back_off(exc, 1)

    async def _back_off(self, exc: Exception, errors: int) -> None:
        """After a failed request: stop on a configuration error, else wait and poll again."""
        assert self._stopping is not None
        if not is_transient(exc):
            self._stopping.set()  # the other pollers finish their batches, then stop too
            raise exc
        delay = backoff_delay(errors - 1, base=BACKOFF_BASE, cap=BACKOFF_CAP)
        logger.warning(
            "poll failed (%d in a row): %s: %s; polling again in %.1f s",
            errors,
            type(exc).__name__,
            exc,
            delay,
            extra={"queue_url": self.queue_url, "errors_in_a_row": errors},
        )
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)

    async def _receive(self, visibility: int) -> list[dict[str, Any]]:
        assert self._stopping is not None
        receive = asyncio.ensure_future(
            self.client.receive_messages(
                self.queue_url,
                max_messages=self.options.batch_size,
                wait_seconds=self.options.wait_seconds,
                visibility_timeout=visibility,
            )
        )
        stopping = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({receive, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not receive.done():  # stopping mid-poll: end the long poll now, not in 20 s
            receive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                messages = await receive
                await self._release(messages)  # it answered as it was cancelled
            self.stats.receives_cancelled += 1
            logger.info("stopping: long poll cancelled", extra={"queue_url": self.queue_url})
            return []
        return receive.result()

    async def _release(self, messages: list[dict[str, Any]]) -> None:
        if messages:
            handles = [m["ReceiptHandle"] for m in messages]
            try:
                kept = await self.client.change_visibility(self.queue_url, handles, 0)
            except Exception as exc:  # they come back when their visibility timeout ends
                logger.warning("could not release %d messages: %s", len(messages), exc)
                kept = handles
            if kept:  # they come back when their visibility timeout ends instead
                logger.warning("%d messages not released at once", len(kept))
            self.stats.released += len(messages)

    async def _run_batch(self, messages: list[dict[str, Any]], visibility: int) -> None:
        started = time.monotonic()
        region = self.client.config.region or "us-east-1"
        event = lambda_event(messages, queue_url=self.queue_url, region=region)
        context = LambdaContext(self.options.function_name, deadline=started + visibility)
        heartbeat = asyncio.ensure_future(self._extend(messages, visibility, context))
        leases = asyncio.ensure_future(self._keep_leases(event, context))
        try:
            response = await call_handler(self.handler, event, context)
            failed = failed_ids(response, event)
        except Exception as exc:
            logger.warning(
                "handler raised %s: %s; the whole batch returns",
                type(exc).__name__,
                exc,
                exc_info=exc,
            )
            failed = {m["MessageId"] for m in messages}
        finally:
            await stop(heartbeat)
            await stop(leases)
        await self._settle(event, failed)
        await self._delay_retries(messages, failed)
        self._count(messages, failed)
        logger.info(
            "batch: %d received, %d failed, %d ms",
            len(messages),
            len(failed),
            int((time.monotonic() - started) * 1000),
            extra={"queue_url": self.queue_url, "received": len(messages), "failed": len(failed)},
        )

    async def _extend(
        self, messages: list[dict[str, Any]], visibility: int, context: LambdaContext
    ) -> None:
        handles = [m["ReceiptHandle"] for m in messages]
        while True:
            await asyncio.sleep(max(1.0, visibility / 2))
            extended_at = time.monotonic()
            try:
                kept = await self.client.change_visibility(self.queue_url, handles, visibility)
            except Exception as exc:
                logger.warning("could not extend visibility: %s", exc)
                continue
            if kept:  # SQS may deliver these again while the handler still runs them
                logger.warning("visibility of %d messages not extended", len(kept))
            else:  # the handler's time (and so the leases it takes) runs on
                context.deadline = extended_at + visibility

    async def _keep_leases(self, event: Mapping[str, Any], context: LambdaContext) -> None:
        """Renew the DynamoDB lease of every message of the batch while the handler runs.

        Each renewal applies only to a message this delivery claimed and has not settled, so
        it serves handlers that claim for themselves (``is_complete``) as well as
        ``safe_process_batch`` (which renews its own too); the others are refused, unchanged.
        """
        messages: list[ReceivedMessage[Any]] = []
        for record in event["Records"]:
            with contextlib.suppress(Exception):  # a malformed record is the handler's to fail
                messages.append(self.client.read_sqs_record(record))
        while messages:
            lease = await self._lease(context)
            await asyncio.sleep(max(MIN_RENEW_PERIOD, lease / 3))
            lease = await self._lease(context)
            outcomes = await asyncio.gather(
                *(self.client._renew_lease(m, lease) for m in messages), return_exceptions=True
            )
            errors = [o for o in outcomes if isinstance(o, BaseException)]
            if errors:
                logger.warning(
                    "could not renew %d leases: %s: %s",
                    len(errors),
                    type(errors[0]).__name__,
                    errors[0],
                )

    async def _lease(self, context: LambdaContext) -> float:
        return await self.client._lease_for(self.queue_url, context.get_remaining_time_in_millis())

    async def _settle(self, event: Mapping[str, Any], failed: set[str]) -> None:
        done = [
            self.client.read_sqs_record(r) for r in event["Records"] if r["messageId"] not in failed
        ]
        if done:
            await self.client.delete_messages(done)

    async def _delay_retries(self, messages: list[dict[str, Any]], failed: set[str]) -> None:
        """With ``options.retry``: the failed messages' visibility, from their receive count."""
        retry = self.options.retry
        if retry is None or not failed:
            return
        delays = [
            Delay(self.queue_url, m["ReceiptHandle"], retry.delay(_receives(m)), m["MessageId"])
            for m in messages
            if m["MessageId"] in failed
        ]
        await apply_delays(self.client, delays)

    def _count(self, messages: list[dict[str, Any]], failed: set[str]) -> None:
        stats = self.stats
        stats.batches += 1
        stats.received += len(messages)
        stats.failed += len(failed)
        stats.succeeded += len(messages) - len(failed)
        stats.redelivered += sum(1 for m in messages if _receives(m) > 1)


def _receives(message: Mapping[str, Any]) -> int:
    """A received message's ``ApproximateReceiveCount``."""
    return int(message.get("Attributes", {}).get("ApproximateReceiveCount", 1))


async def run_worker(
    queue_url: str,
    handler: LambdaHandler,
    *,
    client: MessageClient | None = None,
    options: WorkerOptions | None = None,
    stop: asyncio.Event | None = None,
) -> WorkerStats:
    """Run a worker until ``stop`` is set (or ``options.max_empty_polls`` empty polls).

    Without ``client`` one is made from the environment (``Config.from_env()``).
    """
    async with contextlib.AsyncExitStack() as stack:
        if client is None:
            client = await stack.enter_async_context(MessageClient())
        worker = Worker(client, queue_url, handler, options)
        if stop is not None:
            watcher = asyncio.ensure_future(_stop_when(stop, worker))
            stack.callback(watcher.cancel)
        return await worker.run()


async def _stop_when(event: asyncio.Event, worker: Worker) -> None:
    await event.wait()
    worker.stop()
