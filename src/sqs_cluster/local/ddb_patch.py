"""Make moto's DynamoDB transactions and queries cost what they touch, not the whole table.

moto 5.2 backs up every table a transaction touches with ``copy.deepcopy(table)`` before it
applies the operations, so one transaction on a table of 100,000 records copies all of them.
Fan-in counts every task with a two-item transaction, which made a 1,000-task cluster take
minutes. :func:`apply_ddb_transaction_patch` keeps moto's own transaction code but gives its
module a ``copy`` whose ``deepcopy`` hands tables back uncopied, and backs up only the items the
transaction names; on failure those items are put back exactly as they were. Applied only
inside the local server process. It checks moto's shape first and raises RuntimeError naming
the moto version if that changed.

:func:`apply_ddb_query_patch`: moto 5.2's ``Table.query`` on the table itself (no index) lists
and sorts *every* item of the table to find one partition, so each Query costs O(table). Fan-in
queries a cluster's counters once per task, which made a 10,000-task cluster crawl. The patch
tells ``Table.all_items`` which partition the running query wants (a context variable, so
concurrent requests on other threads are unaffected) and it returns that partition alone, in
the same sorted order; scans and index queries are untouched.
"""

from __future__ import annotations

import contextvars
import copy
import functools
import inspect
from typing import Any

__all__ = ["apply_ddb_query_patch", "apply_ddb_transaction_patch"]

_QUERY_PARTITION: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "sqs_cluster_query_partition", default=None
)

_MARK = "__sqs_cluster_patched__"


class _TableKeepingCopy:
    """Stands in for the ``copy`` module inside moto's DynamoDB models module."""

    def __init__(self, table_type: type) -> None:
        self._table_type = table_type

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        if isinstance(value, self._table_type):
            return value  # items are backed up one by one by the wrapper instead
        return copy.deepcopy(value, memo)

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


def _fail(version: str, what: str) -> RuntimeError:
    return RuntimeError(
        f"sqs_cluster cannot apply its DynamoDB transaction speed-up to moto {version}: {what}"
    )


def apply_ddb_transaction_patch() -> None:
    """Patch moto's DynamoDB backend in this process (idempotent)."""
    import moto
    import moto.dynamodb.models as models
    from moto.dynamodb.models.table import Table

    version = getattr(moto, "__version__", "?")
    backend = models.DynamoDBBackend
    original = backend.transact_write_items
    if getattr(original, _MARK, False):
        return
    if list(inspect.signature(original).parameters) != ["self", "transact_items"]:
        raise _fail(version, "transact_write_items has a new signature")
    source = inspect.getsource(original)
    if "copy.deepcopy(" not in source or "original_table_state" not in source:
        raise _fail(version, "transact_write_items no longer backs up tables with deepcopy")
    if getattr(models, "copy", None) is not copy:
        raise _fail(version, "moto.dynamodb.models no longer imports copy")
    for name in ("get_item", "delete_item"):
        if not callable(getattr(Table, name, None)):
            raise _fail(version, f"Table.{name} is missing")

    @functools.wraps(original)
    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        backups = _backup_items(self, transact_items)
        try:
            original(self, transact_items)
        except Exception:
            _restore_items(backups)
            raise

    setattr(transact_write_items, _MARK, True)
    setattr(models, "copy", _TableKeepingCopy(Table))  # noqa: B010 - a patch, on purpose
    setattr(backend, "transact_write_items", transact_write_items)  # noqa: B010


def _backup_items(backend: Any, transact_items: list[dict[str, Any]]) -> list[Any]:
    backups = []
    for entry in transact_items:
        _, op = next(iter(entry.items()))
        table_name = op.get("TableName")
        if not table_name or table_name not in backend.tables:
            continue
        table = backend.tables[table_name]
        keys = op.get("Key") or {
            k: op["Item"][k]
            for k in (table.hash_key_attr, table.range_key_attr)
            if k and k in op.get("Item", {})
        }
        try:
            hash_key, range_key = backend.get_keys_value(table, keys)
        except Exception:  # noqa: S112 - invalid keys: moto rejects the transaction itself
            continue
        item = table.get_item(hash_key, range_key)
        backups.append((table, hash_key, range_key, copy.deepcopy(item)))
    return backups


def _restore_items(backups: list[Any]) -> None:
    for table, hash_key, range_key, item in reversed(backups):
        if item is None:
            table.delete_item(hash_key, range_key)
        elif range_key is not None:
            table.items[hash_key][range_key] = item
        else:
            table.items[hash_key] = item


def apply_ddb_query_patch() -> None:
    """Patch moto's ``Table.query``/``Table.all_items`` in this process (idempotent)."""
    import moto
    from moto.dynamodb.models.table import Table

    version = getattr(moto, "__version__", "?")
    query, all_items = Table.query, Table.all_items
    if getattr(query, _MARK, False):
        return
    params = list(inspect.signature(query).parameters)
    if params[:2] != ["self", "hash_key"] or "index_name" not in params:
        raise _fail(version, "Table.query has a new signature")
    if "self.all_items()" not in inspect.getsource(query):
        raise _fail(version, "Table.query no longer lists all_items()")
    if list(inspect.signature(all_items).parameters) != ["self"]:
        raise _fail(version, "Table.all_items has a new signature")

    @functools.wraps(query)
    def patched_query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
        if index_name is not None or hash_key is None:
            return query(self, hash_key, *args, **kwargs)
        token = _QUERY_PARTITION.set(hash_key)
        try:
            return query(self, hash_key, *args, **kwargs)
        finally:
            _QUERY_PARTITION.reset(token)

    @functools.wraps(all_items)
    def patched_all_items(self: Any) -> Any:
        hash_key = _QUERY_PARTITION.get()
        if hash_key is None:
            return all_items(self)
        partition = self.items.get(hash_key)
        if partition is None:
            return []
        items = list(partition.values()) if self.range_key_attr else [partition]
        return sorted(items, key=lambda x: (x.hash_key, x.range_key) if x.range_key else x.hash_key)

    setattr(patched_query, _MARK, True)
    setattr(Table, "query", patched_query)  # noqa: B010 - a patch, on purpose
    setattr(Table, "all_items", patched_all_items)  # noqa: B010
