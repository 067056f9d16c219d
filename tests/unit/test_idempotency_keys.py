"""Idempotent sends, checked without a server: the key a send's idempotency key derives, what
two sends under one key must share, the FIFO deduplication id, and the checks made up front."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from sqs_cluster import Message, RecordKey, ValidationError
from sqs_cluster._messages.outgoing import (
    IDEMPOTENCY_ATTRIBUTE,
    Prepared,
    check_unique_idempotency_keys,
    prepare_message,
    unsent_message,
)

URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/orders"
FIFO = "https://sqs.eu-west-1.amazonaws.com/123456789012/orders.fifo"


def prepared(message: Any, url: str = URL, meta: str | None = None) -> Prepared:
    return prepare_message(0, url, message, meta_text=meta, ttl_seconds=60, field_name="entries[0]")


def test_the_record_key_is_the_documented_hash_of_queue_and_key() -> None:
    key = RecordKey.for_idempotency_key("order-7", URL)
    digest = hashlib.sha256(f"{URL}\norder-7".encode()).hexdigest()
    assert key == RecordKey(f"SQSMessage$idem-{digest}", f"SQSMessage${URL}")
    assert RecordKey.for_idempotency_key("order-7", URL) == key  # deterministic
    assert RecordKey.for_idempotency_key("order-7", FIFO).id != key.id  # per queue
    assert RecordKey.for_idempotency_key("order-8", URL).id != key.id
    assert len(key.id) == 69  # longer than any cluster id (64): never a cluster's key


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        ("", "non-empty string"),
        (7, "non-empty string"),
        (b"k", "non-empty"),
        ("k" * 1025, "1024"),
    ],
)
def test_a_bad_key_names_the_field_and_the_limit(bad: Any, needle: str) -> None:
    with pytest.raises(ValidationError, match=needle) as info:
        RecordKey.for_idempotency_key(bad, URL)
    assert info.value.field == "idempotency_key"
    with pytest.raises(ValidationError) as info:
        prepared(Message("x", idempotency_key=bad))
    assert info.value.field == "entries[0].idempotency_key"


def test_a_message_with_a_key_is_prepared_under_it_with_its_digest() -> None:
    plain = prepared(Message("x"))
    keyed = prepared(Message("x", idempotency_key="k"))
    assert IDEMPOTENCY_ATTRIBUTE not in plain.item and plain.idempotency_key is None
    assert keyed.key == RecordKey.for_idempotency_key("k", URL)
    assert keyed.idempotency_key == "k" and IDEMPOTENCY_ATTRIBUTE in keyed.item
    assert "MessageDeduplicationId" not in keyed.entry  # a standard queue takes none


def digest(message: Message, meta: str | None = None) -> str:
    value: str = prepared(message, meta=meta).item[IDEMPOTENCY_ATTRIBUTE]["S"]
    return value


def test_the_digest_covers_body_meta_attributes_and_group_only() -> None:
    attrs = {"a": {"DataType": "Binary", "BinaryValue": b"\x00\x01"}}
    base = digest(Message({"n": 1}, idempotency_key="k", message_attributes=attrs), '{"m":1}')
    for changed, meta in [
        (Message({"n": 2}, idempotency_key="k", message_attributes=attrs), '{"m":1}'),
        (Message({"n": 1}, idempotency_key="k", message_attributes=attrs), '{"m":2}'),
        (Message({"n": 1}, idempotency_key="k"), '{"m":1}'),
        (
            Message({"n": 1}, idempotency_key="k", message_attributes=attrs, message_group_id="g"),
            '{"m":1}',
        ),
    ]:
        assert digest(changed, meta) != base
    same = Message(
        {"n": 1},
        idempotency_key="k",
        message_attributes=attrs,
        delay_seconds=5,
        message_deduplication_id="d",
    )
    assert digest(same, '{"m":1}') == base


def test_a_fifo_send_without_its_own_id_deduplicates_by_the_key() -> None:
    keyed = prepared(Message("x", message_group_id="g", idempotency_key="k"), FIFO)
    assert keyed.entry["MessageDeduplicationId"] == keyed.key.id.removeprefix("idem-")
    assert len(keyed.entry["MessageDeduplicationId"]) == 64  # SQS allows 128
    own = prepared(
        Message("x", message_group_id="g", idempotency_key="k", message_deduplication_id="mine"),
        FIFO,
    )
    assert own.entry["MessageDeduplicationId"] == "mine"
    assert "MessageDeduplicationId" not in prepared(Message("x", message_group_id="g"), FIFO).entry


def test_an_unsent_entry_keeps_its_key_so_a_resend_is_idempotent_too() -> None:
    keyed = prepared(Message({"n": 1}, idempotency_key="k"), meta='{"m":1}')
    unsent = unsent_message(keyed, "boom")
    assert unsent.message.idempotency_key == "k" and unsent.key == keyed.key
    again = prepare_message(
        0,
        URL,
        unsent.message,
        meta_text=unsent.meta_json,
        ttl_seconds=60,
        field_name="entries[0]",
        key=unsent.key,
        validated=True,
    )
    assert again.item[IDEMPOTENCY_ATTRIBUTE] == keyed.item[IDEMPOTENCY_ATTRIBUTE]


def test_one_key_twice_in_a_batch_is_refused() -> None:
    check_unique_idempotency_keys([Message("a", idempotency_key="a"), "b", Message("b")])
    with pytest.raises(ValidationError, match=r"also the key of entries\[0\]") as info:
        check_unique_idempotency_keys(
            [Message("a", idempotency_key="k"), "b", Message("c", idempotency_key="k")]
        )
    assert info.value.field == "entries[2].idempotency_key"
