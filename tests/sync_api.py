"""Run the async tests' bodies unchanged through the blocking facade ``sqs_cluster.sync``.

:func:`awaitable_facade` yields an object shaped like an async ``MessageClient`` whose every
call goes through the sync facade. Where the async API has a coroutine method, the blocking
twin runs in a worker thread (``asyncio.to_thread``) and the caller gets an awaitable; plain
methods and attributes are the facade's own; views it returns (``ReceivedMessage``,
``ClusterRecord``) are wrapped the same way, and its iterators become async iterators. The
wrapping is generic (``__getattr__`` against the async class), so it follows the API as it grows.

Private attributes (white-box tests reach for ``client._aws``) resolve on the async core, with
its coroutine methods run on the facade's own event loop, where the core lives.
"""

from __future__ import annotations

import asyncio
import inspect
import types
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

from sqs_cluster import Config, sync
from sqs_cluster import MessageClient as AsyncMessageClient
from sqs_cluster._facade.runtime import View

_PLAIN = (str, bytes, int, float, bool, type(None), dict, list, tuple, set)


@asynccontextmanager
async def awaitable_facade(config: Config) -> AsyncIterator[Any]:
    """An open ``sync.MessageClient`` behind the async API's shape; closed on exit."""
    facade = sync.MessageClient(config)
    await asyncio.to_thread(facade.__enter__)
    try:
        yield AsyncShaped(facade, AsyncMessageClient, facade)
    finally:
        await asyncio.to_thread(facade.close)


class AsyncShaped:
    """``target`` (a sync facade or view) with the call shape of ``async_type``."""

    def __init__(self, target: Any, async_type: type[Any], root: sync.MessageClient) -> None:
        self._target = target
        self._async_type = async_type
        self._root = root

    def __repr__(self) -> str:
        return f"AsyncShaped({self._target!r})"

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if name.startswith("_"):
            return OnLoop(getattr(self._root._core, name), self._root)
        value = getattr(self._target, name)
        if _is_coroutine_function(inspect.getattr_static(self._async_type, name, None)):
            return self._awaitable(value)
        if callable(value):
            return lambda *a, **k: self._wrap(value(*_unwrap(a), **_unwrap(k)))
        return self._wrap(value)

    def _awaitable(self, method: Callable[..., Any]) -> Callable[..., Any]:
        async def call(*args: Any, **kwargs: Any) -> Any:
            result = await asyncio.to_thread(method, *_unwrap(args), **_unwrap(kwargs))
            return self._wrap(result)

        return call

    def _wrap(self, value: Any) -> Any:
        if isinstance(value, View):
            return AsyncShaped(value, value.core_type, self._root)
        if isinstance(value, types.GeneratorType):
            return _async_iterator(value, self._wrap)
        return value


class OnLoop:
    """An object of the async core, driven from the test's loop via the facade's loop."""

    def __init__(self, target: Any, root: sync.MessageClient) -> None:
        self._target = target
        self._root = root

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if isinstance(value, _PLAIN):
            return value
        if callable(value):  # run it where the core lives; awaitable results are awaited there

            async def call(*args: Any, **kwargs: Any) -> Any:
                return await asyncio.to_thread(self._root._loop.call, value, *args, **kwargs)

            return call
        return OnLoop(value, self._root)


async def _async_iterator(items: Iterator[Any], wrap: Callable[[Any], Any]) -> AsyncIterator[Any]:
    done = object()
    while (item := await asyncio.to_thread(next, items, done)) is not done:
        yield wrap(item)


def _is_coroutine_function(value: Any) -> bool:
    return inspect.iscoroutinefunction(value) or inspect.isasyncgenfunction(value)


def _unwrap(values: Any) -> Any:
    if isinstance(values, dict):
        return {k: _unwrap_one(v) for k, v in values.items()}
    return tuple(_unwrap_one(v) for v in values)


def _unwrap_one(value: Any) -> Any:
    if isinstance(value, AsyncShaped):
        return value._target
    if type(value) in (list, tuple):
        return type(value)(_unwrap_one(v) for v in value)
    return value
