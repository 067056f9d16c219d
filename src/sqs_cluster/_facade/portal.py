"""A private event loop in its own thread, for the blocking facade ``sqs_cluster.sync``.

anyio's blocking portal runs the loop; this module only decides when it starts (lazily, on the
first blocking call, so constructing a facade touches no event loop), what stays open on it
(the async core, entered once and kept warm) and when it all stops (``close()``, which leaves
no thread behind).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, ExitStack
from functools import partial
from typing import Any, TypeVar

from anyio.from_thread import BlockingPortal, start_blocking_portal

from .._errors import SQSClusterError

T = TypeVar("T")

ITERATION_CHUNK = 100
"""Items an iterator fetches per trip to the loop (one trip costs about one thread hand-off)."""


class LoopThread:
    """One event loop in one daemon thread, with an async context manager held open on it.

    ``call(fn, ...)`` runs ``fn(...)`` on the loop (awaiting it if it returns an awaitable) and
    blocks the calling thread for the result. The loop starts on the first call and ``core`` is
    entered there; both stay up until :meth:`close`. Any thread may call, except the loop's own
    thread (a blocking call there would wait for itself).
    """

    def __init__(self, core: AbstractAsyncContextManager[Any], *, name: str) -> None:
        self._core = core
        self._name = name
        self._lock = threading.Lock()
        self._stack: ExitStack | None = None
        self._portal: BlockingPortal | None = None
        self._thread_id: int | None = None
        self._closed = False

    @property
    def running(self) -> bool:
        """True between the first call and :meth:`close`."""
        return self._portal is not None

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called; calls then raise."""
        return self._closed

    def start(self) -> BlockingPortal:
        """Start the loop and enter ``core`` on it, unless that already happened."""
        portal = self._portal
        if portal is not None:
            return portal
        with self._lock:
            if self._closed:
                raise SQSClusterError("this client is closed; create a new one")
            if self._portal is None:
                self._portal = self._open()
            return self._portal

    def _open(self) -> BlockingPortal:
        stack = ExitStack()
        try:
            portal = stack.enter_context(start_blocking_portal(name=self._name))
            thread_id = portal.call(threading.get_ident)
            stack.enter_context(portal.wrap_async_context_manager(self._core))
        except BaseException:
            stack.close()
            raise
        self._stack, self._thread_id = stack, thread_id
        return portal

    def call(self, fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` on the loop and return its awaited result."""
        portal = self._portal or self.start()
        if self._thread_id == threading.get_ident():
            raise SQSClusterError(
                "a blocking sqs_cluster.sync call ran on the facade's own event loop (from an "
                "async callback?); use the async API there, or make the callback a plain def"
            )
        if kwargs:
            return portal.call(partial(fn, *args, **kwargs))
        return portal.call(fn, *args)

    def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run the plain function ``fn(*args, **kwargs)`` on the loop and return its result."""
        result: T = self.call(_as_coroutine, partial(fn, *args, **kwargs))
        return result

    def iterate(
        self, fn: Callable[..., AsyncIterator[T]], /, *args: Any, **kwargs: Any
    ) -> Iterator[T]:
        """Iterate the async iterator ``fn(*args, **kwargs)`` from this thread, in chunks.

        The iterator is created and advanced on the loop; leaving early closes it there.
        """
        iterator: AsyncIterator[T] = self.run(fn, *args, **kwargs)
        try:
            while True:
                chunk, more = self.call(_take, iterator, ITERATION_CHUNK)
                yield from chunk
                if not more:
                    return
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None and self.running:
                with contextlib.suppress(SQSClusterError):  # closed meanwhile, or on the loop
                    self.call(aclose)

    def close(self) -> None:
        """Exit ``core`` on the loop, stop the loop and join its thread. Idempotent."""
        if self._thread_id is not None and self._thread_id == threading.get_ident():
            raise SQSClusterError("close() cannot run on the facade's own event loop")
        with self._lock:
            self._closed = True
            stack, self._stack = self._stack, None
            self._portal = None
            self._thread_id = None
        if stack is not None:
            stack.close()


async def _as_coroutine(fn: Callable[[], T]) -> T:
    return fn()


async def _take(iterator: AsyncIterator[T], limit: int) -> tuple[list[T], bool]:
    """Up to ``limit`` items, and whether the iterator may have more."""
    items: list[T] = []
    async for item in iterator:
        items.append(item)
        if len(items) >= limit:
            return items, True
    return items, False


def run_once(fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
    """Run one coroutine function on a fresh loop in a fresh thread, then stop both.

    For module-level functions that own no long-lived resources (``ensure_resources``); it
    works from any thread, including one already running an event loop.
    """
    with start_blocking_portal(name="sqs-cluster-sync-call") as portal:
        return portal.call(partial(fn, *args, **kwargs))
