"""The local server's opt-in per-item write budget, over HTTP with boto3 (docs/local.md).

A budget of 5 WCU a second per item (burst 5). botocore's own retries are off, so each call is
one request and its answer is the server's. Nothing here asserts timing beyond what a token
bucket guarantees however slow the machine: the burst is there at the start, at most
``burst + rate * elapsed`` units go through, and a bucket left alone for a second is full.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from sqs_cluster.local import LocalAWS
from sqs_cluster.local.budget import item_size, write_units

REGION = "us-east-1"
BUDGET = 5.0
ATTEMPTS = 20
"""Tries at a race against the refill (a write lands after the hot item refilled)."""
HOT_KEY_MESSAGE = "check if you have a hot key"
ON_DEMAND_THROTTLE = "ThrottlingException"


def client(endpoint: str) -> Any:
    """A DynamoDB client that sends each call once (botocore's retries off)."""
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}),
    )


@pytest.fixture(scope="module")
def budget_aws() -> Iterator[LocalAWS]:
    server = LocalAWS(item_write_budget=BUDGET)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def ddb(budget_aws: LocalAWS) -> Any:
    return client(budget_aws.endpoint_url)


def new_table(ddb: Any, billing: str = "PAY_PER_REQUEST") -> str:
    name = f"budget-{uuid.uuid4().hex[:12]}"
    extra: dict[str, Any] = {"BillingMode": billing}
    if billing == "PROVISIONED":
        extra["ProvisionedThroughput"] = {"ReadCapacityUnits": 100, "WriteCapacityUnits": 100}
    ddb.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "rk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "rk", "AttributeType": "S"},
        ],
        **extra,
    )
    return name


def key(name: str | None = None) -> dict[str, Any]:
    return {"pk": {"S": name or uuid.uuid4().hex}, "rk": {"S": "r"}}


def add_one(ddb: Any, table: str, item: dict[str, Any], code: str = ON_DEMAND_THROTTLE) -> bool:
    """ADD 1 to the item's counter: True if answered OK, False if throttled with ``code``."""
    try:
        ddb.update_item(
            TableName=table,
            Key=item,
            UpdateExpression="ADD n :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
        )
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == code, exc.response
        return False
    return True


def hammer(ddb: Any, table: str, item: dict[str, Any], code: str = ON_DEMAND_THROTTLE) -> int:
    """ADD 1 until the first throttle; returns how many writes went through before it."""
    deadline = time.monotonic() + 60
    successes = 0
    while add_one(ddb, table, item, code):
        successes += 1
        assert time.monotonic() < deadline, "never throttled"
    return successes


def counter(ddb: Any, table: str, item: dict[str, Any]) -> int | None:
    found = ddb.get_item(TableName=table, Key=item, ConsistentRead=True).get("Item")
    return None if found is None else int(found.get("n", {"N": "0"})["N"])


def table_arn(ddb: Any, table: str) -> str:
    return str(ddb.describe_table(TableName=table)["Table"]["TableArn"])


