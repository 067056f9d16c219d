"""The type variables of the public generics (``MessageRecord[Meta]``, ``ClusterRecord[Meta,
Globals]``, ``ReceivedMessage[Body]``)."""

from __future__ import annotations

from typing import TypeVar

Meta = TypeVar("Meta")
Body = TypeVar("Body")
Globals = TypeVar("Globals")
