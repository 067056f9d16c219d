"""Make moto's SQS backend scale linearly with queue size.

moto 5.1/5.2 counts a queue's ApproximateNumberOfMessages, ...NotVisible and ...Delayed by
scanning every message, and ``Queue.attributes`` computes all three on every read. moto reads
``Queue.attributes`` once per sent message (``send_message`` looks up ContentBasedDeduplication)
and three times per received message (``is_message_valid_based_on_retention_period`` goes
through ``get_queue_attributes``), so each send costs O(queue size) and filling a queue is
quadratic: about 16 s for 1,000 messages and half an hour for 10,000. Receiving also lists every
visible message first, and deleting rebuilds the whole message list.

:func:`apply_sqs_counter_patch` replaces exactly those spots:

* ``Queue.attributes`` runs moto's own getter with the three counters left out.
* ``SQSBackend.get_queue_attributes`` adds the counters that were asked for, computed by moto's
  own counter properties at the time of the call. This is the only full scan left, and it runs
  only for GetQueueAttributes, so the counts stay exact.
* ``Queue.messages`` returns a lazy view, so a receive looks only at messages up to the last one
  it returns, instead of building a list of every visible message first.
* ``Message.mark_received`` records each new receipt handle in a weak index, and
  ``Queue.delete_message`` uses that index to find the message. Unknown, foreign or repeated
  handles go to moto's original code, so errors and idempotency are unchanged.

Visibility timeouts, receive counts, DLQ redrive, FIFO groups and deduplication are still
moto's own code. The patch changes moto for the whole process, so only the local server process
applies it (and tests that ask). Importing this module does not import moto. Before patching,
the code checks each object it replaces. If a moto upgrade changes them, it raises a
RuntimeError that names the moto version, rather than quietly going back to quadratic time.
"""

from __future__ import annotations

import functools
import inspect
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["apply_sqs_counter_patch", "revert_sqs_counter_patch", "sqs_counter_patch_applied"]

#: GetQueueAttributes names of the counters -> moto's ``Queue`` property computing each.
_COUNTERS = {
    "ApproximateNumberOfMessages": "approximate_number_of_messages",
    "ApproximateNumberOfMessagesDelayed": "approximate_number_of_messages_delayed",
    "ApproximateNumberOfMessagesNotVisible": "approximate_number_of_messages_not_visible",
}

#: Functions replaced: (class name, attribute, parameter names, names the code must use).
_FUNCTIONS = (
    ("SQSBackend", "get_queue_attributes", ("self", "queue_name", "attribute_names"), ()),
    ("Message", "mark_received", ("self", "visibility_timeout"), ("receipt_handle",)),
    (
        "Queue",
        "delete_message",
        ("self", "receipt_handle"),
        ("deleted_messages", "pending_messages", "all_receipt_handles", "_messages"),
    ),
)
#: Properties replaced or relied on, by class name.
_PROPERTIES = (
    ("Queue", ("attributes", "messages", *_COUNTERS.values())),
    ("Message", ("visible", "delayed", "all_receipt_handles")),
)

_lock = threading.Lock()
_originals: dict[tuple[type, str], Any] = {}
#: Receipt handle -> the message it was issued for (weak: moto decides message lifetime).
_receipts: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()


def apply_sqs_counter_patch() -> None:
    """Patch moto's SQS models in this process (idempotent); see the module docstring."""
    with _lock:
        if _originals:
            return
        import moto
        from moto.sqs import models

        _check_shape(models, str(getattr(moto, "__version__", "unknown")))
        replacements: tuple[tuple[type, str, Callable[[Any], Any]], ...] = (
            (models.Queue, "attributes", _attributes_without_counters),
            (models.Queue, "messages", _lazy_messages),
            (models.Queue, "delete_message", _indexed_delete_message),
            (models.SQSBackend, "get_queue_attributes", _get_queue_attributes_with_counters),
            (models.Message, "mark_received", _indexed_mark_received),
        )
        for owner, name, make_replacement in replacements:
            original = owner.__dict__[name]
            _originals[(owner, name)] = original
            setattr(owner, name, make_replacement(original))


def revert_sqs_counter_patch() -> None:
    """Restore moto's original SQS code (lets in-process tests leave moto as they found it)."""
    with _lock:
        for (owner, name), original in _originals.items():
            setattr(owner, name, original)
        _originals.clear()
        _receipts.clear()


def sqs_counter_patch_applied() -> bool:
    """Whether :func:`apply_sqs_counter_patch` is currently in effect in this process."""
    return bool(_originals)


# -- shape checks -------------------------------------------------------------------------------


def _check_shape(models: ModuleType, version: str) -> None:
    """Raise RuntimeError unless moto's SQS models look the way this patch expects."""
    problems = [*_property_problems(models), *_function_problems(models)]
    queue = getattr(models, "Queue", None)
    if queue is not None:
        problems += _queue_problems(queue)
    if problems:
        raise RuntimeError(
            f"sqs_cluster cannot apply its SQS speed-up to moto {version}: "
            + "; ".join(problems)
            + ". It was written for moto 5.1/5.2 (moto/sqs/models.py); "
            "update sqs_cluster/local/sqs_patch.py for this moto version."
        )


