"""The callback and record types of the blocking facade: the one module of ``sync/`` written
by hand.

They mirror ``sqs_cluster.Handler``, ``sqs_cluster.ClusterCallback`` and the client's
``RecordLike`` with the blocking views in
place of the async ones (``scripts/gen_sync.py`` lists them in ``HAND_WRITTEN``). The facade runs
a plain function in a worker thread, so it may block (lazy getters, other blocking calls) while
the rest of the batch goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .._client.reading import WrappedRecord
from ._clusters_model import ClusterRecord
from ._messages_event import ReceivedMessage

Handler = Callable[[ReceivedMessage[Any]], Any]
"""A record handler: a plain function that takes the parsed message; raising marks it failed.

A non-None return value (any JSON value) is stored on the record as its ``result``.
"""

ClusterCallback = Callable[[ClusterRecord[Any, Any], Callable[[], Any]], Any]
"""``callback(cluster, get_globals)``: a plain function; runs once when the cluster ends."""

RecordLike = Mapping[str, Any] | WrappedRecord | ReceivedMessage[Any]
"""A Lambda SQS record (a dict, or Powertools' ``SQSRecord``), or a :class:`ReceivedMessage`."""
