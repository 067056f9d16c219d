"""Shared type aliases and type variables for the public generics."""

from __future__ import annotations

from typing import Any, TypeAlias, TypeVar

JSON: TypeAlias = dict[str, Any] | list[Any] | str | int | float | bool | None
"""Any JSON value: what meta, bodies, tasks and globals may hold."""

Meta = TypeVar("Meta")
Body = TypeVar("Body")
TaskMeta = TypeVar("TaskMeta")
Globals = TypeVar("Globals")
T = TypeVar("T")
