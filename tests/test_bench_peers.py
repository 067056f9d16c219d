"""The Powertools comparison benchmark (benchmarks/peers_powertools.py), run tiny in-process.

Both sides against the session's local server: every message handled once on the first
delivery, never on the duplicate one, and the result document has the keys the report reads.
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sqs_cluster.local import LocalAWS

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
MESSAGES = 20


@pytest.fixture(scope="module")
def bench() -> Any:
    """The benchmark module (benchmarks/ is not a package: its modules import each other)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module("peers_powertools")
    finally:
        sys.path.remove(str(BENCHMARKS))


async def test_both_sides_handle_every_message_once(local_aws: LocalAWS, bench: Any) -> None:
    options = bench.Options(messages=MESSAGES, concurrency=1, rounds=1)
    started = time.time()
    result = await bench.run(options, local_aws.endpoint_url, local_aws.pid)

    assert result["ok"], result["checks"]
    for side in ("sqs-cluster", "powertools"):
        checks = result["checks"][side]
        assert checks["first_handler_runs"] == [MESSAGES]
        assert checks["duplicate_handler_runs"] == [0]
        assert checks["batch_item_failures"] == [0]
        assert checks["every_message_handled_once"]
        summary = result["summary"][side]
        # each side writes twice per message (claim, then outcome) and once per duplicate
        assert summary["first"]["write_units_per_message"] >= 2.0
        assert summary["duplicate"]["handler_runs"] == 0
        assert summary["duplicate"]["write_units_per_message"] == 1.0

    doc = bench.build_result(options, result, started, "test")
    assert {
        "benchmark",
        "command",
        "machine",
        "src_digest",
        "messages",
        "batch_size",
        "concurrency",
        "rounds",
        "summary",
        "checks",
        "per_round",
        "ok",
    } <= set(doc)
    assert doc["benchmark"] == "peers_powertools"
    for side in ("sqs-cluster", "powertools"):
        assert set(doc["summary"][side]) == {"send", "first", "duplicate", "cold_first"}
        for phase in ("send", "first", "duplicate"):
            assert {
                "requests_per_message",
                "requests_per_message_by_op",
                "write_units_per_message",
                "writes_per_message_by_op",
                "client_cpu_us_per_message",
                "wall_ms_per_message",
                "handler_runs",
            } <= set(doc["summary"][side][phase])
