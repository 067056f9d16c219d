"""The callback and record types of the blocking facade: the one module of ``sync/`` written
by hand.

They mirror ``sqs_cluster.Handler``, ``sqs_cluster.ClusterCallback``, the hooks
``sqs_cluster.SuccessHook`` and ``sqs_cluster.FailureHook``, and the client's ``RecordLike``,
with the blocking views in place of the async ones (``scripts/gen_sync.py`` lists them in
``HAND_WRITTEN``). The facade runs a plain function in a worker thread, so it may block (lazy
getters, other blocking calls) while the rest of the batch goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .._client.reading import WrappedRecord
from .._types import Body
from ._clusters_model import ClusterRecord
from ._messages_event import ReceivedMessage

Handler = Callable[[ReceivedMessage[Body]], Any]
"""A record handler: a plain function that takes the parsed message; raising marks it failed.

``Handler[Order]`` takes a ``ReceivedMessage[Order]`` (see ``safe_process_batch(model=...)``).

A non-None return value (any JSON value) is stored on the record as its ``result``.
"""

ClusterCallback = Callable[[ClusterRecord[Any, Any], Callable[[], Any]], Any]
"""``callback(cluster, get_globals)``: a plain function; runs once when the cluster ends."""

SuccessHook = Callable[[ReceivedMessage[Any], Any], Any]
"""``on_success(message, result)``: a plain function; runs after the message's handler returned
``result`` and its outcome was recorded. What it raises is logged and ignored."""

FailureHook = Callable[[ReceivedMessage[Any], BaseException], Any]
"""``on_failure(message, error)``: a plain function; runs after the message failed with
``error``. What it raises is logged and ignored."""

RecordLike = Mapping[str, Any] | WrappedRecord | ReceivedMessage[Any]
"""A Lambda SQS record (a dict, or Powertools' ``SQSRecord``), or a :class:`ReceivedMessage`."""
