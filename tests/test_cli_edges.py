"""The command line as an operator meets it: `local`, progress in a pipe and at 80 columns,
`status --json`, and one clear line for each mistake a new user makes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sqs_cluster import Config, MessageClient, Status, WorkerOptions, run_worker

from .conftest import make_queue, receive_event

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


def cli_env(config: Config, **extra: str) -> dict[str, str]:
    """The environment of a shell pointed at the test server's table and bucket."""
    return clean_env(
        SQS_CLUSTER_TABLE=config.table,
        SQS_CLUSTER_BUCKET=config.bucket or "",
        SQS_CLUSTER_ENDPOINT_URL=config.endpoint_url or "",
        SQS_CLUSTER_REGION="us-east-1",
        **extra,
    )


def run_cli(args: list[str], env: dict[str, str], timeout: float = 120) -> Any:
    return subprocess.run(
        [*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def run_in_terminal(args: list[str], env: dict[str, str], columns: int = 80) -> tuple[int, str]:
    """Run the CLI in a pseudo-terminal ``columns`` wide; its exit code and all it wrote."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {k: v for k, v in env.items() if k not in {"COLUMNS", "LINES", "TERM"}}
    proc = subprocess.Popen([*CLI, *args], stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    chunks: list[bytes] = []
    try:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the terminal closed: the command exited
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(master)
        proc.wait(timeout=60)
    return proc.returncode, b"".join(chunks).decode("utf-8", "replace")


def screen_lines(output: str) -> list[str]:
    """What each drawn line shows: escape sequences dropped, carriage returns honoured."""
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output)
    return [line.rstrip("\r").split("\r")[-1] for line in text.split("\n")]


async def finished_cluster(config: Config, tasks: int) -> Any:
    """A cluster of ``tasks`` tasks that a worker ran to the end."""
    queue = await make_queue(config, visibility_timeout=30)
    async with MessageClient(config) as client:
        key = await client.create_message_cluster(queue.url, list(range(tasks)), omit_globals=True)

        async def handler(event: dict[str, Any], context: Any) -> Any:
            async def one(message: Any) -> int:
                return int(message.task)

            return await client.safe_process_batch(event, one)

        options = WorkerOptions(wait_seconds=0, max_empty_polls=2)
        await run_worker(queue.url, handler, client=client, options=options)
    return key


async def test_status_watch_in_an_80_column_terminal(base_config: Config) -> None:
    key = await finished_cluster(base_config, 12)
    env = cli_env(base_config)
    code, out = await asyncio.to_thread(run_in_terminal, ["status", key.id, "--watch"], env)
    assert code == 0, out
    lines = [line.rstrip() for line in screen_lines(out)]
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    assert any(line.startswith("COMPLETE  done 12/12  failed 0  left 0") for line in lines), out
    assert lines[-2:] == [f"cluster {key.id} ended COMPLETE", ""], lines
    assert "-:--:--" not in out and "12/12 12" not in out


async def test_status_once_is_labelled_and_has_no_placeholders(
    base_config: Config,
) -> None:
    queue = await make_queue(base_config)
    async with MessageClient(base_config) as client:
        key = await client.create_message_cluster(queue.url, list(range(7)), omit_globals=True)
    result = await asyncio.to_thread(run_cli, ["status", key.id], cli_env(base_config))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("IN PROGRESS  done 0/7  failed 0  left 7  elapsed "), (
        result.stdout
    )
    assert "-:--" not in result.stdout and "eta" not in result.stdout  # nothing counted yet


async def test_status_json(base_config: Config) -> None:
    key = await finished_cluster(base_config, 5)
    result = await asyncio.to_thread(run_cli, ["status", key.p_key, "--json"], cli_env(base_config))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["cluster"] == key.id and data["status"] == "COMPLETE"
    assert (data["total"], data["done"], data["failed"], data["left"]) == (5, 5, 0, 0)
    assert data["elapsed_seconds"] >= 0 and data["eta_seconds"] is None


def test_status_of_an_unknown_cluster_names_it_plainly(base_config: Config) -> None:
    result = run_cli(["status", "no-such-cluster"], cli_env(base_config))
    assert result.returncode == 1
    assert result.stderr.startswith("sqs-cluster: error: CLUSTER: no cluster 'no-such-cluster'")
    assert base_config.table in result.stderr
    assert "RecordKey(" not in result.stderr and "Traceback" not in result.stderr


def test_demo_in_a_pipe_uses_the_embedded_aws_whatever_the_environment_says() -> None:
    # Settings a user left in their shell: the demo must neither use nor touch them.
    env = clean_env(
        SQS_CLUSTER_TABLE="my-real-table", SQS_CLUSTER_ENDPOINT_URL="http://127.0.0.1:9"
    )
    result = run_cli(["demo", "--tasks", "40", "--workers", "2"], env, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    out = result.stdout
    assert "using embedded local AWS: endpoint http://127.0.0.1:" in out
    assert "my-real-table" not in out and "\n  queue http://127.0.0.1:" in out
    progress = [line for line in out.splitlines() if "  done " in line]
    assert progress[-1].startswith("COMPLETE  done 40/40  failed 0  left 0")  # whole, last
    assert "\x1b[" not in out  # no terminal codes in a pipe


def test_demo_stops_at_once_on_sigint_with_a_summary() -> None:
    proc = start_cli(["demo", "--tasks", "3000", "--workers", "1"], clean_env())
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "IN PROGRESS  done" in line:
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        stop_by_pid(proc)
    assert proc.returncode == 130, err
    assert "interrupted after" in out and "  done " in out.splitlines()[-1]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err


def test_init_without_a_region_says_how_to_set_one(tmp_path: Path) -> None:
    env = clean_env(AWS_CONFIG_FILE=str(tmp_path / "none"))
    env = {k: v for k, v in env.items() if k not in {"AWS_REGION", "AWS_DEFAULT_REGION"}}
    result = run_cli(["init", "--table", "t"], env)
    assert result.returncode == 1
    assert result.stderr == (
        "sqs-cluster: error: region: no AWS region is set; pass --region or set AWS_REGION\n"
    )


def test_missing_credentials_on_a_local_endpoint_say_any_will_do(
    base_config: Config, tmp_path: Path
) -> None:
    env = clean_env(
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    env = {k: v for k, v in env.items() if not k.startswith(("AWS_ACCESS", "AWS_SECRET"))}
    env.pop("AWS_SESSION_TOKEN", None)
    env.pop("AWS_PROFILE", None)
    args = ["--region", "us-east-1", "--endpoint-url", base_config.endpoint_url or ""]
    result = run_cli(["init", "--table", "t", *args], env)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "no AWS credentials found" in result.stderr
    assert "AWS_ACCESS_KEY_ID=local" in result.stderr and "Traceback" not in result.stderr


def test_init_says_which_queue_attributes_differ(base_config: Config) -> None:
    env = cli_env(base_config)
    queue = f"q-{os.urandom(6).hex()}"
    first = run_cli(["init", "--queue", queue, "--visibility-timeout", "30"], env)
    assert first.returncode == 0, first.stderr
    again = run_cli(["init", "--queue", queue, "--max-receive-count", "5"], env)
    assert again.returncode == 1
    assert again.stderr.startswith(f"sqs-cluster: error: queue: {queue!r} exists with other ")
    assert "VisibilityTimeout is 30, asked 360" in again.stderr
    assert "RedrivePolicy is maxReceiveCount 3 to " in again.stderr
    assert "asked maxReceiveCount 5 to " in again.stderr
    same = run_cli(["init", "--queue", queue, "--visibility-timeout", "30"], env)
    assert same.returncode == 0, same.stderr  # still idempotent with the same attributes


def test_a_mistyped_variable_is_named_with_the_closest_one(base_config: Config) -> None:
    env = cli_env(base_config, SQS_CLUSTER_TABEL="orders")
    result = run_cli(["status", "no-such-cluster"], env)
    assert (
        "sqs-cluster: warning: SQS_CLUSTER_TABEL is not a setting sqs-cluster reads (ignored); "
        "did you mean SQS_CLUSTER_TABLE?\n"
    ) in result.stderr


def test_config_from_env_warns_about_an_unknown_variable() -> None:
    env = {"SQS_CLUSTER_TABLE": "t", "SQS_CLUSTER_LEASE_SECOND": "60", "SQS_CLUSTER_FAULTS": ""}
    with pytest.warns(UserWarning, match=r"SQS_CLUSTER_LEASE_SECOND .*SQS_CLUSTER_LEASE_SECONDS\?"):
        config = Config.from_env(env)
    assert config.lease_seconds == 300  # ignored, as the warning says


async def test_a_received_message_shows_its_body_once(base_config: Config, sqs: Any) -> None:
    queue = await make_queue(base_config)
    async with MessageClient(base_config) as client:
        await client.send_message(queue.url, {"order": "a-unique-order-id"})
        event = receive_event(sqs, queue.url, max_messages=1)
        message = client.read_sqs_record(event["Records"][0])
    assert message.body == {"order": "a-unique-order-id"}
    assert message.raw_body == '{"order":"a-unique-order-id"}'  # still there, not in the repr
    assert repr(message).count("a-unique-order-id") == 1


def test_the_laptop_script_of_the_worker_guide() -> None:
    examples = Path(__file__).parent.parent / "docs" / "examples"
    env = clean_env(
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    )
    args = ["--wait-seconds", "0", "--max-empty-polls", "2", "--retry-base", "60"]
    result = subprocess.run(
        ["bash", "guide_laptop.sh", *args],
        cwd=examples,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "batch: 3 received, 1 failed" in result.stderr
    assert result.stdout == ""  # the exports went to the file the script sourced
    assert "order 2: quantity must be positive" in result.stderr  # logged with its record
    assert "Unclosed" not in result.stderr


def test_the_docs_site_loads_its_diagram_script_from_itself() -> None:
    root = Path(__file__).parent.parent
    mkdocs = (root / "mkdocs.yml").read_text()
    assert "  - javascripts/mermaid.min.js" in mkdocs  # extra_javascript: no CDN at view time
    script = (root / "docs" / "javascripts" / "mermaid.min.js").read_text()
    assert 'globalThis["mermaid"]' in script  # the theme uses this global instead of fetching
    assert (root / "docs" / "javascripts" / "mermaid.LICENSE.txt").exists()


async def test_ctrl_c_stops_watching_at_once_with_a_summary(base_config: Config) -> None:
    queue = await make_queue(base_config)
    async with MessageClient(base_config) as client:
        key = await client.create_message_cluster(queue.url, list(range(4)), omit_globals=True)
    proc = start_cli(["status", key.id, "--watch"], cli_env(base_config))
    try:
        assert proc.stdout is not None
        first = await asyncio.to_thread(proc.stdout.readline)  # in a pipe: a plain line
        assert first.startswith("IN PROGRESS  done 0/4  failed 0  left 4"), first
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.to_thread(proc.communicate, timeout=60)
    finally:
        stop_by_pid(proc)
    assert proc.returncode == 130, err
    assert out.splitlines()[-1] == f"stopped watching cluster {key.id}; it goes on"
    assert "Traceback" not in err
