from __future__ import annotations

import json
from typing import Any

import pytest

from sqs_cluster import RecordKey, ValidationError
from sqs_cluster._records.codec import dumps, from_item, to_attr

VALUES: list[Any] = [
    1.0,
    0.1,
    -2.5e-10,
    1e300,
    {"a": [1, 2.0, {"b": None, "c": True}], "d": "é"},
    [],
    "",
    12345678901234567890,
]


@pytest.mark.parametrize("value", VALUES)
def test_json_text_round_trips_exactly(value: Any) -> None:
    decoded = json.loads(dumps(value))
    assert decoded == value
    assert type(decoded) is type(value)


def test_native_items_accept_floats() -> None:
    item = {k: to_attr(v) for k, v in {"n": 0.5, "l": [1.25, 2], "m": {"x": 3.0}}.items()}
    assert from_item(item) == {"n": 0.5, "l": [1.25, 2], "m": {"x": 3}}


@pytest.mark.parametrize(
    "bad",
    # a stable id for object(): its repr has an address, which differs between xdist workers
    [{1, 2}, b"bytes", float("nan"), float("inf"), pytest.param(object(), id="object()")],
    ids=repr,
)
def test_non_json_values_are_rejected_naming_the_field(bad: Any) -> None:
    with pytest.raises(ValidationError, match=r"^meta:"):
        dumps(bad, field="meta")


def test_very_deep_nesting_is_rejected() -> None:
    value: Any = []
    for _ in range(200):
        value = [value]
    with pytest.raises(ValidationError, match="nested deeper"):
        dumps(value, field="body")


def test_record_key_coercion() -> None:
    key = RecordKey.for_message("abc", "https://q")
    assert key.to_dict() == {"pKey": "SQSMessage$abc", "rKey": "SQSMessage$https://q"}
    assert RecordKey.coerce(key.to_dict()) == key
    assert RecordKey.coerce((key.p_key, key.r_key)) == key
    assert key.id == "abc"
    with pytest.raises(ValidationError, match=r"^key: expected a RecordKey"):
        RecordKey.coerce({"pKey": 1})
    with pytest.raises(ValidationError, match=r"^key: .*outside sqs-cluster's key space"):
        RecordKey.coerce({"pKey": "users#1", "rKey": "SQSMessage$x"})
