"""``model=``: a message's body (or a task's payload) parsed into a dataclass or a pydantic
model before the handler sees it. Pure; pydantic is never imported (a model with
``model_validate`` is used as it is).

Dataclasses get a small strict check: required fields present, unknown fields rejected, and
``str``, ``int``, ``float``, ``bool``, ``list[X]``, ``dict[str, X]``, nested dataclasses,
``X | None`` and ``Any`` checked. Every error names the field (``body.amount``,
``task.items[2].sku``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from .._concurrency import is_async_callable
from .._errors import ValidationError
from .._records.model import shown
from .event import ReceivedMessage

T = TypeVar("T")


def check_model(model: Any) -> None:
    """``model`` must be a dataclass type or a class with ``model_validate`` (pydantic)."""
    if model is None:
        return
    if isinstance(model, type) and (
        dataclasses.is_dataclass(model) or callable(getattr(model, "model_validate", None))
    ):
        return
    raise ValidationError(
        "model",
        f"expected a dataclass or a pydantic model class, got {shown(model)}",
    )


def parse_model(model: type[T], value: Any, where: str) -> T:
    """``value`` (decoded JSON) as an instance of ``model``; ValidationError naming the field."""
    validate = getattr(model, "model_validate", None)
    if callable(validate):
        return typing.cast(T, _pydantic(validate, value, where))
    return typing.cast(T, _dataclass(model, value, where))


def _pydantic(validate: Callable[[Any], Any], value: Any, where: str) -> Any:
    try:
        return validate(value)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        errors = getattr(exc, "errors", None)
        if not callable(errors):
            raise ValidationError(where, str(exc)) from None
        first = errors()[0] if errors() else {}
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first.get("loc", ()))
        raise ValidationError(f"{where}{path}", str(first.get("msg", exc))) from None


def _dataclass(model: type[Any], value: Any, where: str) -> Any:
    if not isinstance(value, Mapping):
        raise ValidationError(
            where, f"expected a JSON object for {model.__name__}, got {shown(value)}"
        )
    fields = {f.name: f for f in dataclasses.fields(model) if f.init}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise ValidationError(
            f"{where}.{unknown[0]}", f"is not a field of {model.__name__} ({', '.join(fields)})"
        )
    hints = get_type_hints(model)
    kwargs: dict[str, Any] = {}
    for name, spec in fields.items():
        if name in value:
            kwargs[name] = _value(hints.get(name, Any), value[name], f"{where}.{name}")
        elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            raise ValidationError(f"{where}.{name}", f"is required by {model.__name__}")
    return model(**kwargs)


_SCALARS: dict[type[Any], tuple[type[Any], ...]] = {
    str: (str,),
    int: (int,),
    float: (int, float),
    bool: (bool,),
}


def _value(hint: Any, value: Any, where: str) -> Any:
    """``value`` checked (and built, for a nested dataclass) against the annotation ``hint``."""
    origin = get_origin(hint)
    if hint is Any or hint is object:
        return value
    if origin in (Union, types.UnionType):
        return _union(get_args(hint), value, where)
    if origin in (list, dict) or hint in (list, dict):
        return _container(origin or hint, get_args(hint), value, where)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass(hint, value, where)
    if hint in _SCALARS:
        if isinstance(value, _SCALARS[hint]) and (hint is bool or not isinstance(value, bool)):
            return float(value) if hint is float else value
        raise ValidationError(where, f"expected {hint.__name__}, got {shown(value)}")
    raise ValidationError(where, f"type {hint!r} is not supported by model= for dataclasses")


def _union(options: tuple[Any, ...], value: Any, where: str) -> Any:
    if value is None and type(None) in options:
        return None
    rest = [o for o in options if o is not type(None)]
    for n, option in enumerate(rest):
        try:
            return _value(option, value, where)
        except ValidationError:
            if n == len(rest) - 1:
                raise
    raise ValidationError(where, f"expected None, got {shown(value)}")


def _container(kind: Any, args: tuple[Any, ...], value: Any, where: str) -> Any:
    if kind is list:
        if not isinstance(value, list):
            raise ValidationError(where, f"expected a JSON array, got {shown(value)}")
        item = args[0] if args else Any
        return [_value(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, dict):
        raise ValidationError(where, f"expected a JSON object, got {shown(value)}")
    item = args[1] if len(args) == 2 else Any
    return {k: _value(item, v, f"{where}.{k}") for k, v in value.items()}


def as_model(message: ReceivedMessage[Any], model: type[T]) -> ReceivedMessage[T]:
    """The message with its payload parsed: ``task`` for a cluster's task, else ``body``."""
    if message.is_task:
        return dataclasses.replace(message, task=parse_model(model, message.task, "task"))
    return dataclasses.replace(message, body=parse_model(model, message.body, "body"))


def with_model(handler: Callable[[Any], Any], model: type[Any] | None) -> Callable[[Any], Any]:
    """``handler`` given the message with its payload parsed into ``model`` (None: as it is).

    Sync stays sync (the batch runs it in a worker thread), async stays async; a payload that
    does not parse raises there, so it fails its message like any handler error.
    """
    if model is None:
        return handler
    if is_async_callable(handler):

        async def parsed_async(message: ReceivedMessage[Any]) -> Any:
            return await handler(as_model(message, model))

        return parsed_async

    def parsed(message: ReceivedMessage[Any]) -> Any:
        return handler(as_model(message, model))

    return parsed
