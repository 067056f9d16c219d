"""The code in docs/*.md: every block is a file under docs/examples/, and every file runs here."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
import pytest
from docs.examples import (
    batch_deadline,
    batch_entire_failure,
    batch_hooks,
    batch_models,
    batch_retry,
    config_from_env,
    idempotent_send,
    lambda_batch,
    large_messages,
    local_async,
    local_budget,
    local_sync,
    provision,
    raw_item,
    read_record,
    retry_partial_send,
    send_messages,
    typed_globals,
    update_record,
    worker_claim,
)

from sqs_cluster import (
    ENV_VARS,
    BatchFailedError,
    ClaimOutcome,
    ClusterRecord,
    Config,
    MessageClient,
    MessageInProgressError,
    RecordKey,
    Status,
    StatusCode,
)

from .conftest import REGION, Queue, receive_event, unique
from .docblocks import DOCS, check_quotes_exactly, code_blocks
from .faults import FaultyClient, fail_entries_once

EXAMPLES = DOCS / "examples"
PAGES = ("records.md", "configuration.md", "local.md", "messages.md")


# -- the markdown quotes the files exactly -------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
def test_every_code_block_is_an_example_file_quoted_exactly(page: str) -> None:
    assert code_blocks(DOCS / page), f"{page} has no code blocks"
    check_quotes_exactly(DOCS / page)


def test_every_example_file_is_quoted() -> None:
    quoted = {path for page in DOCS.rglob("*.md") for path, _, _ in code_blocks(page) if path}
    quoted = {path.removeprefix("../") for path in quoted}  # guides/ quote ../examples/...
    files = {f"examples/{p.name}" for p in EXAMPLES.iterdir() if p.suffix in {".py", ".sh"}} - {
        "examples/__init__.py"
    }
    assert files - quoted == set(), "example files no page quotes"


def test_configuration_md_lists_every_env_var_and_field() -> None:
    text = (DOCS / "configuration.md").read_text()
    for field, var in ENV_VARS.items():
        assert f"`{var}`" in text and f"`{field}`" in text
    for field in Config.__dataclass_fields__:
        assert f"`{field}`" in text


# -- sending ---------------------------------------------------------------------------------


async def test_send_orders(base_config: Config, queue: Queue, client: MessageClient) -> None:
    keys = await send_messages.send_orders(base_config, queue.url)
    assert len(keys) == 100 and len(set(keys)) == 100
    records = await client.get_message_records(keys)
    assert [json.loads(r.body or "")["id"] for r in records if r] == list(range(1, 101))
    assert all(r is not None and r.meta == {"tenant": "acme"} for r in records)


async def test_retry_partial_send(
    base_config: Config, queue: Queue, sqs: Any, real: dict[str, Any]
) -> None:
    faulty = FaultyClient(real["sqs"], send_message_batch=fail_entries_once(3, sender_fault=True))
    clients = {**real, "sqs": faulty}
    async with MessageClient(base_config, clients=clients) as client:
        keys = await retry_partial_send.send_all(client, queue.url, list(range(25)))
        records = await client.get_message_records(keys)
    assert faulty.calls["send_message_batch"] == 4  # 3 batches, then 1 for the 3 failed entries
    assert [json.loads(r.body or "") for r in records if r] == list(range(25))
    attrs = sqs.get_queue_attributes(QueueUrl=queue.url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "25"  # each body sent exactly once


async def test_idempotent_send(
    base_config: Config, queue: Queue, sqs: Any, real: dict[str, Any]
) -> None:
    order = {"id": 7, "quantity": 2}
    async with MessageClient(base_config) as client:
        first = await idempotent_send.publish_order(client, queue.url, order)
        assert await idempotent_send.publish_order(client, queue.url, order) == first
    orders = [order if i == 7 else {"id": i, "quantity": 1} for i in range(5, 20)]
    faulty = FaultyClient(real["sqs"], send_message_batch=fail_entries_once(3, sender_fault=True))
    async with MessageClient(base_config, clients={**real, "sqs": faulty}) as client:
        keys = await idempotent_send.publish_export(client, queue.url, orders)
    assert keys[2] == first and len(keys) == len(set(keys)) == 15
    assert 2 in keys.already_sent and len(keys.already_sent) == 12  # all but the 3 refused
    assert faulty.calls["send_message_batch"] == 3  # 14 entries in 2 calls, then the 3 again
    bodies = Counter(r["body"] for r in receive_event(sqs, queue.url, max_messages=100)["Records"])
    assert bodies == {json.dumps(o, separators=(",", ":")): 1 for o in orders}


# -- consuming -------------------------------------------------------------------------------


async def event_of(client: MessageClient, sqs: Any, queue_url: str, bodies: list[Any]) -> Any:
    await client.send_message_batch(queue_url, bodies)
    return receive_event(sqs, queue_url, max_messages=len(bodies))


async def test_lambda_batch_process(
    base_config: Config, client: MessageClient, queue: Queue, sqs: Any
) -> None:
    orders = [{"id": i, "quantity": 0 if i == 2 else 1} for i in range(4)]
    event = await event_of(client, sqs, queue.url, orders)
    response = await lambda_batch.process(base_config, event)
    bad = [r["messageId"] for r in event["Records"] if json.loads(r["body"])["id"] == 2]
    assert response == {"batchItemFailures": [{"itemIdentifier": bad[0]}]}
    again = await lambda_batch.process(base_config, event)  # a redelivery of the whole batch
    assert again == response  # the complete ones are skipped, the bad one fails again
    record = await client.read_sqs_record(
        next(r for r in event["Records"] if r["messageId"] == bad[0])
    ).get_message_record(consistent_read=True)
    assert [e.type for e in record.errors] == ["ValueError", "ValueError"]


def test_lambda_handler_entry_point(
    base_config: Config, queue: Queue, sqs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqs.send_message(QueueUrl=queue.url, MessageBody=json.dumps({"id": 1, "quantity": 3}))
    event = receive_event(sqs, queue.url)
    monkeypatch.setenv(ENV_VARS["table"], base_config.table)
    monkeypatch.setenv(ENV_VARS["region"], REGION)
    monkeypatch.setenv(ENV_VARS["endpoint_url"], base_config.endpoint_url or "")
    assert lambda_batch.lambda_handler(event, None) == {"batchItemFailures": []}


async def test_worker_claim(client: MessageClient, queue: Queue, sqs: Any) -> None:
    event = await event_of(client, sqs, queue.url, [{"id": 1, "amount": 5}])
    (record,) = event["Records"]
    assert await worker_claim.handle_record(client, record) == "processed"
    assert await worker_claim.handle_record(client, record) == "already complete"
    assert await worker_claim.handle_with_claim(client, record) is ClaimOutcome.COMPLETE

    event = await event_of(client, sqs, queue.url, [{"id": 2, "amount": 5}])
    (busy,) = event["Records"]
    assert (await client.claim(busy)).outcome is ClaimOutcome.CLAIMED  # another delivery
    assert await worker_claim.handle_record(client, busy) == "in progress elsewhere"
    assert await worker_claim.handle_with_claim(client, busy) is ClaimOutcome.IN_PROGRESS
    with pytest.raises(MessageInProgressError):
        await client.is_complete(busy)

    event = await event_of(client, sqs, queue.url, [{"id": 3, "amount": -1}])
    (bad,) = event["Records"]
    with pytest.raises(ValueError, match="negative amount"):
        await worker_claim.handle_record(client, bad)
    with pytest.raises(ValueError, match="negative amount"):
        await worker_claim.handle_with_claim(client, bad)  # the lease was released
    stored = await client.read_sqs_record(bad).get_message_record(consistent_read=True)
    assert stored.status is Status.ERROR and stored.consumption_count == 2
    assert [(e.type, e.receive_count) for e in stored.errors] == [("ValueError", 1)] * 2


async def test_read_record(client: MessageClient, queue: Queue, sqs: Any) -> None:
    key = await client.send_message(queue.url, {"n": 1}, meta={"tenant": "acme"})
    sqs.send_message(QueueUrl=queue.url, MessageBody="not JSON")
    event = receive_event(sqs, queue.url)
    infos = sorted(
        [await read_record.describe(client, r) for r in event["Records"]],
        key=lambda i: i["tracked"],
    )
    untracked, tracked = infos
    assert tracked["key"] == key.to_dict() and tracked["body"] == {"n": 1}
    assert tracked["meta"] == {"tenant": "acme"} and tracked["status"] == "PRE FLIGHT"
    assert tracked["receive_count"] == 1
    assert untracked["body"] == "not JSON" and "meta" not in untracked
    assert untracked["key"] == {
        "pKey": f"SQSMessage${untracked['message_id']}",
        "rKey": f"SQSMessage${queue.url}",
    }


async def test_update_record(client: MessageClient, queue: Queue) -> None:
    key = await client.send_message(queue.url, "x", meta={"reviews": 1})
    record = await update_record.review(client, key)
    assert record.meta == {"reviews": 2} and record.user == {"reviewer": "billing"}
    assert record.revision == 2


# -- the wire format of docs/records.md ---------------------------------------------------------


def types_of(item: dict[str, Any]) -> dict[str, str]:
    return {name: next(iter(value)) for name, value in item.items()}


FRESH = {
    "pKey": "S",
    "rKey": "S",
    "type": "S",
    "status": "S",
    "statusCode": "N",
    "startedAt": "S",
    "expiresAt": "N",
    "body": "S",
    "meta": "S",
}
"""A record as sent: only what cannot be derived from its key (records.md)."""
TOUCHED = {**FRESH, "updatedAt": "S", "consumptionCount": "N"}
"""... and once claimed."""


async def test_wire_format(
    base_config: Config, client: MessageClient, queue: Queue, sqs: Any
) -> None:
    key = await client.send_message(queue.url, {"id": 7, "ratio": 1.0}, meta={"ratio": 1.0})
    sent = raw_item.read_raw(base_config, key)
    assert types_of(sent) == FRESH
    assert sent["pKey"]["S"] == f"SQSMessage${key.id}"
    assert re.fullmatch(r"[0-9a-f]{32}", key.id)
    assert sent["rKey"]["S"] == f"SQSMessage${queue.url}"
    assert sent["meta"]["S"] == '{"ratio":1.0}' and sent["body"]["S"] == '{"id":7,"ratio":1.0}'
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", sent["startedAt"]["S"])
    expires = int(sent["expiresAt"]["N"])
    assert abs(expires - (time.time() + base_config.record_ttl_seconds)) < 60
    decoded = raw_item.decode(sent)
    assert decoded["status"] == "PRE FLIGHT" and decoded["statusCode"] == 0
    assert decoded["meta"] == {"ratio": 1.0} and decoded["consumptionCount"] == 0
    assert (decoded["id"], decoded["url"]) == (key.id, queue.url)
    fresh = await client.get_message_record(key, consistent_read=True)
    assert (fresh.url, fresh.key.id, fresh.consumption_count) == (queue.url, key.id, 0)

    (record,) = receive_event(sqs, queue.url)["Records"]
    attribute = json.loads(record["messageAttributes"]["sqsClusterKey"]["stringValue"])
    assert attribute == key.to_dict()

    await client.is_complete(record)
    claimed = raw_item.read_raw(base_config, key)
    assert types_of(claimed) == {
        **TOUCHED,
        "leaseUntilMs": "N",
        "leaseOwner": "S",
        "claimToken": "S",
    }
    lease = int(claimed["leaseUntilMs"]["N"])
    # records.md: lease_seconds (300) capped by the queue's visibility timeout (30 s) less a tenth
    assert base_config.lease_seconds == 300 and queue_visibility(base_config, queue.url) == 30
    assert abs(lease - (time.time() + 27) * 1000) < 5_000
    assert raw_item.decode(claimed)["statusCode"] == StatusCode.IN_PROGRESS

    await client.mark_failed(record, ValueError("out of stock"))
    failed = raw_item.read_raw(base_config, key)
    assert types_of(failed) == {**TOUCHED, "error": "L", "settleToken": "S"}
    (entry,) = failed["error"]["L"]
    assert types_of(entry["M"]) == {"type": "S", "message": "S", "at": "S", "receiveCount": "N"}
    assert raw_item.decode(failed)["errors"] == [
        {
            "type": "ValueError",
            "message": "out of stock",
            "at": entry["M"]["at"]["S"],
            "receiveCount": "1",
        }
    ]

    await client.is_complete(record)
    await client.mark_complete(record)
    done = raw_item.read_raw(base_config, key)
    assert types_of(done) == {**TOUCHED, "error": "L", "completedAt": "S", "settleToken": "S"}
    assert re.fullmatch(r"[0-9a-f]{16}", done["settleToken"]["S"])
    assert raw_item.decode(done)["statusCode"] == 200
    assert raw_item.decode(done)["consumptionCount"] == 2
    retained = int(done["expiresAt"]["N"]) - time.time()
    assert abs(retained - base_config.completed_retention_seconds) < 60

    await client.update_message_record(key, {"reviewer": "me"})
    updated = raw_item.read_raw(base_config, key)
    assert types_of(updated) == {
        **TOUCHED, "error": "L", "completedAt": "S", "settleToken": "S", "user": "S", "rev": "N",
        "writeTokens": "S",
    }  # fmt: skip
    assert updated["user"]["S"] == '{"reviewer":"me"}' and updated["rev"]["N"] == "1"
    assert re.fullmatch(r"[0-9a-f]{16}", updated["writeTokens"]["S"])


async def test_untracked_message_record(
    base_config: Config, client: MessageClient, queue: Queue, sqs: Any
) -> None:
    sqs.send_message(QueueUrl=queue.url, MessageBody="plain")
    (record,) = receive_event(sqs, queue.url)["Records"]
    await client.is_complete(record)
    key = RecordKey.for_message(record["messageId"], queue.url)
    item = raw_item.read_raw(base_config, key)
    assert types_of(item) == {  # created by the claim: what a sender would have written
        **{k: v for k, v in TOUCHED.items() if k != "meta"},
        "id": "S",
        "url": "S",
        "leaseUntilMs": "N",
        "leaseOwner": "S",
        "claimToken": "S",
    }
    assert item["id"]["S"] == record["messageId"] and item["body"]["S"] == "plain"
    assert item["consumptionCount"]["N"] == "1"


# -- configuration and provisioning ----------------------------------------------------------


def test_config_examples(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ENV_VARS.values():
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SQS_CLUSTER_TABLE", "orders-records")
    monkeypatch.setenv("SQS_CLUSTER_DELETE_COMPLETED", "yes")
    monkeypatch.setenv("SQS_CLUSTER_LEASE_SECONDS", "60")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://localhost:4566")
    config = config_from_env.from_environment()
    assert (config.table, config.region, config.endpoint_url) == (
        "orders-records",
        "eu-west-1",
        "http://localhost:4566",
    )
    assert config.delete_completed is True and config.lease_seconds == 300  # keywords win
    explicit = config_from_env.explicit()
    assert (explicit.max_concurrency, explicit.lease_seconds, explicit.bucket) == (
        64,
        300,
        "orders-globals",
    )


async def test_provision(base_config: Config, ddb: Any, sqs: Any) -> None:
    config = base_config.with_changes(table=unique("prov"), bucket=unique("prov"))
    resources = await provision.provision(config, unique("orders"))
    assert resources.queue_url is not None and resources.dlq_url is not None
    check_resources(config.table, config.bucket, resources.queue_url, resources.dlq_url, ddb, sqs)
    attrs = sqs.get_queue_attributes(QueueUrl=resources.queue_url, AttributeNames=["All"])
    assert attrs["Attributes"]["VisibilityTimeout"] == str(config.lease_seconds + 60)
    again = await provision.provision(config, resources.queue_url.rsplit("/", 1)[1])
    assert again == resources  # idempotent


def check_resources(
    table: str, bucket: str | None, queue_url: str, dlq_url: str, ddb: Any, sqs: Any
) -> None:
    described = ddb.describe_table(TableName=table)["Table"]
    assert described["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert {k["AttributeName"]: k["KeyType"] for k in described["KeySchema"]} == {
        "pKey": "HASH",
        "rKey": "RANGE",
    }
    ttl = ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expiresAt" and ttl["TimeToLiveStatus"] == "ENABLED"
    s3 = boto3.client("s3", endpoint_url=sqs.meta.endpoint_url, region_name=REGION)
    rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert [r["Expiration"]["Days"] for r in rules] == [30]
    encryption = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
    assert encryption["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values())
    policy = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy"])
    redrive = json.loads(policy["Attributes"]["RedrivePolicy"])
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])
    assert redrive["deadLetterTargetArn"] == dlq_arn["Attributes"]["QueueArn"]
    assert int(redrive["maxReceiveCount"]) == 5


def test_init_script(endpoint: str, ddb: Any, sqs: Any) -> None:
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": REGION,
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    for _ in range(2):  # safe to run again
        done = subprocess.run(
            ["bash", str(EXAMPLES / "init.sh")],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
    lines = dict(line.split(":", 1) for line in done.stdout.splitlines())
    queue_url, dlq_url = lines["queue"].strip(), lines["dlq"].strip()
    assert queue_url.endswith("/orders") and dlq_url.endswith("/orders-dlq")
    check_resources("orders-records", "orders-globals", queue_url, dlq_url, ddb, sqs)


# -- the embedded local AWS ----------------------------------------------------------------------


def test_local_sync() -> None:
    assert local_sync.queue_depth() == 1


async def test_local_async() -> None:
    assert await local_async.round_trip() is Status.PRE_FLIGHT


def test_local_budget() -> None:
    result = local_budget.hammer_one_item()
    done, throttled, stats = result["done"], result["throttled"], result["stats"]
    assert done + throttled == 200 and done >= 20  # the burst at least, then 20 a second
    assert result["counter"] == done  # a throttled write wrote nothing
    assert stats["throttled"].get("UpdateItem", 0) == throttled
    assert stats["consumed_wcu"]["UpdateItem"] == done  # a small item: 1 unit a write
    assert stats["by_item_top"] == [["counters", '{"pk":{"S":"hot"}}', done, throttled]]


def visibility_changes(client: MessageClient) -> tuple[dict[str, int], Any]:
    """Each ChangeMessageVisibilityBatch entry the client sends (receipt handle -> seconds),
    and the function that stops recording."""
    changes: dict[str, int] = {}

    def hook(service: str, operation: str, params: Any) -> None:
        if operation == "ChangeMessageVisibilityBatch":
            for entry in json.loads(params["body"])["Entries"]:
                changes[entry["ReceiptHandle"]] = entry["VisibilityTimeout"]

    return changes, client.add_request_hook(hook)


async def test_batch_retry_example(base_config: Config, queue: Queue, sqs: Any) -> None:
    orders = [
        {"id": 1, "amount": 5},
        {"id": 2, "amount": 0},
        {"id": 3, "amount": 5, "gateway": "down"},
        {"id": 4, "amount": 5, "gateway": "busy"},
    ]
    async with MessageClient(base_config) as client:
        event = await event_of(client, sqs, queue.url, orders)
        changes, stop = visibility_changes(client)
        response = await batch_retry.process(client, event)
        stop()
    by_id = {json.loads(r["body"])["id"]: r for r in event["Records"]}
    failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    assert failed == {by_id[i]["messageId"] for i in (2, 3, 4)}
    assert set(changes) == {by_id[3]["receiptHandle"], by_id[4]["receiptHandle"]}
    assert 0 <= changes[by_id[3]["receiptHandle"]] <= 10  # the first back-off, jittered
    assert changes[by_id[4]["receiptHandle"]] == 60  # RetryAfter(60)


class LambdaContextAt:
    """Lambda's context with a fixed time left."""

    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


