"""Server-free edge cases of records and clusters: exact percentages."""

from __future__ import annotations

import pytest

from sqs_cluster import Config
from sqs_cluster._clusters.model import tolerated_count


def percentages() -> list[tuple[str, int, int]]:
    """Every one- and two-decimal percentage from 0% to 100%, as text and as an exact
    fraction ``numerator / 100 / scale``."""
    cases = []
    for hundredths in range(0, 10_001):
        whole, part = divmod(hundredths, 100)
        cases.append((f"{whole}.{part:02d}%", hundredths, 10_000))
        if part % 10 == 0:
            cases.append((f"{whole}.{part // 10}%", hundredths, 10_000))
    return cases


@pytest.mark.parametrize("total", [1, 3, 7, 100, 750, 999, 12_345, 100_000])
def test_percentages_are_floored_exactly(total: int) -> None:
    wrong = [
        (text, tolerated_count(text, total), total * num // den)
        for text, num, den in percentages()
        if tolerated_count(text, total) != total * num // den
    ]
    assert not wrong, f"{len(wrong)} percentages of {total} rounded wrongly, e.g. {wrong[:5]}"


def test_the_reported_case() -> None:
    assert tolerated_count("9.2%", 750) == 69
    assert tolerated_count("100%", 750) == 750
    assert tolerated_count("0%", 750) == 0


def test_completed_messages_are_kept_as_long_as_a_queue_keeps_a_copy() -> None:
    assert Config(table="t").completed_retention_seconds >= 14 * 24 * 3600  # SQS's maximum
