"""Size limits of what a record stores, checked before anything is written.

A record keeps its body, ``meta`` and own fields as JSON text in one DynamoDB item, whose
limit is 400 KB; past it DynamoDB rejects the write with an error that names no field.
"""

from __future__ import annotations

from .._errors import ValidationError

MAX_SHARDS = 64
"""The most counter shards a cluster counts into (``_clusters.shards``): a task message
naming more is malformed."""
MAX_META_BYTES = 300_000
"""A record's ``meta`` as JSON text."""
MAX_RECORD_DATA_BYTES = 380_000
"""Body, meta and own fields of one record: DynamoDB's 400 KB item limit (409,600 bytes) less
29,600 bytes kept for the record's other attributes (keys, status, timestamps, error entries)."""

MAX_RESULT_BYTES = 300_000
"""A handler's result as JSON text, stored on its record at completion: a larger one is dropped
(logged, and the record's ``resultDropped`` says its size). A smaller one that still does not
fit beside a large body and meta is dropped the same way when DynamoDB refuses the item."""

ERRORS_KEPT = 5
"""Entries a record's ``error`` list keeps: the first failure and the latest four. Each
failure past them drops the oldest of the latest (``errorsDropped`` counts them), so a record
never outgrows its item and a final failure can always be written."""
MAX_ERROR_MESSAGE_BYTES = 2_000
"""An error entry's message, in UTF-8 bytes: a longer one is cut (at a character boundary)."""
MAX_TRACEBACK_BYTES = 3_000
"""An error entry's traceback, in UTF-8 bytes: a longer one keeps its end (the innermost frames
and the exception line), so ``ERRORS_KEPT`` full entries stay within the room kept for them."""


def truncate_utf8(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8, never inside a character."""
    data = text.encode()
    return text if len(data) <= limit else data[:limit].decode("utf-8", "ignore")


def tail_utf8(text: str, limit: int) -> str:
    """The end of ``text``, at most ``limit`` bytes of UTF-8, never inside a character."""
    data = text.encode()
    return text if len(data) <= limit else data[-limit:].decode("utf-8", "ignore")


def check_meta_size(meta_text: str | None, field_name: str = "meta") -> int:
    """The size of a record's ``meta`` text in bytes, or ValidationError above the limit."""
    size = 0 if meta_text is None else len(meta_text.encode())
    if size > MAX_META_BYTES:
        raise ValidationError(
            field_name, f"is {size} bytes as JSON; the limit is {MAX_META_BYTES} bytes"
        )
    return size


def check_record_data(
    total: int, field_name: str, parts: str = "body, meta and own fields"
) -> None:
    """ValidationError when a record's body, meta and own fields together exceed the limit."""
    if total > MAX_RECORD_DATA_BYTES:
        raise ValidationError(
            field_name,
            f"the record would hold {total} bytes of {parts}; a record holds at most "
            f"{MAX_RECORD_DATA_BYTES} bytes of {parts} (DynamoDB's 400 KB item limit, less "
            "room for the record's own attributes)",
        )
