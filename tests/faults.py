"""A client proxy that injects per-entry faults into real calls against the local server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Interceptor = Callable[[Callable[..., Awaitable[Any]], dict[str, Any]], Awaitable[Any]]


class FaultyClient:
    """Wraps an aiobotocore client; ``intercept[op](call, kwargs)`` replaces named operations."""

    def __init__(self, real: Any, **intercept: Interceptor) -> None:
        self._real = real
        self._intercept = intercept
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._real, name)
        if name not in self._intercept:
            return attr
        interceptor = self._intercept[name]

        async def wrapper(**kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            return await interceptor(attr, kwargs)

        return wrapper


def fail_entries_once(count: int, *, sender_fault: bool = False) -> Interceptor:
    """SendMessageBatch: withhold the first ``count`` entries of the first call, report Failed."""
    state = {"done": False}

    async def interceptor(call: Callable[..., Awaitable[Any]], kwargs: dict[str, Any]) -> Any:
        if state["done"]:
            return await call(**kwargs)
        state["done"] = True
        entries = kwargs["Entries"]
        withheld, rest = entries[:count], entries[count:]
        resp = await call(**{**kwargs, "Entries": rest}) if rest else {"Successful": []}
        failed = [
            {"Id": e["Id"], "SenderFault": sender_fault, "Code": "InternalError", "Message": "boom"}
            for e in withheld
        ]
        return {**resp, "Failed": list(resp.get("Failed", [])) + failed}

    return interceptor


def always_fail_entry(entry_id: str) -> Interceptor:
    """SendMessageBatch: the entry with this Id fails with a sender fault on every call."""

    async def interceptor(call: Callable[..., Awaitable[Any]], kwargs: dict[str, Any]) -> Any:
        entries = kwargs["Entries"]
        keep = [e for e in entries if e["Id"] != entry_id]
        resp = await call(**{**kwargs, "Entries": keep}) if keep else {"Successful": []}
        failed = list(resp.get("Failed", []))
        if len(keep) != len(entries):
            failed.append({"Id": entry_id, "SenderFault": True, "Code": "InvalidMessage"})
        return {**resp, "Failed": failed}

    return interceptor


def unprocessed_once(count: int) -> Interceptor:
    """BatchWriteItem: withhold ``count`` items of the first call and return them unprocessed."""
    state = {"done": False}

    async def interceptor(call: Callable[..., Awaitable[Any]], kwargs: dict[str, Any]) -> Any:
        if state["done"]:
            return await call(**kwargs)
        state["done"] = True
        ((table, requests),) = kwargs["RequestItems"].items()
        withheld, rest = requests[:count], requests[count:]
        resp = await call(RequestItems={table: rest}) if rest else {}
        return {**resp, "UnprocessedItems": {table: withheld}}

    return interceptor


def unprocessed_keys_once(count: int) -> Interceptor:
    """BatchGetItem: withhold ``count`` keys of the first call and return them unprocessed."""
    state = {"done": False}

    async def interceptor(call: Callable[..., Awaitable[Any]], kwargs: dict[str, Any]) -> Any:
        if state["done"]:
            return await call(**kwargs)
        state["done"] = True
        ((table, request),) = kwargs["RequestItems"].items()
        keys = request["Keys"]
        resp = await call(RequestItems={table: {**request, "Keys": keys[count:]}})
        return {**resp, "UnprocessedKeys": {table: {"Keys": keys[:count]}}}

    return interceptor
