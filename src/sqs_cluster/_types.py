"""The type variables of the public generics (``MessageRecord[Meta, Result]``,
``ClusterRecord[Meta, Globals]``, ``ReceivedMessage[Body, Globals]``, ``TaskResult[Task,
Result]``).

``Globals``, ``Result`` and ``Task`` default to ``Any`` (PEP 696, through typing_extensions),
so ``ReceivedMessage[Order]`` and ``MessageRecord[Any]`` stay valid and untyped where left out,
while ``ReceivedMessage[Order, Prices]`` types the globals too.
"""

from __future__ import annotations

from typing import Any

from typing_extensions import TypeVar

Meta = TypeVar("Meta")
Body = TypeVar("Body")
Globals = TypeVar("Globals", default=Any)
Result = TypeVar("Result", default=Any)
Task = TypeVar("Task", default=Any)
Value = TypeVar("Value")
"""A value passed in and handed back, such as new globals (``update_message_cluster_globals``)."""