def _property_problems(models: ModuleType) -> list[str]:
    """Properties that are missing or are no longer properties."""
    problems = []
    for class_name, names in _PROPERTIES:
        owner = getattr(models, class_name, None)
        for name in names:
            if not isinstance(vars(owner).get(name) if owner else None, property):
                problems.append(f"{class_name}.{name} is not a property")
    return problems


def _function_problems(models: ModuleType) -> list[str]:
    """Replaced functions that are missing or have a different signature or body."""
    problems = []
    for class_name, name, params, used_names in _FUNCTIONS:
        owner = getattr(models, class_name, None)
        func = vars(owner).get(name) if owner else None
        if not inspect.isfunction(func):
            problems.append(f"{class_name}.{name} is not a function")
            continue
        if tuple(inspect.signature(func).parameters) != params:
            problems.append(f"{class_name}.{name} does not take {params}")
        missing = [used for used in used_names if used not in func.__code__.co_names]
        if missing:
            problems.append(f"{class_name}.{name} no longer uses {missing}")
    return problems


def _queue_problems(queue: type) -> list[str]:
    """Queue details the replacements rely on."""
    problems = []
    base = getattr(queue, "BASE_ATTRIBUTES", ())
    if not set(_COUNTERS) <= set(base):
        problems.append("Queue.BASE_ATTRIBUTES does not list the message counters")
    attributes = vars(queue).get("attributes")
    getter = attributes.fget if isinstance(attributes, property) else None
    if getter is None or "BASE_ATTRIBUTES" not in getter.__code__.co_names:
        problems.append("Queue.attributes no longer reads self.BASE_ATTRIBUTES")
    init = vars(queue).get("__init__")
    if not inspect.isfunction(init) or "_messages" not in init.__code__.co_names:
        problems.append("Queue no longer keeps its messages in self._messages")
    return problems


# -- replacements -------------------------------------------------------------------------------


class _WithoutCounters:
    """Stands in for a queue as ``self`` of moto's attributes getter, hiding the counters."""

    __slots__ = ("_queue",)

    def __init__(self, queue: Any) -> None:
        self._queue = queue

    def __getattr__(self, name: str) -> Any:
        if name == "BASE_ATTRIBUTES":
            return [attr for attr in self._queue.BASE_ATTRIBUTES if attr not in _COUNTERS]
        return getattr(self._queue, name)


def _attributes_without_counters(original: property) -> property:
    """``Queue.attributes`` built by moto's getter, minus the three O(n) counters."""
    getter = original.fget
    assert getter is not None  # checked by _queue_problems

    def attributes(queue: Any) -> dict[str, Any]:
        """Queue attributes without the message counters (GetQueueAttributes adds those)."""
        result: dict[str, Any] = getter(_WithoutCounters(queue))
        return result

    return property(attributes)


def _get_queue_attributes_with_counters(original: Callable[..., Any]) -> Callable[..., Any]:
    """``SQSBackend.get_queue_attributes`` that computes requested counters on demand."""

    @functools.wraps(original)
    def get_queue_attributes(
        backend: Any, queue_name: str, attribute_names: list[str]
    ) -> dict[str, Any]:
        result: dict[str, Any] = original(backend, queue_name, attribute_names)
        if "All" in attribute_names:
            wanted = list(_COUNTERS)
        else:
            wanted = [name for name in attribute_names if name in _COUNTERS]
        if not wanted:
            return result
        queue = backend.get_queue(queue_name)
        counts = {name: getattr(queue, _COUNTERS[name]) for name in wanted}
        return {**counts, **result}

    return get_queue_attributes


class _VisibleMessages:
    """Lazy ``Queue.messages``: visible, undelayed messages, examined only as far as needed.

    Iteration works on a snapshot of the message list (a C-level copy), as moto's list did, so
    concurrent sends and deletes cannot make it skip messages.
    """

    __slots__ = ("_queue",)

    def __init__(self, queue: Any) -> None:
        self._queue = queue

    def __iter__(self) -> Iterator[Any]:
        return (m for m in list(self._queue._messages) if m.visible and not m.delayed)

    def __bool__(self) -> bool:
        return next(iter(self), None) is not None

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _lazy_messages(original: property) -> property:
    """``Queue.messages`` returning a :class:`_VisibleMessages` view instead of a list."""
    return property(_VisibleMessages, doc=_VisibleMessages.__doc__)


def _indexed_mark_received(original: Callable[..., Any]) -> Callable[..., Any]:
    """``Message.mark_received`` that also indexes the newly issued receipt handle."""

    @functools.wraps(original)
    def mark_received(message: Any, *args: Any, **kwargs: Any) -> None:
        original(message, *args, **kwargs)
        _receipts[message.receipt_handle] = message

    return mark_received


def _indexed_delete_message(original: Callable[..., Any]) -> Callable[..., Any]:
    """``Queue.delete_message`` finding the message by receipt handle instead of by scanning."""

    @functools.wraps(original)
    def delete_message(queue: Any, receipt_handle: str) -> None:
        message = _receipts.get(receipt_handle)
        if message is None or receipt_handle in queue.deleted_messages:
            original(queue, receipt_handle)  # unknown or repeated handle: moto's answer
            return
        try:
            queue._messages.remove(message)
        except ValueError:  # issued by another queue (or for a purged message)
            original(queue, receipt_handle)
            return
        queue.pending_messages.discard(message)
        queue.deleted_messages.update(message.all_receipt_handles)

    return delete_message
