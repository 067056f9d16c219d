"""Chaos end to end: worker processes SIGKILLed and restarted at random, duplicate deliveries,
random handler failures. Every task's effect must happen exactly once, tasks that exhaust
their receives must be counted failed, and on_cluster_complete must run exactly once.

Seeded and bounded in time. The default run has the small version (60 tasks, 2 workers of one
poller each); the full one is ``slow``: ``CHAOS_TASKS`` tasks (200 unless set; ``nox -s chaos``
runs 2,000) on 4 workers of two pollers each. Both kill workers, send duplicates, fail tasks at
random and have tasks that always fail and end in the dead-letter queue.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sqs_cluster import Config, MessageClient, RecordKey
from sqs_cluster._clusters.shards import shard_count

from .conftest import make_queue, unique

TASKS = int(os.environ.get("CHAOS_TASKS", "200"))
WORKERS = 4
CONCURRENCY = 2
SMALL_TASKS = 60  # tasks 0 and 50 always fail; kills happen until 40 are done
SMALL_WORKERS = 2
SEED = int(os.environ.get("CHAOS_SEED", "7"))
TESTS = Path(__file__).parent
ALWAYS_FAILS_EVERY = 50


def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A worker process; its output goes to a file in ``CHAOS_LOG_DIR`` if set, else nowhere."""
    command = [sys.executable, "-m", "sqs_cluster._cli.main", "worker", *args]
    folder = os.environ.get("CHAOS_LOG_DIR")
    if not folder:
        return subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    with open(Path(folder) / f"worker-{time.monotonic_ns()}.log", "wb") as log:
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def start(queue_url: str, env: dict[str, str], concurrency: int) -> subprocess.Popen[bytes]:
    args = [queue_url, "chaos_app:handler", "--wait-seconds", "1"]
    return spawn([*args, "--concurrency", str(concurrency)], env)


