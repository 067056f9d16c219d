"""Bounded concurrency helpers: never one task per item, always a fixed pool of workers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


async def run_bounded(
    items: Iterable[T], worker: Callable[[T], Awaitable[None]], *, concurrency: int
) -> None:
    """Run ``worker`` over ``items`` with at most ``concurrency`` in flight.

    Items are pulled lazily, so memory stays bounded by ``concurrency``, not by the item count.
    The first exception cancels the other workers and is raised.
    """
    iterator: Iterator[T] = iter(items)

    async def drain() -> None:
        for item in iterator:
            await worker(item)

    workers = max(1, concurrency)
    async with _Group() as group:
        for _ in range(workers):
            group.create_task(drain())


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