async def test_batch_deadline_example(base_config: Config, queue: Queue, sqs: Any) -> None:
    images = [{"image": f"{i}.png"} for i in range(3)]
    async with MessageClient(base_config) as client:
        event = await event_of(client, sqs, queue.url, images)
        late = await batch_deadline.process(client, event, LambdaContextAt(20_000))
        assert len(late["batchItemFailures"]) == 3  # under 25 s left: none started
        for record in event["Records"]:
            stored = await client.read_sqs_record(record).get_message_record(consistent_read=True)
            assert stored.status is Status.PRE_FLIGHT  # untouched
        in_time = await batch_deadline.process(client, event, LambdaContextAt(600_000))
        assert in_time == {"batchItemFailures": []}


async def test_batch_entire_failure_example(
    base_config: Config, queue: Queue, sqs: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async with MessageClient(base_config) as client:
        down = await event_of(client, sqs, queue.url, [{"cluster": "down"}] * 2)
        with pytest.raises(BatchFailedError) as info:
            await batch_entire_failure.process(client, down)
        assert sorted(info.value.message_ids) == sorted(r["messageId"] for r in down["Records"])
        assert "all 2 messages failed: ['ConnectionError']" in caplog.text
        mixed = await event_of(client, sqs, queue.url, [{"cluster": "down"}, {"cluster": "up"}])
        response = await batch_entire_failure.process(client, mixed)
    assert len(response["batchItemFailures"]) == 1


async def test_batch_hooks_example(
    base_config: Config, queue: Queue, sqs: Any, caplog: pytest.LogCaptureFixture
) -> None:
    orders = [{"id": 1, "address": "1 Main St"}, {"id": 2}]
    batch_hooks.outcomes.clear()
    async with MessageClient(base_config) as client:
        event = await event_of(client, sqs, queue.url, orders)
        with caplog.at_level(logging.INFO, logger="orders"):
            response = await batch_hooks.process(client, event)
    assert len(response["batchItemFailures"]) == 1
    assert batch_hooks.outcomes == {"shipped": 1, "ValueError": 1}
    assert "order 1 shipped: TRACK-1" in caplog.text
    assert "order 2 not shipped (receive 1): order 2: no address" in caplog.text


async def test_batch_models_example(base_config: Config, queue: Queue, sqs: Any) -> None:
    orders = [
        {"order_id": "o-1", "lines": [{"sku": "a", "quantity": 2}, {"sku": "b", "quantity": 1}]},
        {"order_id": "o-2", "lines": [{"sku": "a"}]},
    ]
    async with MessageClient(base_config) as client:
        event = await event_of(client, sqs, queue.url, orders)
        response = await batch_models.process(client, event)
        records = [
            await client.read_sqs_record(r).get_message_record(True) for r in event["Records"]
        ]
        key = await client.create_message_cluster(queue.url, [1], globals={"cents": {"a": 250}})
        cluster: ClusterRecord[None, batch_models.Prices] = await client.get_message_cluster(key)
        assert await batch_models.price_of(cluster, "a") == 250
    by_order = {json.loads(r.body or "")["order_id"]: r for r in records}
    assert by_order["o-1"].status is Status.COMPLETE and by_order["o-1"].result == 3
    assert by_order["o-2"].status is Status.ERROR
    assert by_order["o-2"].errors[-1].message.startswith("body.lines[0].quantity: is required")
    bad = [r["messageId"] for r in event["Records"] if '"o-2"' in r["body"]]
    assert response == {"batchItemFailures": [{"itemIdentifier": bad[0]}]}


async def test_typed_globals_example(base_config: Config, queue: Queue, sqs: Any) -> None:
    lines = [{"sku": "a", "quantity": 2}, {"sku": "b", "quantity": 3}]
    prices = {"cents": {"a": 250, "b": 100}}
    async with MessageClient(base_config) as client:
        key = await client.create_message_cluster(queue.url, lines, globals=prices)
        event = receive_event(sqs, queue.url, max_messages=len(lines))
        assert await typed_globals.price_lines(client, event) == {"batchItemFailures": []}
        assert await typed_globals.line_totals(client, key) == {"a": 500, "b": 300}
        assert await typed_globals.discount(client, key) == {"cents": {"a": 225, "b": 90}}
        assert await client.get_message_cluster_globals(key) == {"cents": {"a": 225, "b": 90}}
    assert typed_globals.INVOICES[key.id] == 800


def queue_visibility(config: Config, url: str) -> int:
    """The queue's VisibilityTimeout, read with boto3 beside the library."""
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=config.endpoint_url)
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])
    return int(attrs["Attributes"]["VisibilityTimeout"])


async def test_large_messages_example(base_config: Config, queue: Queue, sqs: Any) -> None:
    await large_messages.send_report(base_config, queue.url)
    event = receive_event(sqs, queue.url)
    assert event["Records"][0]["body"].startswith('["software.amazon.payloadoffloading.')
    async with MessageClient(base_config) as client:
        assert await large_messages.handle(client, event) == {"batchItemFailures": []}
