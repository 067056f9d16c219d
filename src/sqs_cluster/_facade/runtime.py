"""Hand-written runtime of the generated blocking facade ``sqs_cluster.sync``.

Two kinds of facade wrap an async object (its *core*):

- a :class:`ClientFacade` (``sync.MessageClient``) owns a :class:`LoopThread`; its core is
  entered on that loop on first use and stays open (warm) until ``close()``;
- a :class:`View` (``sync.ReceivedMessage``, ``sync.ClusterRecord``) wraps a value the core
  returned, forwards its fields, and runs its async methods on its client's loop; a view users
  build themselves on a client (``sync.Worker(client, ...)``, see ``View._build``) also runs
  its plain methods there.

Each generated method body is one call, so that everything but the signatures is written here:
``_call`` (an async method, run on the loop), ``_iterate`` (an async iterator, drained from the
loop in chunks), ``_plain`` (a plain method, called in place) or ``_run`` (a plain method of an
object whose state belongs to the loop). All four convert on the way: arguments through
:func:`unwrap` (sync to async: views become their cores), results through :func:`to_sync`
(async to sync: cores become views, async functions blocking ones). A user's callback goes
through :func:`callback`: a plain function gets sync values and runs in a worker thread.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from functools import partial, wraps
from typing import Any, ClassVar, Generic, TypeVar

from .portal import LoopThread, run_once

CoreT = TypeVar("CoreT")
T = TypeVar("T")
FacadeT = TypeVar("FacadeT", bound="ClientFacade[Any]")

_VIEWS: dict[type[Any], type[View[Any]]] = {}
"""Async class -> its generated view class, filled as the generated modules are imported."""


class ClientFacade(Generic[CoreT]):
    """Base of a blocking client: lazily starts its loop, keeps its core open until close().

    Closing is idempotent and also happens when the facade is garbage-collected or the
    interpreter exits, so a module-level client in a Lambda needs no explicit close.
    """

    def __init__(self, core_type: Callable[..., CoreT], /, *args: Any, **kwargs: Any) -> None:
        core = core_type(*args, **kwargs)  # only built: its loop starts on first use
        if not isinstance(core, AbstractAsyncContextManager):
            raise TypeError(f"{type(core).__name__} is not an async context manager")
        self._core: CoreT = core
        self._loop = LoopThread(core, name=f"sqs-cluster-{type(core).__name__}-{id(self):x}")
        self._finalizer = weakref.finalize(self, self._loop.close)

    @property
    def _root(self: FacadeT) -> FacadeT:
        return self

    def __enter__(self: FacadeT) -> FacadeT:
        self._loop.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the core on its loop, stop the loop and join its thread. Safe to call twice."""
        self._finalizer()

    def _call(self, fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        result: T = to_sync(self._loop.call(_unwrapped(fn, args, kwargs)), self)
        return result

    def _iterate(
        self, fn: Callable[..., AsyncIterator[Any]], /, *args: Any, **kwargs: Any
    ) -> Iterator[Any]:
        for item in self._loop.iterate(_unwrapped(fn, args, kwargs)):
            yield to_sync(item, self)

    def _plain(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        result: T = to_sync(_unwrapped(fn, args, kwargs)(), self)
        return result

    def _run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        result: T = to_sync(self._loop.run(_unwrapped(fn, args, kwargs)), self)
        return result

    def _callback(self, fn: Any) -> Any:
        return callback(fn, self)


class View(Generic[CoreT]):
    """Base of a blocking view over an async value that belongs to a client.

    Equality, hashing and repr are the core's. Subclasses name their async class with
    ``core_type=`` so :func:`to_sync` knows which view to build.
    """

    __slots__ = ("_core", "_root")
    core_type: ClassVar[type[Any]]

    def __init_subclass__(cls, *, core_type: type[Any], **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.core_type = core_type
        _VIEWS[core_type] = cls

    def __init__(self, core: CoreT, root: ClientFacade[Any]) -> None:
        self._core = core
        self._root = root

    def _build(self, core_type: Callable[..., CoreT], /, *args: Any, **kwargs: Any) -> None:
        """Build the core of a view users make on a blocking client (``sync.Worker(client,
        ...)``) from the unwrapped arguments; the view then runs on that client's loop."""
        clients = [v for v in (*args, *kwargs.values()) if isinstance(v, ClientFacade)]
        if not clients:
            raise TypeError(f"{getattr(core_type, '__name__', core_type)} needs a blocking client")
        View.__init__(self, _unwrapped(core_type, args, kwargs)(), clients[0])

    @property
    def client(self) -> Any:
        """The blocking client this value came from."""
        return self._root

    def __eq__(self, other: object) -> bool:
        if isinstance(other, View):
            return bool(self._core == other._core)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._core)

    def __repr__(self) -> str:
        return repr(self._core)

    def _call(self, fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        return self._root._call(fn, *args, **kwargs)

    def _iterate(
        self, fn: Callable[..., AsyncIterator[Any]], /, *args: Any, **kwargs: Any
    ) -> Iterator[Any]:
        return self._root._iterate(fn, *args, **kwargs)

    def _plain(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        return self._root._plain(fn, *args, **kwargs)

    def _run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run a plain method of the core on the loop (the core's state belongs to the loop)."""
        return self._root._run(fn, *args, **kwargs)

    def _callback(self, fn: Any) -> Any:
        return callback(fn, self._root)


def unwrap(value: Any) -> Any:
    """Sync to async: a view or client becomes its core; lists and tuples item by item."""
    if isinstance(value, (View, ClientFacade)):
        return value._core
    if type(value) in (list, tuple) and any(isinstance(v, View) for v in value):
        return type(value)(unwrap(v) for v in value)
    return value


def _unwrapped(fn: Callable[..., T], args: Any, kwargs: dict[str, Any]) -> Callable[[], T]:
    """``fn`` bound to its arguments, each through :func:`unwrap`."""
    return partial(fn, *map(unwrap, args), **{k: unwrap(v) for k, v in kwargs.items()})


def to_sync(value: Any, root: ClientFacade[Any]) -> Any:
    """Async to sync: a core becomes its view, an async function a blocking one."""
    view = _VIEWS.get(type(value))
    if view is not None:
        return view(value, root)
    if type(value) in (list, tuple):
        return type(value)(to_sync(v, root) for v in value)
    if callable(value) and _is_async_callable(value):
        return _blocking(value, root)
    return value


def callback(fn: Any, root: ClientFacade[Any]) -> Any:
    """A callback for the async core from a user's callback.

    A plain function is wrapped so that it gets sync values (views, blocking functions); the
    core runs it in a worker thread, bounded like the batch, so blocking calls in it are fine.
    An ``async def`` callback is passed through unchanged: it runs on the facade's loop and
    gets the async values. ``None`` and views pass through :func:`unwrap`.
    """
    if fn is None or isinstance(fn, View) or not callable(fn) or _is_async_callable(fn):
        return unwrap(fn)

    @wraps(fn)
    def run_in_worker_thread(*args: Any, **kwargs: Any) -> Any:
        return fn(
            *(to_sync(a, root) for a in args), **{k: to_sync(v, root) for k, v in kwargs.items()}
        )

    return run_in_worker_thread


def call_function(fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
    """Run a module-level async function: on the loop of a client passed to it, if any
    (its result then converted like a method's).

    Otherwise on a short-lived loop of its own, so nothing is left running afterwards.
    """
    for value in (*args, *kwargs.values()):
        if isinstance(value, ClientFacade):
            return value._call(fn, *args, **kwargs)
    return run_once(_unwrapped(fn, args, kwargs))


def _is_async_callable(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004
    )


def _blocking(fn: Callable[..., Awaitable[T]], root: ClientFacade[Any]) -> Callable[..., Any]:
    """A blocking twin of an async function handed to a callback (e.g. ``get_globals``)."""

    @wraps(fn)
    def blocking(*args: Any, **kwargs: Any) -> Any:
        return to_sync(root._call(fn, *args, **kwargs), root)

    return blocking
