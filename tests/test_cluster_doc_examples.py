"""The code in docs/clusters.md: every block is a docs/examples/cluster_*.py file, and each runs."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from docs.examples import (
    cluster_bound,
    cluster_cancel,
    cluster_dead_letters,
    cluster_lambda,
    cluster_pipeline,
    cluster_producer,
    cluster_records,
    cluster_redrive,
    cluster_results,
    cluster_sources,
    cluster_worker,
)

from sqs_cluster import ClusterRecord, Config, MessageClient, RecordKey, Status

from .conftest import Queue, make_queue, receive_event, unique
from .docblocks import DOCS, check_quotes_exactly, code_blocks
from .faults import FaultyClient, fail_entries_once

PAGE = "clusters.md"
RATE = 120


# -- the markdown quotes the files exactly -------------------------------------------------------


def test_every_code_block_of_clusters_md_is_an_example_file_quoted_exactly() -> None:
    assert check_quotes_exactly(DOCS / PAGE)


def test_every_cluster_example_is_quoted_in_clusters_md() -> None:
    quoted = {path for path, _, _ in code_blocks(DOCS / PAGE) if path}
    files = {f"examples/{p.name}" for p in (DOCS / "examples").glob("cluster_*.py")}
    assert files and files == quoted


def test_clusters_md_names_every_public_cluster_method() -> None:
    text = (DOCS / PAGE).read_text()
    for name in (
        "create_message_cluster",
        "get_message_cluster",
        "get_message_cluster_globals",
        "update_message_cluster_globals",
        "update_cluster_globals",
        "update_message_cluster",
        "on_cluster_complete",
        "iter_tasks",
        "safe_process_batch",
        "process_dead_letters",
        "mark_complete",
        "mark_failed",
    ):
        assert f"`{name}" in text, name


# -- helpers ---------------------------------------------------------------------------------


def hours_of(count: int, bad: int = 0) -> dict[str, int]:
    """``count`` customers; the last ``bad`` of them have negative hours (their task fails)."""
    return {f"c{i}": (-1 if i >= count - bad else i + 1) for i in range(count)}


async def drain(
    config: Config,
    queue_url: str,
    sqs: Any,
    process: Callable[[Config, dict[str, Any]], Awaitable[Any]],
) -> int:
    """Deliver the queue to ``process`` as Lambda would: delete successes, release failures."""
    batches = idle = 0
    while idle < 2 and batches < 200:
        event = receive_event(sqs, queue_url)
        if not event["Records"]:
            idle += 1
            continue
        idle, batches = 0, batches + 1
        response = await process(config, event)
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        for record in event["Records"]:
            if record["messageId"] in failed:
                sqs.change_message_visibility(
                    QueueUrl=queue_url, ReceiptHandle=record["receiptHandle"], VisibilityTimeout=0
                )
            else:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=record["receiptHandle"])
    return batches


class Calls:
    """A cluster callback that records each run."""

    def __init__(self) -> None:
        self.clusters: list[ClusterRecord[Any, Any]] = []

    async def __call__(
        self, cluster: ClusterRecord[Any, Any], get_globals: Callable[[], Awaitable[Any]]
    ) -> None:
        self.clusters.append(cluster)


# -- cluster_producer.py ---------------------------------------------------------------------


async def test_start_run_and_describe(
    base_config: Config, client: MessageClient, queue: Queue, sqs: Any
) -> None:
    run_id = unique("run")
    key = await cluster_producer.start_run(client, queue.url, hours_of(20), run_id, RATE)
    assert key == RecordKey(f"SQSMessage${run_id}", f"SQSMessage${queue.url}")
    info = await cluster_producer.describe(client, run_id)
    assert info == {
        "status": "IN PROGRESS",
        "total": 20,
        "sent": 20,
        "completed": 0,
        "failed": 0,
        "in_progress": 20,
        "callback": None,
        "meta": {"run": run_id},
    }
    cluster = await client.get_message_cluster(key)
    assert cluster.tolerated_failures == 2  # 10% of 20
    assert await client.get_message_cluster_globals(key.p_key) == {"rate": RATE, "amounts": {}}


async def test_start_run_resumes_after_a_partial_fan_out(
    base_config: Config, sqs: Any, real: dict[str, Any]
) -> None:
    queue = await make_queue(base_config)
    faulty = FaultyClient(real["sqs"], send_message_batch=fail_entries_once(4, sender_fault=True))
    clients = {**real, "sqs": faulty}
    async with MessageClient(base_config, clients=clients) as client:
        run_id = unique("run")
        key = await cluster_producer.start_run(client, queue.url, hours_of(30), run_id, RATE)
        cluster = await client.get_message_cluster(key, consistent_read=True)
    assert faulty.calls["send_message_batch"] == 4  # 3 batches, then 1 for the 4 unsent tasks
    assert (cluster.total, cluster.sent, cluster.status) == (30, 30, Status.IN_PROGRESS)
    received = receive_event(sqs, queue.url, max_messages=40)["Records"]
    indexes = sorted(json.loads(r["body"])["index"] for r in received)
    assert indexes == list(range(30))  # each task sent exactly once


# -- cluster_lambda.py -----------------------------------------------------------------------


@pytest.mark.parametrize(("bad", "status"), [(1, Status.COMPLETE), (2, Status.ERROR)])
async def test_lambda_processes_a_cluster_and_reports_once(
    base_config: Config, sqs: Any, bad: int, status: Status
) -> None:
    queue = await make_queue(base_config, max_receive_count=2)
    hours = hours_of(10, bad)
    async with MessageClient(base_config) as client:
        key = await cluster_producer.start_run(client, queue.url, hours, unique("run"), RATE)

    await drain(base_config, queue.url, sqs, cluster_lambda.process)

    good = [i for i, h in enumerate(hours.values()) if h >= 0]
    async with MessageClient(base_config) as client:
        cluster = await client.get_message_cluster(key, consistent_read=True)
        globals_ = await client.get_message_cluster_globals(key)
    assert (cluster.completed, cluster.failed, cluster.status) == (10 - bad, bad, status)
    assert cluster.callback_state == "DONE" and cluster.callback_attempts == 1  # ran once
    assert globals_["amounts"] == {str(i): (i + 1) * RATE for i in good}
    assert cluster.user["report"] == {
        "status": status.value,
        "sum": sum((i + 1) * RATE for i in good),
        "failed": list(range(10 - bad, 10)),
    }
    assert await cluster_lambda.finish(base_config, key) is False  # already ran


async def test_finish_runs_a_callback_nobody_ran(
    base_config: Config, client: MessageClient, queue: Queue, sqs: Any
) -> None:
    key = await cluster_producer.start_run(client, queue.url, hours_of(3), unique("run"), RATE)
    for record in receive_event(sqs, queue.url)["Records"]:  # completed with no callback given
        assert await client.is_complete(record) is False
        await client.mark_complete(record)
    cluster = await client.get_message_cluster(key, consistent_read=True)
    assert cluster.status is Status.COMPLETE and cluster.callback_state == "PENDING"
    assert await cluster_lambda.finish(base_config, key) is True
    assert await cluster_lambda.finish(base_config, key) is False
    cluster = await client.get_message_cluster(key, consistent_read=True)
    assert cluster.callback_state == "DONE"
    assert cluster.user["report"] == {"status": "COMPLETE", "sum": 0, "failed": []}


# -- cluster_dead_letters.py ----------------------------------------------------------------


async def test_dead_letter_function_settles_a_task_whose_worker_died(
    base_config: Config, sqs: Any
) -> None:
    queue = await make_queue(base_config, max_receive_count=1)
    async with MessageClient(base_config) as client:
        key = await cluster_producer.start_run(client, queue.url, hours_of(10), unique("run"), RATE)
        event = receive_event(sqs, queue.url, visibility=0)  # each task's one allowed receive
        dies = next(r for r in event["Records"] if client.read_sqs_record(r).task_index == 9)
    survivors = {"Records": [r for r in event["Records"] if r is not dies]}
    assert await cluster_lambda.process(base_config, survivors) == {"batchItemFailures": []}
    assert receive_event(sqs, queue.url, visibility=0)["Records"] == []  # all moved to the DLQ
    dead = receive_event(sqs, queue.dlq_url)
    assert len(dead["Records"]) == 10  # the nine done ones too: nothing deleted them

    response = await cluster_dead_letters.settle(base_config, dead, cluster_lambda.write_report)
    assert response == {"batchItemFailures": []}
    again = await cluster_dead_letters.settle(base_config, dead, cluster_lambda.write_report)
    assert again == {"batchItemFailures": []}
    async with MessageClient(base_config) as client:
        cluster = await client.get_message_cluster(key, consistent_read=True)
    assert (cluster.completed, cluster.failed, cluster.status) == (9, 1, Status.COMPLETE)
    assert cluster.callback_state == "DONE" and cluster.callback_attempts == 1
    assert cluster.user["report"] == {
        "status": "COMPLETE",
        "sum": sum((i + 1) * RATE for i in range(9)),
        "failed": [9],
    }


# -- cluster_worker.py -----------------------------------------------------------------------


async def test_worker_handles_tasks_one_at_a_time(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    await cluster_producer.start_run(client, queue.url, hours_of(2), unique("run"), RATE)
    first, second = receive_event(sqs, queue.url)["Records"]
    calls = Calls()
    assert await cluster_worker.handle_task(client, first, calls) == "processed"
    assert calls.clusters == []
    assert await cluster_worker.handle_task(client, second, calls) == "processed; callback ran"
    assert await cluster_worker.handle_task(client, first, calls) == "already complete"
    (done,) = calls.clusters
    assert (done.status, done.completed, done.failed) == (Status.COMPLETE, 2, 0)


async def test_worker_counts_a_task_failed_on_its_last_receive(
    base_config: Config, sqs: Any
) -> None:
    queue = await make_queue(base_config, max_receive_count=1)
    async with MessageClient(base_config) as client:
        key = await cluster_producer.start_run(
            client, queue.url, hours_of(1, bad=1), unique("run"), RATE
        )
        (record,) = receive_event(sqs, queue.url)["Records"]
        calls = Calls()
        with pytest.raises(ValueError, match="negative hours"):
            await cluster_worker.handle_task(client, record, calls)
        cluster = await client.get_message_cluster(key, consistent_read=True)
    assert (cluster.failed, cluster.status) == (1, Status.ERROR)  # 10% of 1 task is 0
    assert [c.status for c in calls.clusters] == [Status.ERROR]


# -- cluster_records.py ----------------------------------------------------------------------


def types_of(item: dict[str, Any]) -> dict[str, str]:
    return {name: next(iter(value)) for name, value in item.items()}


async def test_record_layout(
    base_config: Config, client: MessageClient, queue: Queue, sqs: Any
) -> None:
    run_id = unique("run")
    key = await cluster_producer.start_run(client, queue.url, hours_of(3), run_id, RATE)
    items = cluster_records.partition(base_config, key.p_key)
    # the counter item claims the id at creation and carries the total and the queue URL
    assert set(items) == {key.r_key, "SQSMessage$progress", "SQSMessage$counter#0"}
    created = items["SQSMessage$counter#0"]
    assert types_of(created) == {
        "pKey": "S",
        "rKey": "S",
        "total": "N",
        "url": "S",
        "expiresAt": "N",
        "shards": "N",
        "shardsLeft": "N",
    }
    assert created["total"]["N"] == "3" and created["url"]["S"] == queue.url
    assert created["shards"]["N"] == "1" and created["shardsLeft"]["N"] == "1"
    # its one counter shard, in a partition of its own, has room for the three tasks
    (shard,) = cluster_records.partition(base_config, f"{key.p_key}#0").values()
    assert types_of(shard) == {
        "pKey": "S",
        "rKey": "S",
        "room": "N",
        "completed": "N",
        "failed": "N",
        "expiresAt": "N",
    }
    assert shard["rKey"]["S"] == "SQSMessage$shard" and shard["room"]["N"] == "3"
    main = items[key.r_key]
    assert types_of(main) == {
        "pKey": "S",
        "rKey": "S",
        "id": "S",
        "type": "S",
        "url": "S",
        "status": "S",
        "statusCode": "N",
        "startedAt": "S",
        "updatedAt": "S",
        "expiresAt": "N",
        "total": "N",
        "toleratedFailures": "N",
        "gsi1pk": "S",  # the recent-clusters index (the dashboard)
        "gsi1sk": "S",
        "meta": "S",
        "globals": "M",
    }
    assert main["type"]["S"] == "cluster" and main["id"]["S"] == run_id
    assert main["status"]["S"] == "IN PROGRESS" and main["statusCode"]["N"] == "100"
    assert main["meta"]["S"] == json.dumps({"run": run_id}, separators=(",", ":"))
    assert main["globals"]["M"] == {
        "Bucket": {"S": base_config.bucket},
        "Key": {"S": f"{key.p_key}-globals.json"},
    }
    progress = items["SQSMessage$progress"]
    assert types_of(progress) == {
        "pKey": "S",
        "rKey": "S",
        "sentCount": "N",
        "sentUnits": "NS",
        "expiresAt": "N",
        "fannedOut": "BOOL",
        "leaseOwner": "S",
        "leaseUntilMs": "N",
    }
    assert progress["sentUnits"]["NS"] == ["0"] and progress["sentCount"]["N"] == "3"
    assert progress["fannedOut"]["BOOL"] is True
    assert re.fullmatch(r"[0-9a-f]{32}", progress["leaseOwner"]["S"])
    assert progress["leaseUntilMs"]["N"] == "0"  # released when the create returned

    task = cluster_records.task_item(base_config, key.p_key, key.r_key, 1)
    assert task["pKey"]["S"] == f"{key.p_key}.1" and task["type"]["S"] == "task"
    assert types_of(task) == {  # no body: the message carries it (clusters.md)
        "pKey": "S",
        "rKey": "S",
        "type": "S",
        "status": "S",
        "statusCode": "N",
        "startedAt": "S",
        "expiresAt": "N",
    }
    assert task["status"]["S"] == "PRE FLIGHT"
    record = await client.get_message_record(RecordKey(f"{key.p_key}.1", key.r_key))
    assert (record.cluster_key, record.task_index, record.url) == (key, 1, queue.url)

    records = receive_event(sqs, queue.url)["Records"]
    body = next(b for b in (json.loads(r["body"]) for r in records) if b["index"] == 1)
    assert list(body) == ["task", "type", "index", "shards", "globals"]
    assert body["task"] == {"customer": "c1", "hours": 2} and body["index"] == 1
    assert body["globals"] == base_config.bucket  # the key is <cluster pKey>-globals.json
    attribute = json.loads(records[0]["messageAttributes"]["sqsClusterKey"]["stringValue"])
    assert attribute["pKey"].startswith(f"{key.p_key}.") and attribute["rKey"] == key.r_key
    await client.is_complete(records[0])
    await client.mark_complete(records[0])
    items = cluster_records.partition(base_config, key.p_key)
    (shard,) = cluster_records.partition(base_config, f"{key.p_key}#0").values()
    assert shard["room"]["N"] == "2" and shard["completed"]["N"] == "1"  # one of three counted
    assert "updatedAt" in shard
    assert cluster_records.counts(base_config, items) == {"completed": 1, "failed": 0, "sent": 3}
    value, encryption = cluster_records.globals_object(base_config, key.p_key)
    assert value == {"rate": RATE, "amounts": {}} and encryption == "AES256"


async def test_bound_completion_example(
    base_config: Config, queue: Queue, sqs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    done = await make_queue(base_config)
    async with MessageClient(base_config) as client:
        by_function, by_queue = await cluster_bound.start(client, queue.url, done.url)
        event = receive_event(sqs, queue.url, max_messages=3)
        assert await client.safe_process_batch(event, lambda m: None) == {"batchItemFailures": []}
        ended = await cluster_bound.wait(client, by_function)
        assert ended.is_finished and ended.callback_state == "DONE"
        assert (await cluster_bound.wait(client, by_queue)).completed == 1
    assert f"run {by_function.id}: 2 invoices, 0 failed" in capsys.readouterr().out
    (summary,) = receive_event(sqs, done.url)["Records"]
    assert json.loads(summary["body"])["cluster"] == by_queue.to_dict()


async def test_results_example(client: MessageClient, queue: Queue, sqs: Any) -> None:
    tasks = [{"customer": f"c{i}", "hours": i} for i in range(4)]
    key = await client.create_message_cluster(queue.url, tasks, omit_globals=True)
    event = receive_event(sqs, queue.url, max_messages=4)

    def bill(message: Any) -> Any:
        return None if message.task["hours"] == 0 else {"hours": message.task["hours"] * 1.5}

    assert await client.safe_process_batch(event, bill) == {"batchItemFailures": []}
    assert await cluster_results.total_hours(client, key) == 9.0
    by_customer = await cluster_results.results_by_customer(client, key)
    assert by_customer == {
        "c0": None,
        "c1": {"hours": 1.5},
        "c2": {"hours": 3.0},
        "c3": {"hours": 4.5},
    }


async def test_cancel_example(
    client: MessageClient, queue: Queue, sqs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    key = await client.create_message_cluster(queue.url, list(range(5)), omit_globals=True)
    first = receive_event(sqs, queue.url, max_messages=2)
    assert await client.safe_process_batch(first, lambda m: None) == {"batchItemFailures": []}
    cluster = await cluster_cancel.stop_run(client, key)
    assert "2 done, 3 cancelled, 0 running" in capsys.readouterr().out
    await cluster_cancel.on_end(cluster, cluster.get_globals)
    assert "cancelled (the input file was wrong) after 2 tasks" in capsys.readouterr().out


async def test_pipeline_example_runs_each_stage_once_under_duplicates(
    base_config: Config, queue: Queue, sqs: Any
) -> None:
    async with MessageClient(base_config) as client:
        first = await cluster_pipeline.start(client, queue.url, list(range(1, 31)))
        seen = 0
        duplicated = False
        for _ in range(40):  # drain both stages, as Lambda would
            event = receive_event(sqs, queue.url, max_messages=10)
            if not event["Records"]:
                if first.id in cluster_pipeline.TOTALS:
                    break
                continue
            if not duplicated:  # SQS's at-least-once, made deliberate: a batch twice
                duplicated = True
                await client.safe_process_batch(event, cluster_pipeline.handle)
            response = await client.safe_process_batch(event, cluster_pipeline.handle)
            assert response == {"batchItemFailures": []}
            seen += len(event["Records"])
        second = await client.get_message_cluster(
            RecordKey(f"SQSMessage${first.id}-sum", first.r_key)
        )
    assert cluster_pipeline.TOTALS[first.id] == sum(n * n for n in range(1, 31))
    assert (second.total, second.completed, second.meta) == (3, 3, {"stage": 2, "of": first.id})
    assert seen == 33  # 30 squares and 3 sums, none twice


async def test_sources_example(base_config: Config, queue: Queue) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=base_config.endpoint_url, region_name="us-east-1")
    body = b'{"customer": "c1"}\n{"customer": "c2"}\n'
    s3.put_object(Bucket=base_config.bucket, Key="inputs/customers.jsonl", Body=body)
    async with MessageClient(base_config) as client:
        generated = await cluster_sources.from_generator(client, queue.url)
        loaded = await cluster_sources.from_s3(client, queue.url, base_config.bucket or "")
        assert (await client.get_message_cluster(generated)).total == 3
        assert (await client.get_message_cluster(loaded)).total == 2


async def test_redrive_example_sends_the_failed_tasks_again(
    base_config: Config, sqs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    once = await make_queue(base_config, max_receive_count=1, visibility_timeout=0)
    tasks = list(range(6))
    async with MessageClient(base_config) as client:
        key = await client.create_message_cluster(once.url, tasks, omit_globals=True)
        fixed = {"yet": False}

        def handler(message: Any) -> None:
            if message.task == 4 and not fixed["yet"]:
                raise ValueError("not fixed yet")

        event = receive_event(sqs, once.url, max_messages=6)
        await client.safe_process_batch(event, handler)
        ended = await client.get_message_cluster(key, consistent_read=True)
        await cluster_redrive.on_end(ended, ended.get_globals)
        assert "first run: ERROR, 5 of 6 completed" in capsys.readouterr().out
        fixed["yet"] = True
        assert await cluster_redrive.retry_failures(client, key, tasks) == 1
        assert "redrive: 1 tasks sent again" in capsys.readouterr().out
        again = receive_event(sqs, once.url, max_messages=1)
        assert await client.safe_process_batch(again, handler) == {"batchItemFailures": []}
        ended = await client.get_message_cluster(key, consistent_read=True)
        await cluster_redrive.on_end(ended, ended.get_globals)
        assert "redrive 1: COMPLETE, 6 of 6 completed" in capsys.readouterr().out
        assert await cluster_redrive.retry_failures(client, key, tasks) == 0
