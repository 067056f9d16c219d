"""The CLI as a user drives it: help, one-line errors, workers side by side, SIGTERM mid-batch."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from sqs_cluster import Config, MessageClient, Status, ValidationError, Worker, WorkerOptions

from .conftest import Queue, make_queue, receive_event
from .faults import FaultyClient

CLI = [sys.executable, "-m", "sqs_cluster._cli.main"]
TESTS = Path(__file__).parent


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Any:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def worker_env(config: Config, ledger: Path, sleep: float = 0.0) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "SQS_CLUSTER_TABLE": config.table,
            "SQS_CLUSTER_BUCKET": config.bucket or "",
            "SQS_CLUSTER_ENDPOINT_URL": config.endpoint_url or "",
            "SQS_CLUSTER_REGION": "us-east-1",
            "LEDGER": str(ledger),
            "SLEEP": str(sleep),
            "PYTHONPATH": os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")]),
        }
    )
    return env


def start_worker(queue: Queue, env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, "worker", queue.url, "worker_app:handler", "--wait-seconds", "1", *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def start_dead_letters_worker(queue: Queue, env: dict[str, str]) -> subprocess.Popen[str]:
    callback = "worker_app:on_cluster_complete"
    args = ["worker", queue.dlq_url, "--dead-letters", "--on-cluster-complete", callback]
    return subprocess.Popen(
        [*CLI, *args, "--wait-seconds", "0", "--max-empty-polls", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def popen_cli(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """The CLI in the background, stdout and stderr captured."""
    return subprocess.Popen(
        [*CLI, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def start_cli(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([*CLI, *args], env=env, stdout=subprocess.PIPE, text=True)


def ledger_counts(ledger: Path) -> Counter[int]:
    return (
        Counter(int(line) for line in ledger.read_text().split()) if ledger.exists() else Counter()
    )


@pytest.mark.parametrize("command", [[], ["worker"], ["status"], ["init"], ["demo"]])
def test_help_is_complete(command: list[str]) -> None:
    result = run_cli(*command, "--help")
    assert result.returncode == 0 and "usage: sqs-cluster" in result.stdout
    if command == ["worker"]:
        for flag in (
            "--batch-size",
            "--concurrency",
            "--wait-seconds",
            "--dead-letters",
            "--on-cluster-complete",
            "--retry-base",
            "--retry-max",
            "QUEUE_URL",
            "HANDLER",
        ):
            assert flag in result.stdout
    if command == ["status"]:
        assert "--watch" in result.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["worker", "http://127.0.0.1:9/1/q", "worker_app:handler", "--table", "t",
          "--endpoint-url", "http://127.0.0.1:9"], "Could not connect"),
        (["worker", "http://127.0.0.1:9/1/q", "no_such_module:handler", "--table", "t"], "handler"),
        (["worker", "http://127.0.0.1:9/1/q", "not-a-path", "--table", "t"], "module:function"),
        (["worker", "http://127.0.0.1:9/1/q", "--table", "t"], "HANDLER: required"),
        (["worker", "http://127.0.0.1:9/1/q", "worker_app:handler", "--dead-letters",
          "--table", "t"], "not used with --dead-letters"),
        (["worker", "http://127.0.0.1:9/1/q", "--dead-letters", "--on-cluster-complete",
          "no_such_module:cb", "--table", "t"], "--on-cluster-complete: cannot import"),
        (["worker", "http://127.0.0.1:9/1/q", "worker_app:handler", "--retry-base", "0",
          "--table", "t"], "--retry-base: must be > 0"),
        (["worker", "http://127.0.0.1:9/1/q", "worker_app:handler", "--retry-base", "9",
          "--retry-max", "3", "--table", "t"], "--retry-max: must be >= --retry-base (9.0)"),
        (["status", "abc"], "SQS_CLUSTER_TABLE"),
    ],
)  # fmt: skip
def test_errors_are_one_clear_line(args: list[str], needle: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SQS_CLUSTER_")}
    env["AWS_MAX_ATTEMPTS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    result = run_cli(*args, env=env)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("sqs-cluster: error:"), result.stderr
    assert needle in lines[0] and "Traceback" not in result.stderr


def test_status_of_missing_table_is_one_line(base_config: Config) -> None:
    env = dict(os.environ, SQS_CLUSTER_TABLE="no-such-table")
    result = run_cli("status", "abc", "--endpoint-url", base_config.endpoint_url or "", env=env)
    assert result.returncode == 1 and "ResourceNotFoundException" in result.stderr
    assert "Traceback" not in result.stderr


async def test_two_workers_do_every_task_once(base_config: Config, tmp_path: Path) -> None:
    queue = await make_queue(base_config, visibility_timeout=30)
    async with MessageClient(base_config) as client:
        key = await client.create_message_cluster(queue.url, list(range(60)), omit_globals=True)
    ledger = tmp_path / "ledger"
    env = worker_env(base_config, ledger)
    workers = [start_worker(queue, env, "--max-empty-polls", "3") for _ in range(2)]
    for proc in workers:
        _, err = await asyncio.to_thread(proc.communicate, timeout=120)
        assert proc.returncode == 0, err
        assert "batch:" in err  # one log line per batch
    assert ledger_counts(ledger) == Counter(range(60))
    async with MessageClient(base_config) as client:
        cluster = await client.get_message_cluster(key, consistent_read=True)
    assert cluster.completed == 60 and cluster.is_finished


async def test_sigterm_mid_batch_loses_nothing(base_config: Config, tmp_path: Path) -> None:
    queue = await make_queue(base_config, visibility_timeout=30)
    async with MessageClient(base_config) as client:
        key = await client.create_message_cluster(queue.url, list(range(30)), omit_globals=True)
    ledger = tmp_path / "ledger"
    env = worker_env(base_config, ledger, sleep=1.0)
    proc = start_worker(queue, env, "--batch-size", "10")
    deadline = time.monotonic() + 60
    while not ledger.exists() and proc.poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110 - polling a file another process writes
        await asyncio.sleep(0.1)  # wait for the first batch to finish
    await asyncio.sleep(0.5)  # the second batch is in flight now (each task sleeps 1 s)
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.to_thread(proc.communicate, timeout=60)
    assert proc.returncode == 0, err
    done_by_first = ledger_counts(ledger)
    finished = sum(done_by_first.values())
    assert 0 < finished < 30 and finished % 10 == 0  # stopped after finishing whole batches
    drain = start_worker(queue, worker_env(base_config, ledger), "--max-empty-polls", "3")
    _, err = await asyncio.to_thread(drain.communicate, timeout=120)
    assert drain.returncode == 0, err
    assert ledger_counts(ledger) == Counter(range(30))  # none lost, none twice
    async with MessageClient(base_config) as client:
        cluster = await client.get_message_cluster(key, consistent_read=True)
    assert cluster.completed == 30


async def test_status_shows_progress_and_exits_when_finished(
    base_config: Config, tmp_path: Path
) -> None:
    queue = await make_queue(base_config)
    async with MessageClient(base_config) as client:
        key = await client.create_message_cluster(queue.url, list(range(12)), omit_globals=True)
    env = worker_env(base_config, tmp_path / "ledger")
    env["COLUMNS"] = "160"
    before = await asyncio.to_thread(run_cli, "status", key.id, env=env)
    assert before.returncode == 0 and "done 0/12" in before.stdout and "left 12" in before.stdout
    watcher = start_cli(["status", key.p_key, "--watch"], env)
    worker = start_worker(queue, env, "--max-empty-polls", "3")
    out, _ = await asyncio.to_thread(watcher.communicate, timeout=120)
    await asyncio.to_thread(worker.communicate, timeout=120)
    assert watcher.returncode == 0 and "COMPLETE  done 12/12" in out


async def test_dead_letters_worker_settles_a_task_whose_worker_died(
    base_config: Config, sqs: Any, tmp_path: Path
) -> None:
    queue = await make_queue(base_config, max_receive_count=1)
    async with MessageClient(base_config) as client:
        key = await client.create_message_cluster(queue.url, ["dies"], omit_globals=True)
    assert len(receive_event(sqs, queue.url, visibility=0)["Records"]) == 1  # its one receive
    assert receive_event(sqs, queue.url, visibility=0)["Records"] == []  # now in the DLQ
    ledger = tmp_path / "ledger"
    proc = start_dead_letters_worker(queue, worker_env(base_config, ledger))
    _, err = await asyncio.to_thread(proc.communicate, timeout=120)
    assert proc.returncode == 0, err
    assert ledger.read_text() == "callback ERROR\n"
    async with MessageClient(base_config) as client:
        cluster = await client.get_message_cluster(key, consistent_read=True)
    assert (cluster.failed, cluster.status) == (1, Status.ERROR)
    assert receive_event(sqs, queue.dlq_url, visibility=0)["Records"] == []  # deleted


async def test_a_worker_warns_when_sqs_refuses_to_extend_visibility(
    base_config: Config, queue: Queue, real: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """A refused extension means SQS may deliver the message again mid-handler: say so."""

    async def refuse(call: Any, kwargs: dict[str, Any]) -> Any:
        failed = [
            {"Id": e["Id"], "SenderFault": True, "Code": "ReceiptHandleIsInvalid", "Message": "no"}
            for e in kwargs["Entries"]
        ]
        return {"Successful": [], "Failed": failed}

    sqs = FaultyClient(real["sqs"], change_message_visibility_batch=refuse)
    async with MessageClient(base_config, clients={**real, "sqs": sqs}) as client:
        await client.send_message(queue.url, "slow")

        async def handler(event: Any, context: Any) -> None:
            await asyncio.sleep(2.5)  # two extensions (every second at a 2 s visibility)

        options = WorkerOptions(wait_seconds=1, visibility_timeout=2, max_empty_polls=1)
        with caplog.at_level(logging.WARNING, logger="sqs_cluster.worker"):
            stats = await Worker(client, queue.url, handler, options).run()
    assert stats.received == 1 and sqs.calls["change_message_visibility_batch"] >= 2
    assert "visibility of 1 messages not extended" in caplog.text


async def test_hooks_open_and_close_the_handlers_client(
    base_config: Config, tmp_path: Path
) -> None:
    queue = await make_queue(base_config, visibility_timeout=30)
    async with MessageClient(base_config) as client:
        await client.create_message_cluster(queue.url, list(range(15)), omit_globals=True)
    ledger = tmp_path / "ledger"
    env = {**worker_env(base_config, ledger), "PYTHONWARNINGS": "always"}
    hooks = ["--on-startup", "worker_app:open_client", "--on-shutdown", "worker_app:close_client"]
    args = ["worker", queue.url, "worker_app:kept_client_handler", *hooks]
    proc = popen_cli(
        [*args, "--wait-seconds", "0", "--max-empty-polls", "2", "--log-level", "debug"], env
    )
    _, err = await asyncio.to_thread(proc.communicate, timeout=120)
    assert proc.returncode == 0, err
    lines = ledger.read_text().split()
    assert lines[0] == "startup" and lines[-1] == "shutdown"
    assert sorted(int(n) for n in lines[1:-1]) == list(range(15))
    assert "Unclosed" not in err and "DEBUG" in err  # --log-level debug shows debug lines


def test_a_hook_that_is_not_there_is_one_line() -> None:
    result = run_cli("worker", "http://q", "json:dumps", "--on-shutdown", "nope")
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "--on-shutdown: expected module:function, got 'nope'" in result.stderr


async def test_sigterm_ends_an_idle_long_poll(base_config: Config, tmp_path: Path) -> None:
    queue = await make_queue(base_config, visibility_timeout=30)
    env = worker_env(base_config, tmp_path / "ledger")
    proc = start_worker(queue, env, "--wait-seconds", "20")
    await asyncio.sleep(3)  # the worker is up and waiting in its first long poll
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.to_thread(proc.communicate, timeout=60)
    assert proc.returncode == 0, err
    assert "stopping: long poll cancelled" in err and "1 long polls cancelled" in err
    assert "Traceback" not in err


def test_the_blocking_worker_runs_its_hooks_around_polling(
    base_config: Config, queue: Queue
) -> None:
    from sqs_cluster import sync

    calls: list[str] = []
    with sync.MessageClient(base_config) as client:
        client.send_message_batch(queue.url, [1, 2, 3])

        def handle(message: sync.ReceivedMessage[int]) -> None:
            calls.append(f"message {message.body}")

        def handler(event: dict[str, Any], context: Any) -> sync.PartialBatchResponse:
            return client.safe_process_batch(event, handle)

        options = sync.WorkerOptions(
            wait_seconds=0,
            max_empty_polls=1,
            on_startup=lambda: calls.append("startup"),
            on_shutdown=lambda: calls.append("shutdown"),
        )
        stats = sync.Worker(client, queue.url, handler, options).run()
    assert calls[0] == "startup" and calls[-1] == "shutdown"
    assert sorted(calls[1:-1]) == ["message 1", "message 2", "message 3"]
    assert stats.succeeded == 3


def test_worker_options_refuse_a_hook_that_cannot_be_called() -> None:
    with pytest.raises(ValidationError, match="on_shutdown: expected a callable or None"):
        WorkerOptions(on_shutdown="app:close")  # type: ignore[arg-type]
