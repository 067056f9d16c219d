"""The command line as an operator meets it: `local`, progress in a pipe and at 80 columns,
`status --json`, and one clear line for each mistake a new user makes."""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import socket
import subprocess
import sys
from typing import Any

import pytest

from sqs_cluster import Config, MessageClient, Status, WorkerOptions, run_worker

CLI = [sys.executable, "-m", "sqs_cluster._cli.main"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without SQS_CLUSTER_* or AWS endpoint settings, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SQS_CLUSTER_") and k not in {"AWS_ENDPOINT_URL"}
    }
    env.update(extra)
    return env


def read_exports(proc: subprocess.Popen[str]) -> dict[str, str]:
    """The ``export NAME=value`` lines `sqs-cluster local` prints, up to the DLQ's."""
    assert proc.stdout is not None
    exports: dict[str, str] = {}
    for line in proc.stdout:
        assert line.startswith(("export ", "# ")), line  # stdout is valid shell
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").strip().partition("=")
            exports[name] = shlex.split(value)[0]
        if "DLQ_URL" in exports:
            return exports
    raise AssertionError(f"no exports; stderr: {proc.stderr.read() if proc.stderr else ''}")


def start_cli(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def stop_by_pid(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


async def test_local_serves_until_sigint_and_its_exports_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = free_port()
    proc = start_cli(["local", "--port", str(port)], clean_env())
    try:
        exports = await asyncio.to_thread(read_exports, proc)
        assert exports["SQS_CLUSTER_ENDPOINT_URL"] == f"http://127.0.0.1:{port}"
        for name, value in exports.items():  # what the other shell would do
            monkeypatch.setenv(name, value)
        processed: list[Any] = []

        async with MessageClient(Config.from_env()) as client:
            key = await client.send_message(exports["QUEUE_URL"], {"hello": "laptop"})

            async def handler(event: dict[str, Any], context: Any) -> Any:
                async def one(message: Any) -> None:
                    processed.append(message.body)

                return await client.safe_process_batch(event, one)

            options = WorkerOptions(wait_seconds=0, max_empty_polls=1)
            await run_worker(exports["QUEUE_URL"], handler, client=client, options=options)
            record = await client.get_message_record(key, consistent_read=True)
        assert processed == [{"hello": "laptop"}]
        assert record.status is Status.COMPLETE
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.to_thread(proc.communicate, timeout=60)
        assert proc.returncode == 0, err
        assert "Traceback" not in err + out and "KeyboardInterrupt" not in err
        assert out.rstrip().endswith("# stopped; its data is gone")
    finally:
        stop_by_pid(proc)


def test_local_on_a_taken_port_is_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*CLI, "local", "--port", str(port)],
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and f"--port: cannot listen on 127.0.0.1:{port}" in (
        result.stderr
    )
