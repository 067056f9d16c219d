"""An opt-in per-item DynamoDB write budget for the local server, as AWS throttles a hot item.

On AWS one partition takes at most 1,000 write units (WCU) a second; a benchmark on a small
machine cannot push that hard, so the local server can scale the limit down: with
``python -m sqs_cluster.local.server --item-write-budget 20`` each item (table and key) gets a
token bucket of 20 WCU a second with a burst of one second's worth. :class:`ItemWriteBudget`
sits in front of moto for DynamoDB requests, inside the server's DynamoDB lock, and answers a
write that would take an item past its budget as DynamoDB does:

- PutItem, UpdateItem, DeleteItem: ``ThrottlingException`` (on-demand table) or
  ``ProvisionedThroughputExceededException`` (provisioned table), HTTP 400; nothing applied.
- TransactWriteItems: ``TransactionCanceledException`` with one cancellation reason per action
  (``ThrottlingError`` or ``ProvisionedThroughputExceeded`` for the throttled ones, ``None``
  for the others); nothing applied.
- BatchWriteItem: the throttled entries come back in ``UnprocessedItems``, the others are
  applied; if every entry is throttled, the single-item error.

Write units, as DynamoDB bills them: ``max(1, ceil(size / 1 KB))`` for the larger of the item
before and after the write, twice that for each action of a transaction (a ConditionCheck
included), each entry of a batch on its own item. Sizes follow DynamoDB's published rules
(:func:`item_size`). A write is admitted on the size known beforehand: the stored item, a
PutItem's new item, or the stored item plus an update's values. Once moto has applied it, the
charge is corrected to the item's size after the write. A write refused by its condition is
billed, as on AWS; a throttled write, or one moto rejects for another reason, costs nothing.
Reads are not budgeted.

The counts are served at ``GET /_budget/stats`` (see :meth:`ItemWriteBudget.stats`). This module
imports moto only inside the server process, when a request arrives.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import json
import math
import os
import secrets
import string
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["STATS_PATH", "ItemWriteBudget", "budget_stats", "item_size", "write_units"]

STATS_PATH = "/_budget/stats"
"""Path of the stats endpoint (GET), answered without the DynamoDB lock."""

TOP_ITEMS = 20
"""How many items ``by_item_top`` lists."""

Respond = Callable[[dict[str, Any], Callable[..., Any]], list[bytes]]

_OPERATIONS = frozenset(
    {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}
)
_ERROR_PREFIX = "com.amazonaws.dynamodb.v20120810#"
_ON_DEMAND_MESSAGE = (
    "Throughput exceeds the current capacity of your table or index. DynamoDB is automatically "
    "scaling your table or index so please try again shortly. If exceptions persist, check if "
    "you have a hot key: "
    "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html"
)
_PROVISIONED_MESSAGE = (
    "The level of configured provisioned throughput for the table was exceeded. Consider "
    "increasing your provisioning level with the UpdateTable API."
)
_REASON = "TableWriteKeyRangeThroughputExceeded"
_BILLED_ERRORS = frozenset({"ConditionalCheckFailedException", "TransactionCanceledException"})
"""moto's answers that still bill the write: a condition that failed."""
_REQUEST_ID_ALPHABET = string.ascii_uppercase + string.digits


# -- sizes and write units ----------------------------------------------------------------------


def item_size(attributes: dict[str, Any]) -> int:
    """Bytes of an item in DynamoDB's wire format, by DynamoDB's published rules.

    Each attribute counts its name's UTF-8 bytes plus its value: strings their UTF-8 bytes,
    numbers one byte per two significant digits plus one, binary its raw bytes, booleans and
    nulls one byte, sets the sum of their members, lists and maps three bytes plus one per
    element plus the elements (and a map's key names).
    """
    return sum(len(name.encode()) + _value_size(value) for name, value in attributes.items())


def write_units(size: int) -> int:
    """Write units of one non-transactional write of an item of ``size`` bytes (1 KB each)."""
    return max(1, math.ceil(size / 1024))


