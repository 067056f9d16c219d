"""Reading and updating records: GetItem, BatchGetItem and conditional read-modify-write."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from .._aws.clients import AWS, error_code
from .._aws.conditional import update_if
from .._aws.retry import sleep_backoff
from .._concurrency import chunked
from .._errors import ConflictError, RecordNotFoundError, ResourceMissingError, ValidationError
from .codec import dumps, key_item, now_iso, record_from_item
from .limits import check_meta_size, check_record_data
from .model import MessageRecord, RecordKey
from .write_tokens import append_token, may_have_run, new_token, parse_tokens

BATCH_GET_LIMIT = 100
USER_FIELDS_ATTRIBUTE = "user"
WRITE_TOKENS_ATTRIBUTE = "writeTokens"
"""Tokens of the latest ``update_record`` calls, space-separated, newest last."""
KEPT_WRITE_TOKENS = 8
RESERVED_FIELDS = frozenset(
    {
        "pKey", "rKey", "id", "type", "url", "body", "bodyBytes", "bodySha256", "bodyAt",
        "status", "statusCode", "startedAt", "completedAt", "updatedAt", "expiresAt",
        "consumptionCount", "leaseUntilMs", "error",
        "errors", "clusterKey", "taskIndex", "rev", "revision", "key", "status_code", "started_at",
        "completed_at", "updated_at", "expires_at", "consumption_count", "lease_until_ms",
        "onComplete", "on_complete", "task", "results", "resultsTo",
        "sentAt", "sent_at", "idempotencySha256", "gsi1pk", "gsi1sk",
    }
)  # fmt: skip

Changes = Mapping[str, Any]
ChangesFn = Callable[[MessageRecord[Any]], Changes | Awaitable[Changes]]


async def get_record(
    aws: AWS, key: RecordKey, *, consistent_read: bool = False
) -> MessageRecord[Any]:
    """GetItem one record or raise RecordNotFoundError."""
    raw = await get_raw(aws, key, consistent_read=consistent_read)
    if raw is None:
        raise RecordNotFoundError(key)
    return record_from_item(raw)


async def get_raw(
    aws: AWS, key: RecordKey, *, consistent_read: bool = False, projection: str | None = None
) -> dict[str, Any] | None:
    """GetItem one raw item (only the ``projection`` attributes, if given), or None."""
    params: dict[str, Any] = {
        "TableName": aws.config.table,
        "Key": key_item(key),
        "ConsistentRead": consistent_read,
    }
    if projection is not None:
        params["ProjectionExpression"] = projection
    async with aws.slot():
        resp = await aws.ddb.get_item(**params)
    item: dict[str, Any] | None = resp.get("Item")
    return item


async def update_raw(aws: AWS, params: dict[str, Any]) -> None:
    """An unconditional UpdateItem (counters, progress): nothing to decide on its answer.
    A conditional one goes through :mod:`sqs_cluster._aws.conditional`."""
    async with aws.slot():
        await aws.ddb.update_item(**params)


async def query_partition(
    aws: AWS, p_key: str, *, consistent_read: bool = False
) -> list[dict[str, Any]]:
    """Every raw item under partition key ``p_key``, page by page."""
    items: list[dict[str, Any]] = []
    request: dict[str, Any] = {
        "TableName": aws.config.table,
        "KeyConditionExpression": "pKey = :p",
        "ExpressionAttributeValues": {":p": {"S": p_key}},
        "ConsistentRead": consistent_read,
    }
    while True:
        async with aws.slot():
            resp: Any = await aws.ddb.query(**request)
        items.extend(resp.get("Items", []))
        if "LastEvaluatedKey" not in resp:
            return items
        request["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


async def query_index_page(
    aws: AWS, index: str, key_condition: str, values: dict[str, Any], limit: int
) -> list[dict[str, Any]]:
    """Up to ``limit`` raw items of one Query on the global secondary index ``index``, in
    descending sort key order. A missing index raises ResourceMissingError naming it and the
    way to add it (``sqs-cluster init``)."""
    request: dict[str, Any] = {
        "TableName": aws.config.table,
        "IndexName": index,
        "KeyConditionExpression": key_condition,
        "ExpressionAttributeValues": values,
        "ScanIndexForward": False,
        "Limit": limit,
    }
    try:
        async with aws.slot():
            resp: Any = await aws.ddb.query(**request)
    except Exception as exc:
        missing = {"ValidationException", "ResourceNotFoundException"}  # AWS's, the local one's
        if error_code(exc) in missing and "index" in str(exc).lower():
            raise ResourceMissingError(
                f"index: the table {aws.config.table} has no index {index!r} (tables made "
                "before it need it added: run `sqs-cluster init`, which adds it with "
                f"UpdateTable): {exc}"
            ) from exc
        raise
    items: list[dict[str, Any]] = resp.get("Items", [])
    return items


async def get_records(
    aws: AWS, keys: Iterable[RecordKey], *, consistent_read: bool = False
) -> list[MessageRecord[Any] | None]:
    """BatchGetItem ≤ 100 keys a call, retrying UnprocessedKeys; results in the order asked."""
    wanted = [RecordKey.coerce(k) for k in keys]
    found: dict[tuple[str, str], MessageRecord[Any]] = {}
    for chunk in chunked(dict.fromkeys(wanted), BATCH_GET_LIMIT):
        for item in await batch_get_raw(aws, chunk, consistent_read=consistent_read):
            record = record_from_item(item)
            found[(record.p_key, record.r_key)] = record
    return [found.get((k.p_key, k.r_key)) for k in wanted]


async def batch_get_raw(
    aws: AWS, keys: list[RecordKey], *, consistent_read: bool = False
) -> list[dict[str, Any]]:
    """Raw items for ≤ 100 keys (one BatchGetItem, UnprocessedKeys retried); any order."""
    table = aws.config.table
    request: list[dict[str, Any]] = [key_item(k) for k in keys]
    items: list[dict[str, Any]] = []
    for attempt in range(aws.config.partial_retry_attempts + 1):
        if attempt:
            await sleep_backoff(attempt)
        async with aws.slot():
            resp: Any = await aws.ddb.batch_get_item(
                RequestItems={table: {"Keys": request, "ConsistentRead": consistent_read}}
            )
        items.extend(resp.get("Responses", {}).get(table, []))
        request = list(resp.get("UnprocessedKeys", {}).get(table, {}).get("Keys", []))
        if not request:
            return items
    raise ConflictError(f"BatchGetItem left {len(request)} keys unprocessed after retries")


def _validate_changes(changes: Any) -> dict[str, Any]:
    if not isinstance(changes, Mapping):
        raise ValidationError(
            "changes", f"expected a mapping of fields, got {type(changes).__name__}"
        )
    bad = sorted(set(changes) & RESERVED_FIELDS)
    if bad:
        raise ValidationError(
            f"changes.{bad[0]}",
            "status, timestamps, counters and keys are managed by sqs-cluster; "
            "only 'meta' and your own fields are writable",
        )
    return dict(changes)


async def update_record(
    aws: AWS,
    key: RecordKey,
    changes_or_fn: Changes | ChangesFn,
    *,
    expected_type: str | None = None,
) -> MessageRecord[Any]:
    """Apply user changes: a mapping directly, a function as a conditional read-modify-write.

    Each call writes a random token into ``writeTokens`` with its change: when a write landed
    but its answer was lost (the retry then fails its revision check), the item read next
    carries the token and the change is not applied a second time.
    """
    token = new_token()
    for attempt in range(aws.config.partial_retry_attempts * 2):
        if attempt:
            await sleep_backoff(attempt)
        item = await get_raw(aws, key, consistent_read=True)
        if item is None:
            raise RecordNotFoundError(key)
        current = record_from_item(item)
        if token in _tokens(item):  # an earlier attempt of this call landed
            return current
        if expected_type is not None and current.type.value != expected_type:
            raise ValidationError(
                "key", f"{key} is a {current.type.value} record, not a {expected_type}"
            )
        if callable(changes_or_fn):
            result = changes_or_fn(current)
            changes = _validate_changes(await result if inspect.isawaitable(result) else result)
        else:
            changes = _validate_changes(changes_or_fn)
        written, after = await _conditional_write(aws, key, current, item, changes, token)
        if written or (after is not None and token in _tokens(after)):
            if after is None:  # no attributes came back: read the result
                return await get_record(aws, key, consistent_read=True)
            return record_from_item(after)
    raise ConflictError(f"update of {key} lost {attempt + 1} races in a row; try again")


def _tokens(item: Mapping[str, Any]) -> list[str]:
    return parse_tokens(item.get(WRITE_TOKENS_ATTRIBUTE, {}).get("S"))


async def _conditional_write(
    aws: AWS,
    key: RecordKey,
    current: MessageRecord[Any],
    item: Mapping[str, Any],
    changes: dict[str, Any],
    token: str,
) -> tuple[bool, dict[str, Any] | None]:
    """UpdateItem on the revision read: (True, the new item) or (False, the item, if known)."""
    names = {"#u": "updatedAt", "#rev": "rev", "#tokens": WRITE_TOKENS_ATTRIBUTE}
    values: dict[str, Any] = {
        ":now": {"S": now_iso()},
        ":next": {"N": str(current.revision + 1)},
        ":tokens": {"S": append_token(_tokens(item), token, KEPT_WRITE_TOKENS)},
    }
    if current.revision:
        values[":seen"] = {"N": str(current.revision)}
    sets = ["#u = :now", "#rev = :next", "#tokens = :tokens"]
    texts = {name: item.get(name, {}).get("S", "") for name in ("body", "meta")}
    texts["user"] = item.get(USER_FIELDS_ATTRIBUTE, {}).get("S", "")
    if "meta" in changes:
        texts["meta"] = dumps(changes.pop("meta"), field="changes.meta")
        check_meta_size(texts["meta"], "changes.meta")
        names["#m"] = "meta"
        values[":m"] = {"S": texts["meta"]}
        sets.append("#m = :m")
    if changes:
        texts["user"] = dumps({**current.user, **changes}, field="changes")
        names["#user"] = USER_FIELDS_ATTRIBUTE
        values[":user"] = {"S": texts["user"]}
        sets.append("#user = :user")
    check_record_data(sum(len(text.encode()) for text in texts.values()), "changes")
    params = {
        "TableName": aws.config.table,
        "Key": key_item(key),
        "UpdateExpression": "SET " + ", ".join(sets),
        "ConditionExpression": "attribute_exists(pKey) AND "
        + ("#rev = :seen" if current.revision else "attribute_not_exists(#rev)"),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "ReturnValues": "ALL_NEW",
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    try:
        written = await update_if(aws, params)
    except Exception as exc:
        if not may_have_run(exc):
            raise
        try:
            landed = await get_raw(aws, key, consistent_read=True)
        except Exception:
            landed = None
        if landed is not None and token in _tokens(landed):
            return True, landed
        raise
    return written.applied, written.item