def start_dead_letters(dlq_url: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Settles tasks whose worker was killed on their last allowed receive (never killed)."""
    return spawn(
        [dlq_url, "--dead-letters", "--on-cluster-complete", "chaos_app:on_done",
         "--wait-seconds", "1"],
        env,
    )  # fmt: skip


def make_ledger(ddb: Any) -> str:
    name = unique("ledger")
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


async def duplicate_some(
    client: MessageClient, key: Any, queue_url: str, rng: random.Random, tasks: int
) -> int:
    """Send second copies of ~5% of the tasks (same body, same record key): SQS's at-least-once
    delivery, made deliberate. Built from the wire format clusters.md documents (the tasks are
    ``{"i": index}``), so no receive count is used up."""
    sqs: Any = client._aws.sqs
    shards = shard_count(tasks)
    chosen = [i for i in range(tasks) if rng.random() < 0.05]
    for index in chosen:
        task = RecordKey(f"{key.p_key}.{index}", key.r_key)
        body = {"pKey": key.p_key, "rKey": key.r_key, "task": {"i": index}, "type": "task"}
        await sqs.send_message(
            QueueUrl=queue_url,
            MessageBody=json.dumps({**body, "index": index, "shards": shards}),
            MessageAttributes={
                "sqsClusterKey": {"DataType": "String", "StringValue": json.dumps(task.to_dict())}
            },
        )
    return len(chosen)


async def wait_until_finished(
    config: Config, key: Any, workers: list[subprocess.Popen[bytes]], restart: Any, deadline: float
) -> Any:
    rng = random.Random(SEED)
    kills = 0
    async with MessageClient(config) as client:
        while time.monotonic() < deadline:
            cluster = await client.get_message_cluster(key, consistent_read=True)
            if cluster.is_finished and cluster.callback_state == "DONE":
                return cluster, kills
            near_end = cluster.completed + cluster.failed >= cluster.total - 20
            if not near_end and rng.random() < 0.25:
                victim = rng.randrange(len(workers))
                workers[victim].send_signal(signal.SIGKILL)
                workers[victim].wait()
                workers[victim] = restart()
                kills += 1
            await asyncio.sleep(1.0)
    raise AssertionError(
        f"cluster did not finish in time: {cluster.completed} completed, {cluster.failed} "
        f"failed of {cluster.total}, {cluster.status.value}, callback {cluster.callback_state}"
    )


async def describe_tasks(config: Config, key: Any, indexes: list[int]) -> str:
    """One line per task record: what a failed run needs to tell what happened."""
    async with MessageClient(config) as client:
        keys = [RecordKey(f"{key.p_key}.{i}", key.r_key) for i in indexes]
        records = await client.get_message_records(keys)
    return "\n".join(
        f"  task {i}: "
        + (
            "no record"
            if r is None
            else f"{r.status.value}, consumed {r.consumption_count}, "
            f"errors {[(e.type, e.receive_count) for e in r.errors]}"
        )
        for i, r in zip(indexes, records, strict=True)
    )


@pytest.mark.slow
async def test_chaos_every_effect_once(base_config: Config, ddb: Any) -> None:
    await run_chaos(base_config, ddb, tasks=TASKS, workers=WORKERS, concurrency=CONCURRENCY)


async def test_chaos_every_effect_once_small(base_config: Config, ddb: Any) -> None:
    """The same scenario, smaller (fewer tasks and pollers), on the default local server: it
    runs in the default suite."""
    await run_chaos(base_config, ddb, tasks=SMALL_TASKS, workers=SMALL_WORKERS, concurrency=1)


async def run_chaos(
    base_config: Config, ddb: Any, *, tasks: int, workers: int, concurrency: int
) -> None:
    queue = await make_queue(base_config, visibility_timeout=10, max_receive_count=5)
    ledger = make_ledger(ddb)
    # a claim left by a killed worker must lapse before its message is visible again (10 s);
    # the callback's lease has no such bound, and a longer one survives the renewals that a
    # loaded local server can hold back for seconds
    config = base_config.with_changes(lease_seconds=8, callback_lease_seconds=60)
    async with MessageClient(config) as client:
        key = await client.create_message_cluster(
            queue.url, [{"i": i} for i in range(tasks)], omit_globals=True
        )
        duplicates = await duplicate_some(client, key, queue.url, random.Random(SEED), tasks)
    env = dict(os.environ)
    env.update(
        SQS_CLUSTER_TABLE=config.table,
        SQS_CLUSTER_ENDPOINT_URL=config.endpoint_url or "",
        SQS_CLUSTER_REGION="us-east-1",
        SQS_CLUSTER_LEASE_SECONDS="8",
        SQS_CLUSTER_CALLBACK_LEASE_SECONDS="60",
        LEDGER_TABLE=ledger,
        CHAOS_SEED=str(SEED),
        PYTHONPATH=os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")]),
    )
    pool = [start(queue.url, env, concurrency) for _ in range(workers)]
    dead_letters = start_dead_letters(queue.dlq_url, env)
    try:
        cluster, kills = await wait_until_finished(
            config, key, pool, lambda: start(queue.url, env, concurrency), time.monotonic() + 600
        )
    finally:
        for worker in [*pool, dead_letters]:
            worker.send_signal(signal.SIGTERM)
        for worker in [*pool, dead_letters]:
            await asyncio.to_thread(worker.wait, 60)
    items = ddb.scan(TableName=ledger)["Items"]
    effects = sorted(int(i["pk"]["S"][5:]) for i in items if i["pk"]["S"].startswith("task#"))
    callback_runs = [i for i in items if i["pk"]["S"].startswith("callback#")]
    always_fail = {i for i in range(tasks) if i % ALWAYS_FAILS_EVERY == 0}
    expected = [i for i in range(tasks) if i not in always_fail]
    counts = (cluster.completed, cluster.failed)
    if effects != expected or counts != (len(expected), len(always_fail)):
        odd = sorted(set(effects) ^ set(expected)) + sorted(always_fail)
        detail = await describe_tasks(config, key, odd)
        raise AssertionError(f"counts {counts}, effects off by {odd}:\n{detail}")
    assert len(callback_runs) == 1, (callback_runs, f"dead-letter worker: {dead_letters.pid}")
    summary = {"tasks": tasks, "kills": kills, "duplicates": duplicates, "failed": cluster.failed}
    print("chaos:", json.dumps(summary))
    assert kills > 0 and duplicates > 0