def _value_size(value: Any) -> int:
    if not isinstance(value, dict) or len(value) != 1:
        return len(json.dumps(value, default=str).encode())  # not wire format: a rough guess
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(str(inner).encode())
    if kind == "N":
        return _number_size(str(inner))
    if kind == "B":
        return _binary_size(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(str(v).encode()) for v in inner)
    if kind == "NS":
        return sum(_number_size(str(v)) for v in inner)
    if kind == "BS":
        return sum(_binary_size(v) for v in inner)
    if kind == "L":
        return 3 + sum(1 + _value_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + _value_size(v) for k, v in inner.items())
    return len(json.dumps(inner, default=str).encode())


def _number_size(text: str) -> int:
    mantissa = text.lstrip("+-").lower().split("e", 1)[0]
    digits = mantissa.replace(".", "").strip("0")
    return (len(digits) + 1) // 2 + 1


def _binary_size(value: Any) -> int:
    if isinstance(value, bytes | bytearray):
        return len(value)
    try:
        return len(base64.b64decode(str(value), validate=True))
    except (binascii.Error, ValueError):
        return len(str(value).encode())


# -- the budget ---------------------------------------------------------------------------------


class _Bucket:
    """One item's token bucket and its totals."""

    __slots__ = ("key", "stamp", "table", "throttled", "tokens", "wcu")

    def __init__(self, table: str, key: str, tokens: float, stamp: float) -> None:
        self.table, self.key = table, key
        self.tokens, self.stamp = tokens, stamp
        self.wcu = 0.0
        self.throttled = 0


@dataclass
class _Write:
    """One item written by a request: where, how much, and how its bill is corrected."""

    table: Any  # moto's Table
    table_name: str  # as the request names it
    key: str  # the key attributes as canonical JSON
    key_attrs: dict[str, Any]
    before: int  # bytes of the stored item (0: none)
    estimate: int  # bytes assumed after the write, for admission
    factor: int  # 2 in a transaction, else 1
    entry: Any = None  # a BatchWriteItem entry, as sent
    charged: float = field(default=0.0)

    @property
    def units(self) -> float:
        return float(self.factor * write_units(max(self.before, self.estimate)))


