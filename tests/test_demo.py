"""The README's main job: ``sqs-cluster demo`` on a fresh embedded local AWS."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def demo(tasks: int, workers: int, timeout: float) -> str:
    """``sqs-cluster demo`` in a fresh process on its own embedded local AWS; its output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SQS_CLUSTER_")}
    command = [sys.executable, "-m", "sqs_cluster._cli.main", "demo"]
    result = subprocess.run(
        [*command, "--tasks", str(tasks), "--workers", str(workers)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    return result.stdout


def test_demo_runs_a_cluster_end_to_end() -> None:
    out = demo(60, 2, timeout=300)
    assert "on_cluster_complete:   ran 1 time(s)" in out
    assert "expected 210630: exact" in out  # 3 * sum(n * n for n in range(60))
    assert "first-try failures:    6 (each retried and completed)" in out
    assert "sqs.SendMessageBatch" in out and "per task" in out


@pytest.mark.slow
@pytest.mark.parametrize("run", range(3))
def test_the_demo_completes_at_2000_tasks_and_8_workers_every_time(run: int) -> None:
    """The scenario that once stalled at 1,998 of 2,000 on a concurrent local server. With
    ``-n 4`` the runs go side by side, on a busy machine as it was then."""
    out = demo(2000, 8, timeout=900)
    assert "on_cluster_complete:   ran 1 time(s)" in out
    assert "expected 7994001000: exact" in out  # 3 * sum(n * n for n in range(2000))
    assert "tasks failed for good: 0" in out


def test_the_summary_puts_every_value_in_one_column() -> None:
    from sqs_cluster._cli.demo import DemoResult, print_summary

    lines: list[str] = []
    fields = {f: 0 for f in DemoResult.__dataclass_fields__}
    result = DemoResult(**{**fields, "requests": {"sqs.SendMessageBatch": 3}})  # type: ignore[arg-type]
    print_summary(result, lines.append)
    rows = [line for line in lines if line and not line.startswith("  ")]
    assert len(rows) == 7 and {len(r) - len(r[23:]) for r in rows} == {23}
    assert all(r[22] == " " and r[23] != " " for r in rows), rows  # labels end, values start
