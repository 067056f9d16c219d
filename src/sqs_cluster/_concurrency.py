"""Bounded concurrency: a fixed pool of workers (never one task per item), and calling user code
that may be sync (in a worker thread) or async."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
)
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import anyio

T = TypeVar("T")


async def run_bounded(
    items: Iterable[T] | AsyncIterable[T],
    worker: Callable[[T], Awaitable[None]],
    *,
    concurrency: int,
) -> None:
    """Run ``worker`` over ``items`` with at most ``concurrency`` in flight.

    Items are pulled lazily (from an async iterable, one puller at a time), so memory stays
    bounded by ``concurrency``, not by the item count. The first exception cancels the other
    workers and is raised.
    """
    if isinstance(items, AsyncIterable):
        drain = _async_drain(items.__aiter__(), worker)
    else:
        drain = _sync_drain(iter(items), worker)

    workers = max(1, concurrency)
    async with _Group() as group:
        for _ in range(workers):
            group.create_task(drain())


def _sync_drain(
    iterator: Iterator[T], worker: Callable[[T], Awaitable[None]]
) -> Callable[[], Awaitable[None]]:
    async def drain() -> None:
        for item in iterator:
            await worker(item)

    return drain


def _async_drain(
    iterator: AsyncIterator[T], worker: Callable[[T], Awaitable[None]]
) -> Callable[[], Awaitable[None]]:
    """A worker loop over an async iterator that several loops share (an async generator
    must not be stepped by two of them at once)."""
    pulling = asyncio.Lock()

    async def drain() -> None:
        while True:
            async with pulling:
                try:
                    item = await iterator.__anext__()
                except StopAsyncIteration:
                    return
            await worker(item)

    return drain


class _Group:
    """A task group that cancels the rest on the first failure and re-raises that failure.

    Unlike ``asyncio.TaskGroup`` it raises the original exception, not an ExceptionGroup, so
    callers see the error type they expect (and it exists on Python 3.10).
    """

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> _Group:
        return self

    def create_task(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.append(task)
        return task

    async def __aexit__(self, *exc: object) -> None:
        try:
            await asyncio.gather(*self._tasks)
        except BaseException:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            raise


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Yield lists of at most ``size`` items."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def is_async_callable(fn: Any) -> bool:
    """True for an ``async def`` function, or an object whose ``__call__`` is one."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004
    )


async def call_handler(
    handler: Callable[..., Any], *args: Any, limiter: anyio.CapacityLimiter | None = None
) -> Any:
    """Await an async handler; run a sync one in a worker thread under ``limiter``."""
    if is_async_callable(handler):
        return await handler(*args)
    import anyio.to_thread  # lazily: keeps ``import sqs_cluster`` light

    result = await anyio.to_thread.run_sync(handler, *args, limiter=limiter)
    if inspect.isawaitable(result):
        return await result
    return result
