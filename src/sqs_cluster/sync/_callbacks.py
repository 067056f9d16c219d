"""The callback types of the blocking facade: the one module of ``sync/`` written by hand.

They mirror ``sqs_cluster.Handler`` and ``sqs_cluster.ClusterCallback`` with the blocking views in
place of the async ones (``scripts/gen_sync.py`` lists them in ``HAND_WRITTEN``). The facade runs
a plain function in a worker thread, so it may block (lazy getters, other blocking calls) while
the rest of the batch goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._clusters_model import ClusterRecord
from ._messages_event import ReceivedMessage

Handler = Callable[[ReceivedMessage[Any]], Any]
"""A record handler: a plain function that takes the parsed message; raising marks it failed.

A non-None return value (any JSON value) is stored on the record as its ``result``.
"""

ClusterCallback = Callable[[ClusterRecord[Any, Any], Callable[[], Any]], Any]
"""``callback(cluster, get_globals)``: a plain function; runs once when the cluster ends."""
