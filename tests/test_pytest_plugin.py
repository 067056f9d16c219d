"""The pytest plugin as a user meets it: a test file in a fresh directory, run in a subprocess."""

from __future__ import annotations

import os
from importlib.metadata import entry_points
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"

APP = '''
"""A user's Lambda function: orders with a non-positive quantity fail."""

import asyncio

from sqs_cluster import MessageClient


async def handle(message):
    if message.body["quantity"] <= 0:
        raise ValueError("quantity must be positive")


def lambda_handler(event, context):
    async def run():
        async with MessageClient() as client:  # Config.from_env()
            return await client.safe_process_batch(event, handle)

    return asyncio.run(run())
'''

THREE_LINES = """
from app import lambda_handler


def test_handler(sqs_cluster_event):
    event = sqs_cluster_event([{"id": 1, "quantity": 2}])
    assert lambda_handler(event, None) == {"batchItemFailures": []}
"""

MORE = """
import json
import os
from pathlib import Path

import pytest
from app import lambda_handler

from sqs_cluster import Config, Status


def test_failures_come_back(sqs_cluster_event):
    event = sqs_cluster_event([{"id": 1, "quantity": 2}, {"id": 2, "quantity": 0}])
    bad = [r["messageId"] for r in event["Records"] if json.loads(r["body"])["id"] == 2]
    assert lambda_handler(event, None) == {"batchItemFailures": [{"itemIdentifier": bad[0]}]}


def test_environment_names_the_resources(
    sqs_cluster_resources, sqs_cluster_local, sqs_cluster_config
):
    config = Config.from_env()
    assert config == sqs_cluster_resources.config == sqs_cluster_config
    assert config.endpoint_url == sqs_cluster_local.endpoint_url
    assert os.environ["AWS_ACCESS_KEY_ID"] == "testing"
    Path(os.environ["PID_FILE"]).write_text(str(sqs_cluster_local.pid))


def test_each_test_has_its_own_queue(sqs_cluster_resources, sqs_cluster_event):
    assert sqs_cluster_event.queue_url == sqs_cluster_resources.queue_url
    assert sqs_cluster_event.receive()["Records"] == []  # nothing left by other tests


@pytest.mark.sqs_cluster(fifo=True, max_receive_count=1)
def test_fifo_queue(sqs_cluster_event, sqs_cluster_sync_client):
    event = sqs_cluster_event([{"id": n, "quantity": n - 1} for n in range(3)], group_id="g")
    assert sqs_cluster_event.queue_url.endswith(".fifo")
    assert [json.loads(r["body"])["id"] for r in event["Records"]] == [0, 1, 2]
    failed = lambda_handler(event, None)["batchItemFailures"]  # the group stops at id 0
    assert len(failed) == 3
    record = sqs_cluster_sync_client.read_sqs_record(event["Records"][0]).get_message_record()
    assert record.status_code == 500  # max_receive_count=1: the first failure is final


def test_untracked_messages(sqs_cluster_event, sqs_cluster_sync_client):
    event = sqs_cluster_event(["plain text"], tracked=False)
    (message,) = [sqs_cluster_sync_client.read_sqs_record(r) for r in event["Records"]]
    assert not message.tracked and message.body == "plain text"


@pytest.mark.asyncio
async def test_async_client(sqs_cluster_event, sqs_cluster_client):
    event = sqs_cluster_event([{"id": 7, "quantity": 1}], meta={"tenant": "acme"})
    message = sqs_cluster_client.read_sqs_record(event["Records"][0])
    record = await message.get_message_record()
    assert record.status is Status.PRE_FLIGHT and record.meta == {"tenant": "acme"}


@pytest.mark.sqs_cluster(visibility=3)
def test_unknown_marker_option(sqs_cluster_resources):
    pass
"""

LAZY = """
import sys


def test_nothing_starts_unless_asked(request):
    manager = request.config.pluginmanager
    assert manager.has_plugin("sqs_cluster") or manager.has_plugin("sqs_cluster.pytest_plugin")
    assert "sqs_cluster.local" not in sys.modules
"""

INI = """
[pytest]
asyncio_default_fixture_loop_scope = function
filterwarnings =
    error
    ignore::DeprecationWarning:botocore.*
"""


def plugin_args() -> list[str]:
    """Load the plugin by its entry point; by module only if the package is not installed."""
    if any(e.value == "sqs_cluster.pytest_plugin" for e in entry_points(group="pytest11")):
        return []
    return ["-p", "sqs_cluster.pytest_plugin"]


def test_entry_point_is_declared() -> None:
    (entry,) = [e for e in entry_points(group="pytest11") if e.name == "sqs_cluster"]
    assert entry.value == "sqs_cluster.pytest_plugin"


def test_a_users_three_line_test_passes(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One session: the three lines, more cases, and the testing guide's tests (docs/examples)."""
    pytester.makeini(INI)
    pytester.makepyfile(
        app=APP,
        test_app=THREE_LINES,
        test_more=MORE,
        guide_async_lambda=(EXAMPLES / "guide_async_lambda.py").read_text(),
        test_guide_testing=(EXAMPLES / "guide_testing.py").read_text(),
    )
    pid_file = pytester.path / "server.pid"
    monkeypatch.setenv("PID_FILE", str(pid_file))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(pytester.path), os.environ.get("PYTHONPATH", "")])
    )
    result = pytester.runpytest_subprocess(*plugin_args(), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=10, errors=1)
    result.stdout.fnmatch_lines(["*UsageError*sqs_cluster*visibility_timeout*"])
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):  # the session's server was stopped
        os.kill(pid, 0)


def test_the_plugin_stays_idle_unless_a_fixture_is_requested(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_lazy=LAZY)
    result = pytester.runpytest_subprocess(*plugin_args(), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
