"""``import sqs_cluster`` stays light: the SDK is imported when the first client opens."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = (
    "botocore",
    "aiobotocore",
    "boto3",
    "aiohttp",
    "opentelemetry",
    "aws_embedded_metrics",
    "aws_lambda_powertools",
)


@pytest.mark.parametrize("module", ["sqs_cluster", "sqs_cluster.sync"])
def test_importing_the_library_does_not_import_the_sdk(module: str) -> None:
    code = f"import sys, {module}; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert loaded == []
