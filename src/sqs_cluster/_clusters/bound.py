"""A completion bound to the cluster at creation: a function by import path, or a queue.

Stored on the cluster record (``onComplete``), so whichever consumer ends the cluster runs it,
whether or not it passed ``on_cluster_complete``. Pure: importing a function is the only
side effect here; sending the completion message is the client's.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._errors import SQSClusterError, ValidationError
from .._records.model import RecordKey

IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class CallbackImportError(SQSClusterError):
    """A cluster's ``on_complete`` import path does not import (or is not callable) here."""


@dataclass(frozen=True)
class CompletionQueue:
    """Send one tracked completion message to ``queue_url`` when the cluster ends.

    Its body is the cluster's summary (``complete.completion_summary``); its record key is derived
    from the cluster, so a second send (a runner that died after sending) is recognised by the
    consumer's claim like any duplicate.
    """

    queue_url: str


OnComplete = str | CompletionQueue
"""What ``create_message_cluster(on_complete=...)`` takes: ``"package.module:function"``
(called like an ``on_cluster_complete`` callback) or a :class:`CompletionQueue`."""


def import_callback(path: str) -> Callable[..., Any]:
    """The function ``path`` (``"package.module:function"``) names; CallbackImportError if not."""
    module_name, _, name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise CallbackImportError(f"on_complete {path!r}: module {module_name!r}: {exc}") from exc
    function = getattr(module, name, None)
    if not callable(function):
        raise CallbackImportError(f"on_complete {path!r}: {module_name} has no function {name!r}")
    return function  # type: ignore[no-any-return]


def on_complete_text(value: Any) -> str:
    """Check ``on_complete`` in the producer and return what the cluster record stores.

    An import path must import here (the same code is expected to run in the consumers); a
    queue must be a queue URL.
    """
    from .._messages.outgoing import validate_queue_url

    if isinstance(value, CompletionQueue):
        validate_queue_url(value.queue_url, "on_complete.queue_url")
        return json.dumps({"queue": value.queue_url}, separators=(",", ":"))
    if not isinstance(value, str) or not IMPORT_PATH.match(value):
        raise ValidationError(
            "on_complete",
            f'expected "package.module:function" or CompletionQueue(queue_url), got {value!r}',
        )
    try:
        import_callback(value)
    except CallbackImportError as exc:
        raise ValidationError("on_complete", str(exc).removeprefix("on_complete ")) from exc
    return json.dumps({"call": value}, separators=(",", ":"))


def on_complete_from(text: Any) -> OnComplete | None:
    """What a cluster record's ``onComplete`` holds (None when absent or unreadable)."""
    if not isinstance(text, str):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if isinstance(data, dict) and isinstance(data.get("queue"), str):
        return CompletionQueue(data["queue"])
    if isinstance(data, dict) and isinstance(data.get("call"), str):
        return str(data["call"])
    return None


def completion_key(cluster: RecordKey, queue_url: str, redrive: int = 0) -> RecordKey:
    """The completion message's record key: one per cluster, queue and end (each redrive
    ends the cluster again)."""
    suffix = f".r{redrive}" if redrive else ""
    return RecordKey.for_message(f"{cluster.id}.complete{suffix}", queue_url)
