"""The README's main job: ``sqs-cluster demo`` on a fresh embedded local AWS."""

from __future__ import annotations

import os
import subprocess
import sys


def test_demo_runs_a_cluster_end_to_end() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SQS_CLUSTER_")}
    result = subprocess.run(
        [sys.executable, "-m", "sqs_cluster._cli.main", "demo", "--tasks", "60", "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "on_cluster_complete:  ran 1 time(s)" in out
    assert "expected 210630: exact" in out  # 3 * sum(n * n for n in range(60))
    assert "first-try failures:   6 (each retried and completed)" in out
    assert "sqs.SendMessageBatch" in out and "per task" in out