def stats(endpoint: str) -> dict[str, Any]:
    """``GET /_budget/stats`` as a plain HTTP client sends it (no proxy)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{endpoint}/_budget/stats", timeout=30) as response:
        data: dict[str, Any] = json.load(response)
    return data


# -- (a) one hot item -----------------------------------------------------------------------------


def test_a_hot_item_is_throttled_after_its_burst_while_other_items_take_writes(ddb: Any) -> None:
    table, hot = new_table(ddb), key()
    start = time.monotonic()
    deadline = start + 60
    successes, error = 0, None
    while error is None:
        try:
            ddb.update_item(
                TableName=table,
                Key=hot,
                UpdateExpression="ADD n :one",
                ExpressionAttributeValues={":one": {"N": "1"}},
            )
            successes += 1
        except ClientError as exc:
            error = exc
        assert time.monotonic() < deadline, "never throttled"
    elapsed = time.monotonic() - start

    # DynamoDB's answer for an on-demand table's hot key, parsed by botocore as from AWS
    assert error.response["Error"]["Code"] == "ThrottlingException"
    assert HOT_KEY_MESSAGE in error.response["Error"]["Message"]
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    response: Any = error.response  # botocore's TypedDict does not list the reasons
    assert response["throttlingReasons"] == [
        {"reason": "TableWriteKeyRangeThroughputExceeded", "resource": table_arn(ddb, table)}
    ]
    # the whole burst first, then no more than the bucket can have refilled
    assert BUDGET <= successes <= BUDGET + BUDGET * elapsed + 1

    for _ in range(3):  # other items have budgets of their own
        assert add_one(ddb, table, key())
    more = [add_one(ddb, table, hot) for _ in range(30)]  # some through, some throttled
    # a throttled write applied nothing: the counter is exactly the writes answered OK
    assert counter(ddb, table, hot) == successes + sum(more)


def test_a_provisioned_tables_hot_item_gets_provisioned_throughput_exceeded(ddb: Any) -> None:
    table, hot = new_table(ddb, "PROVISIONED"), key()
    code = "ProvisionedThroughputExceededException"
    successes = hammer(ddb, table, hot, code)
    assert successes >= BUDGET
    try:
        for _ in range(100):
            ddb.put_item(TableName=table, Item={**hot, "n": {"N": "-1"}})
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == code
        assert exc.response["Error"]["Message"].startswith(
            "The level of configured provisioned throughput for the table was exceeded."
        )
        response: Any = exc.response
        assert response["ThrottlingReasons"][0]["resource"] == table_arn(ddb, table)
    else:
        pytest.fail("PutItem on the hot item was never throttled")


# -- (b) transactions -----------------------------------------------------------------------------


def test_b_a_transaction_touching_a_hot_item_is_cancelled_and_applies_nothing(ddb: Any) -> None:
    table, hot = new_table(ddb), key()
    for _ in range(ATTEMPTS):
        hammer(ddb, table, hot)
        before = counter(ddb, table, hot)
        put, update = key(), key()
        try:
            ddb.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": table, "Item": {**put, "n": {"N": "7"}}}},
                    {
                        "Update": {
                            "TableName": table,
                            "Key": hot,
                            "UpdateExpression": "ADD n :one",
                            "ExpressionAttributeValues": {":one": {"N": "1"}},
                        }
                    },
                    {
                        "Update": {
                            "TableName": table,
                            "Key": update,
                            "UpdateExpression": "ADD n :one",
                            "ExpressionAttributeValues": {":one": {"N": "1"}},
                        }
                    },
                ]
            )
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "TransactionCanceledException"
            reasons = exc.response["CancellationReasons"]
            assert [r["Code"] for r in reasons] == ["None", "ThrottlingError", "None"]
            assert HOT_KEY_MESSAGE in reasons[1]["Message"]
            assert "[None, ThrottlingError, None]" in exc.response["Error"]["Message"]
            assert counter(ddb, table, put) is None
            assert counter(ddb, table, update) is None
            assert counter(ddb, table, hot) == before
            return
        # the hot item refilled before the transaction arrived (a slow machine): again
    pytest.fail(f"no transaction was throttled in {ATTEMPTS} attempts")


def test_b_a_transactional_write_costs_twice(ddb: Any) -> None:
    table, hot = new_table(ddb), key()
    action = {
        "Update": {
            "TableName": table,
            "Key": hot,
            "UpdateExpression": "ADD n :one",
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        }
    }
    start, successes = time.monotonic(), 0
    while True:
        try:
            ddb.transact_write_items(TransactItems=[action])
        except ClientError as exc:
            assert exc.response["CancellationReasons"] == [
                {
                    "Code": "ThrottlingError",
                    "Message": exc.response["CancellationReasons"][0]["Message"],
                }
            ]
            break
        successes += 1
        assert time.monotonic() < start + 60, "never throttled"
    elapsed = time.monotonic() - start
    assert 2 <= successes <= (BUDGET + BUDGET * elapsed) / 2 + 1
    assert counter(ddb, table, hot) == successes


# -- (c) batches ----------------------------------------------------------------------------------


def test_c_a_batch_returns_the_hot_item_unprocessed_and_applies_the_rest(ddb: Any) -> None:
    table, hot = new_table(ddb), key()
    for _ in range(ATTEMPTS):
        hammer(ddb, table, hot)
        before = counter(ddb, table, hot)
        cold = [key(), key()]
        hot_entry = {"PutRequest": {"Item": {**hot, "n": {"N": "-1"}}}}
        entries = [{"PutRequest": {"Item": {**cold[0], "n": {"N": "3"}}}}, hot_entry]
        entries.append({"PutRequest": {"Item": {**cold[1], "n": {"N": "4"}}}})
        answer = ddb.batch_write_item(RequestItems={table: entries})
        if not answer["UnprocessedItems"]:
            continue  # the hot item refilled before the batch arrived: again
        assert answer["UnprocessedItems"] == {table: [hot_entry]}
        assert counter(ddb, table, hot) == before
        assert [counter(ddb, table, k) for k in cold] == [3, 4]
        return
    pytest.fail(f"no batch entry was throttled in {ATTEMPTS} attempts")


def test_c_a_batch_of_hot_items_only_is_throttled_as_a_whole(ddb: Any) -> None:
    table, hot = new_table(ddb), key()
    for _ in range(ATTEMPTS):
        hammer(ddb, table, hot)
        before = counter(ddb, table, hot)
        entry = {"PutRequest": {"Item": {**hot, "n": {"N": "-1"}}}}
        try:
            ddb.batch_write_item(RequestItems={table: [entry]})
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "ThrottlingException"
            assert counter(ddb, table, hot) == before
            return
    pytest.fail(f"no batch was throttled in {ATTEMPTS} attempts")


# -- (d) no budget --------------------------------------------------------------------------------


def test_d_without_a_budget_nothing_is_throttled(endpoint: str) -> None:
    ddb = client(endpoint)  # the session's server, started without a budget
    table, hot = new_table(ddb), key()
    for _ in range(300):
        assert add_one(ddb, table, hot)
    assert counter(ddb, table, hot) == 300
    assert stats(endpoint) == {
        "item_write_budget": None,
        "throttled": {},
        "unprocessed_items": 0,
        "consumed_wcu": {},
        "items": 0,
        "by_item_top": [],
    }


# -- (e) refill -----------------------------------------------------------------------------------


def test_e_the_budget_refills(ddb: Any) -> None:
    table, hot = new_table(ddb), key()
    hammer(ddb, table, hot)
    time.sleep(1.1)  # a second (and more) refills the whole burst
    assert hammer(ddb, table, hot) >= BUDGET


# -- the stats endpoint and the write units -------------------------------------------------------


def test_stats_count_units_by_item_size_and_reset_clears_them() -> None:
    with LocalAWS(item_write_budget=BUDGET) as aws:
        ddb = client(aws.endpoint_url)
        table, hot, big = new_table(ddb), key("hot"), key("big")
        successes = hammer(ddb, table, hot)
        blob = {"S": "x" * 2500}  # with its names, just under 2.5 KB: 3 units a write
        ddb.put_item(TableName=table, Item={**big, "blob": blob})
        time.sleep(1.1)  # the put took 3 of the 5: a second later the bucket is full again
        ddb.delete_item(TableName=table, Key=big)  # billed on the item before: 3 units
        found = stats(aws.endpoint_url)
        hot_json = json.dumps(hot, sort_keys=True, separators=(",", ":"))
        big_json = json.dumps(big, sort_keys=True, separators=(",", ":"))
        assert found == {
            "item_write_budget": BUDGET,
            "throttled": {"UpdateItem": 1},
            "unprocessed_items": 0,
            "consumed_wcu": {"UpdateItem": successes, "PutItem": 3.0, "DeleteItem": 3.0},
            "items": 2,
            "by_item_top": sorted(
                [[table, hot_json, float(successes), 1], [table, big_json, 6.0, 0]],
                key=lambda row: (row[2], row[3]),
                reverse=True,
            ),
        }
        assert aws.budget_stats() == found
        aws.reset()
        assert stats(aws.endpoint_url)["by_item_top"] == []


def test_item_size_follows_dynamodbs_rules() -> None:
    assert item_size({"pk": {"S": "abc"}}) == 2 + 3
    assert item_size({"n": {"N": "12345"}}) == 1 + 3 + 1  # 5 significant digits: 3 bytes + 1
    assert item_size({"b": {"B": "AAEC"}}) == 1 + 3  # raw bytes, not base64
    assert item_size({"f": {"BOOL": True}, "z": {"NULL": True}}) == 2 + 2
    assert item_size({"m": {"M": {"ab": {"S": "c"}}}}) == 1 + 3 + (1 + 2 + 1)
    assert item_size({"l": {"L": [{"S": "a"}, {"N": "1"}]}}) == 1 + 3 + (1 + 1) + (1 + 2)
    assert item_size({"s": {"SS": ["a", "bc"]}}) == 1 + 3
    assert [write_units(n) for n in (0, 1, 1024, 1025, 4096)] == [1, 1, 1, 2, 4]


def test_the_budget_must_be_positive() -> None:
    for bad in (0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="item_write_budget"):
            LocalAWS(item_write_budget=bad)
