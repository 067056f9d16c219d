"""The local AWS server of the end-to-end benchmark: the library's server, plus a fast Query.

moto 5.2's ``Table.query`` on a base table walks ``Table.all_items()``, which *sorts every item
of the table* on each call, so one Query costs O(n log n) in the table size, where DynamoDB
reads one partition. Fan-in reads the cluster's partition (three items) once per task, so with
10,000 task records in the table the server spent about three quarters of its time sorting.

:func:`apply_query_patch` makes a base-table Query with a hash key look at that hash key's
partition only; moto's own code still filters, sorts and pages the result, so the answer is
the same. Index queries, scans and everything else are unchanged. Run as a script, this module
applies the patch and then runs ``python -m sqs_cluster._moto_server`` with the same arguments.
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading
from typing import Any

_EXPECTED = [
    "self",
    "hash_key",
    "range_comparison",
    "range_objs",
    "limit",
    "exclusive_start_key",
    "scan_index_forward",
    "projection_expressions",
    "index_name",
]
_INDEX_NAME = _EXPECTED.index("index_name") - 2  # its position in *args after self, hash_key


def apply_query_patch() -> None:
    """Patch moto's ``Table.query`` and ``Table.all_items`` in this process."""
    import moto
    from moto.dynamodb.models.table import Table

    query, all_items = Table.query, Table.all_items
    params = list(inspect.signature(query).parameters)
    if params[: len(_EXPECTED)] != _EXPECTED or "self.all_items()" not in inspect.getsource(query):
        raise RuntimeError(f"moto {moto.__version__}: Table.query changed; patch not applied")
    scope = threading.local()

    @functools.wraps(all_items)
    def partition_items(self: Any) -> Any:
        if getattr(scope, "table_id", None) == id(self):
            found = self.items.get(scope.hash_key)
            if found is None:
                return []
            return list(found.values()) if self.range_key_attr else [found]
        return all_items(self)

    @functools.wraps(query)
    def partition_query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index = kwargs.get("index_name", args[_INDEX_NAME] if len(args) > _INDEX_NAME else None)
        if index or hash_key is None:
            return query(self, hash_key, *args, **kwargs)
        scope.table_id, scope.hash_key = id(self), hash_key
        try:
            return query(self, hash_key, *args, **kwargs)
        finally:
            scope.table_id = scope.hash_key = None

    Table.all_items = partition_items  # type: ignore[method-assign]
    Table.query = partition_query  # type: ignore[method-assign]


def main() -> int:
    """Patch, then serve exactly as ``python -m sqs_cluster._moto_server`` does."""
    apply_query_patch()
    from sqs_cluster._moto_server import main as serve

    return serve(sys.argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