class ItemWriteBudget:
    """Per-item write budgets of ``rate`` WCU a second (burst ``rate``), in front of moto.

    :meth:`respond` is called for each DynamoDB request, under the server's DynamoDB lock, so
    requests see each other's writes one at a time. A lock of its own guards the counts, so
    that :meth:`stats` can read them from another thread without waiting for that lock.
    """

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"item write budget must be a positive number, not {rate!r}")
        self.rate = float(rate)
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._throttled: dict[str, int] = {}
        self._consumed: dict[str, float] = {}
        self._unprocessed = 0

    # -- the WSGI side --------------------------------------------------------------------------

    def respond(
        self, environ: dict[str, Any], start_response: Callable[..., Any], forward: Respond
    ) -> list[bytes]:
        """Answer one DynamoDB request: throttle it, or pass it (or what is left of it) to moto.

        A request that cannot be understood here (not JSON, an unknown table, a key missing)
        goes to moto unbudgeted, so moto answers it with its own error.
        """
        operation = str(environ.get("HTTP_X_AMZ_TARGET", "")).rpartition(".")[2]
        if operation not in _OPERATIONS:
            return forward(environ, start_response)
        raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ = _with_body(environ, raw)
        try:
            request = json.loads(raw)
            writes = _plan(operation, request, _backend(environ))
        except Exception:  # anything odd is moto's to answer
            writes = None
        if not writes:
            return forward(environ, start_response)
        if operation == "BatchWriteItem":
            return self._batch(request, writes, environ, start_response, forward)
        with self._lock:
            refused = self._admit(writes, all_or_nothing=True)
            if refused:
                self._count_throttle(operation)
        if refused:
            if operation == "TransactWriteItems":
                return _cancelled(writes, refused, start_response)
            return _throttled(writes[0].table, start_response)
        return self._forward_and_settle(operation, writes, environ, start_response, forward)

    def _batch(
        self,
        request: dict[str, Any],
        writes: list[_Write],
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        forward: Respond,
    ) -> list[bytes]:
        with self._lock:
            refused = self._admit(writes, all_or_nothing=False)
            if refused:
                self._count_throttle("BatchWriteItem")
                if len(refused) < len(writes):
                    self._unprocessed += len(refused)
        if not refused:
            return self._forward_and_settle(
                "BatchWriteItem", writes, environ, start_response, forward
            )
        if len(refused) == len(writes):
            return _throttled(writes[0].table, start_response)
        kept: dict[str, list[Any]] = {}
        unprocessed: dict[str, list[Any]] = {}
        for i, write in enumerate(writes):
            (unprocessed if i in refused else kept).setdefault(write.table_name, []).append(
                write.entry
            )
        body = json.dumps({**request, "RequestItems": kept}).encode()
        answer = Answer()
        admitted = [w for i, w in enumerate(writes) if i not in refused]
        chunks = self._forward_and_settle(
            "BatchWriteItem", admitted, _with_body(environ, body), answer, forward
        )
        status, headers = answer.args[0], list(answer.args[1])
        if not str(status).startswith("200"):
            start_response(*answer.args)
            return chunks
        response = json.loads(b"".join(chunks) or b"{}")
        merged = response.setdefault("UnprocessedItems", {})
        for table_name, entries in unprocessed.items():
            merged.setdefault(table_name, []).extend(entries)
        out = json.dumps(response).encode()
        start_response(status, _replace_headers(headers, out))
        return [out]

    def _forward_and_settle(
        self,
        operation: str,
        writes: list[_Write],
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        forward: Respond,
    ) -> list[bytes]:
        """Let moto apply the admitted writes, then correct or refund their charges."""
        answer = Answer()
        try:
            chunks = forward(environ, answer)
        except BaseException:
            with self._lock:
                self._settle(operation, writes, refund=True)
            raise
        status = str(answer.args[0]) if answer.args else "500"
        ok = status.startswith("200")
        billed = ok or _error_type(answer.args, chunks) in _BILLED_ERRORS
        sizes = [_stored_size(w.table, w.key_attrs) for w in writes] if ok else []
        with self._lock:
            if ok:
                for write, after in zip(writes, sizes, strict=True):
                    write.estimate = after
            self._settle(operation, writes, refund=not billed, corrected=ok)
        start_response(*answer.args)
        return chunks

    # -- buckets ---------------------------------------------------------------------------------

    def _bucket(self, write: _Write, now: float) -> _Bucket:
        ident = (str(write.table.table_arn), write.key)
        bucket = self._buckets.get(ident)
        if bucket is None:
            bucket = self._buckets[ident] = _Bucket(write.table.name, write.key, self.rate, now)
        else:
            bucket.tokens = min(self.rate, bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
        return bucket

    def _admit(self, writes: list[_Write], *, all_or_nothing: bool) -> set[int]:
        """Indexes of the writes refused; the admitted ones are charged (all, or none).

        An item is admitted while its bucket holds the units asked of it (at most a full
        bucket, so that an item larger than the burst can still be written now and then).
        """
        now = self._clock()
        asked: dict[int, float] = {}
        buckets = [self._bucket(w, now) for w in writes]
        refused = set()
        for i, (write, bucket) in enumerate(zip(writes, buckets, strict=True)):
            total = asked.get(id(bucket), 0.0) + write.units
            if bucket.tokens + 1e-9 < min(total, self.rate):
                refused.add(i)
                continue
            asked[id(bucket)] = total
        if refused and all_or_nothing:
            for i in refused:
                buckets[i].throttled += 1
            return refused
        for i, (write, bucket) in enumerate(zip(writes, buckets, strict=True)):
            if i in refused:
                bucket.throttled += 1
            else:
                write.charged = write.units
                bucket.tokens -= write.charged
        return refused

    def _settle(
        self, operation: str, writes: list[_Write], *, refund: bool, corrected: bool = False
    ) -> None:
        now = self._clock()
        for write in writes:
            bucket = self._bucket(write, now)
            final = 0.0 if refund else (write.units if corrected else write.charged)
            bucket.tokens -= final - write.charged
            bucket.wcu += final
            self._consumed[operation] = self._consumed.get(operation, 0.0) + final

    def _count_throttle(self, operation: str) -> None:
        self._throttled[operation] = self._throttled.get(operation, 0) + 1

    def clear(self) -> None:
        """Forget every bucket and count (the server's state was reset)."""
        with self._lock:
            self._buckets.clear()
            self._throttled.clear()
            self._consumed.clear()
            self._unprocessed = 0

    def stats(self) -> dict[str, Any]:
        """The counts so far, as JSON-ready data.

        ``throttled``: requests refused wholly or in part, per operation; ``unprocessed_items``:
        BatchWriteItem entries returned unprocessed; ``consumed_wcu``: units billed, per
        operation; ``items``: items written; ``by_item_top``: the most written items, as
        ``[table, key JSON, WCU billed, writes throttled]``, most WCU first.
        """
        with self._lock:
            buckets = list(self._buckets.values())
            result: dict[str, Any] = {
                "item_write_budget": self.rate,
                "throttled": dict(self._throttled),
                "unprocessed_items": self._unprocessed,
                "consumed_wcu": dict(self._consumed),
                "items": len(buckets),
            }
        top = heapq.nlargest(TOP_ITEMS, buckets, key=lambda b: (b.wcu, b.throttled))
        result["by_item_top"] = [[b.table, b.key, b.wcu, b.throttled] for b in top]
        return result


def budget_stats(budget: ItemWriteBudget | None) -> dict[str, Any]:
    """What ``GET /_budget/stats`` answers; with no budget, nothing is counted."""
    if budget is not None:
        return budget.stats()
    return {
        "item_write_budget": None,
        "throttled": {},
        "unprocessed_items": 0,
        "consumed_wcu": {},
        "items": 0,
        "by_item_top": [],
    }


# -- reading the request and moto's state -------------------------------------------------------


def _backend(environ: dict[str, Any]) -> Any:
    """moto's DynamoDB backend for the request's account and region, found as moto finds it."""
    from moto.dynamodb.models import dynamodb_backends
    from moto.iam.models import get_account_id_from

    header = str(environ.get("HTTP_AUTHORIZATION", ""))
    scope = header.partition("Credential=")[2].split(",", 1)[0].split("/")
    access_key = scope[0] if scope[0] else "AKIAEXAMPLE"
    region = scope[2] if len(scope) > 2 else "us-east-1"
    account = (
        os.environ.get("MOTO_ACCOUNT_ID")
        or environ.get("HTTP_X_MOTO_ACCOUNT_ID")
        or get_account_id_from(access_key)
    )
    return dynamodb_backends[account][region]


def _plan(operation: str, request: dict[str, Any], backend: Any) -> list[_Write] | None:
    """The items a write request touches, in request order; None if it cannot be read."""
    if operation == "PutItem":
        return [_put(backend, request, 1)]
    if operation == "UpdateItem":
        return [_update(backend, request, 1)]
    if operation == "DeleteItem":
        return [_keyed(backend, request, 1)]
    if operation == "TransactWriteItems":
        writes = []
        for action in request["TransactItems"]:
            ((kind, op),) = action.items()
            if kind == "Put":
                writes.append(_put(backend, op, 2))
            elif kind == "Update":
                writes.append(_update(backend, op, 2))
            elif kind in ("Delete", "ConditionCheck"):
                writes.append(_keyed(backend, op, 2))
            else:
                return None
        return writes
    writes = []
    for table_name, entries in request["RequestItems"].items():
        for entry in entries:
            if "PutRequest" in entry:
                write = _put(backend, {"TableName": table_name, **entry["PutRequest"]}, 1)
            else:
                write = _keyed(backend, {"TableName": table_name, **entry["DeleteRequest"]}, 1)
            write.entry = entry
            writes.append(write)
    return writes


def _write(backend: Any, op: dict[str, Any], source: dict[str, Any], factor: int) -> _Write:
    table = backend.get_table(op["TableName"])
    key_attrs = {name: source[name] for name in table.table_key_attrs}
    before = _stored_size(table, key_attrs)
    key = json.dumps(key_attrs, sort_keys=True, separators=(",", ":"))
    return _Write(table, op["TableName"], key, key_attrs, before, before, factor)


def _put(backend: Any, op: dict[str, Any], factor: int) -> _Write:
    write = _write(backend, op, op["Item"], factor)
    write.estimate = item_size(op["Item"])
    return write


def _update(backend: Any, op: dict[str, Any], factor: int) -> _Write:
    write = _write(backend, op, op["Key"], factor)
    values = dict(op.get("ExpressionAttributeValues") or {})
    for name, update in (op.get("AttributeUpdates") or {}).items():
        if "Value" in update:
            values[name] = update["Value"]
    write.estimate = max(write.before, item_size(op["Key"])) + item_size(values)
    return write


def _keyed(backend: Any, op: dict[str, Any], factor: int) -> _Write:
    return _write(backend, op, op["Key"], factor)


def _stored_size(table: Any, key_attrs: dict[str, Any]) -> int:
    """Bytes of the item stored under the key (0 if none), read without moto's side effects."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    partition = table.items.get(DynamoType(key_attrs[table.hash_key_attr]))
    if partition is None:
        return 0
    item = partition
    if table.range_key_attr:
        item = partition.get(DynamoType(key_attrs[table.range_key_attr]))
        if item is None:
            return 0
    return item_size(item.to_json()["Attributes"])


# -- answers ------------------------------------------------------------------------------------


def _on_demand(table: Any) -> bool:
    return str(getattr(table, "billing_mode", None) or "") != "PROVISIONED"


def _throttled(table: Any, start_response: Callable[..., Any]) -> list[bytes]:
    """The single-item answer DynamoDB gives a write to a hot item."""
    reasons = [{"reason": _REASON, "resource": str(table.table_arn)}]
    if _on_demand(table):
        body = {
            "__type": _ERROR_PREFIX + "ThrottlingException",
            "message": _ON_DEMAND_MESSAGE,
            "throttlingReasons": reasons,
        }
    else:
        body = {
            "__type": _ERROR_PREFIX + "ProvisionedThroughputExceededException",
            "message": _PROVISIONED_MESSAGE,
            "ThrottlingReasons": reasons,
        }
    return _error(body, start_response)


def _cancelled(
    writes: list[_Write], refused: set[int], start_response: Callable[..., Any]
) -> list[bytes]:
    """A TransactWriteItems cancelled because of the refused actions."""
    reasons: list[dict[str, str]] = []
    for i, write in enumerate(writes):
        if i not in refused:
            reasons.append({"Code": "None"})
        elif _on_demand(write.table):
            reasons.append({"Code": "ThrottlingError", "Message": _ON_DEMAND_MESSAGE})
        else:
            reasons.append(
                {"Code": "ProvisionedThroughputExceeded", "Message": _PROVISIONED_MESSAGE}
            )
    codes = ", ".join(r["Code"] for r in reasons)
    body = {
        "__type": _ERROR_PREFIX + "TransactionCanceledException",
        "Message": "Transaction cancelled, please refer cancellation reasons for specific "
        f"reasons [{codes}]",
        "CancellationReasons": reasons,
    }
    return _error(body, start_response)


def _error(body: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    data = json.dumps(body).encode()
    request_id = "".join(secrets.choice(_REQUEST_ID_ALPHABET) for _ in range(52))
    headers = [
        ("Content-Type", "application/x-amz-json-1.0"),
        ("x-amzn-RequestId", request_id),
        ("x-amz-crc32", str(binascii.crc32(data))),
        ("Content-Length", str(len(data))),
    ]
    start_response("400 Bad Request", headers)
    return [data]


def _replace_headers(headers: Iterable[tuple[str, str]], body: bytes) -> list[tuple[str, str]]:
    """moto's headers for a rewritten body: its length and checksum (botocore checks it)."""
    fresh = {"content-length": str(len(body)), "x-amz-crc32": str(binascii.crc32(body))}
    out = [(k, fresh.pop(k.lower(), v)) for k, v in headers]
    return out + [(k, v) for k, v in fresh.items() if k != "x-amz-crc32"]


def _error_type(args: tuple[Any, ...], chunks: list[bytes]) -> str:
    for name, value in args[1] if len(args) > 1 else ():
        if str(name).lower() == "x-amzn-errortype":
            return str(value).split(":", 1)[0]
    try:
        return str(json.loads(b"".join(chunks)).get("__type", "")).rpartition("#")[2]
    except (ValueError, AttributeError):
        return ""


def _with_body(environ: dict[str, Any], body: bytes) -> dict[str, Any]:
    import io

    return {**environ, "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))}


class Answer:
    """A ``start_response`` that keeps the status and headers, to answer with them later."""

    def __init__(self) -> None:
        self.args: tuple[Any, ...] = ()

    def __call__(self, *args: Any) -> Callable[[bytes], None]:
        self.args = args
        return lambda data: None
