"""Retry delays and the deadline margin, computed without a server."""

from __future__ import annotations

import pytest

from sqs_cluster import Backoff, RetryAfter
from sqs_cluster._messages.deadline import Deadline
from sqs_cluster._messages.retry import MAX_VISIBILITY_SECONDS, retry_delay


def test_the_back_off_doubles_per_receive_up_to_its_cap() -> None:
    backoff = Backoff(base_seconds=2, max_seconds=60, jitter=False)
    assert [backoff.delay(n) for n in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]
    assert backoff.delay(0) == 2  # a record without a receive count counts as the first


def test_no_delay_exceeds_sqs_limit_however_many_receives() -> None:
    backoff = Backoff(base_seconds=1, max_seconds=MAX_VISIBILITY_SECONDS, jitter=False)
    assert backoff.delay(10_000) == MAX_VISIBILITY_SECONDS == 43200


def test_full_jitter_draws_between_zero_and_the_back_off() -> None:
    backoff = Backoff(base_seconds=100, max_seconds=100)
    draws = [backoff.delay(3) for _ in range(200)]
    assert all(0 <= d <= 100 for d in draws)
    assert len(set(draws)) > 10  # spread out, not one value


def test_retry_after_wins_and_on_filters_the_back_off() -> None:
    backoff = Backoff(base_seconds=8, jitter=False, on=(TimeoutError,))
    assert retry_delay(RetryAfter(2.1), 5, backoff) == 3  # whole seconds, rounded up
    assert retry_delay(RetryAfter(2), 5, None) == 2
    assert retry_delay(TimeoutError(), 1, backoff) == 8
    assert retry_delay(ValueError(), 1, backoff) is None
    assert retry_delay(ValueError(), 1, None) is None
    assert Backoff(on=KeyError).on == (KeyError,)


def test_retry_after_says_why() -> None:
    assert str(RetryAfter(5, "rate limited")) == "rate limited"
    assert str(RetryAfter(5)) == "retry after 5 s"


@pytest.mark.parametrize(
    ("left_ms", "margin", "expected_ms"),
    [
        (120_000, None, 5_000),  # the default: 5 s
        (3_000, None, 300),  # a 3 s function keeps a tenth
        (3_000, 2.5, 2_500),  # a margin given is kept as it is
        (None, 5.0, None),  # no context: no deadline
    ],
)
def test_the_default_margin_fits_short_invocations(
    left_ms: int | None, margin: float | None, expected_ms: int | None
) -> None:
    deadline = Deadline(lambda: left_ms, margin)
    assert deadline.margin_ms == expected_ms
    assert deadline.allows_start()


def test_a_deadline_stops_starts_once_under_the_margin() -> None:
    left = {"ms": 10_000}
    deadline = Deadline(lambda: left["ms"], 2.0)
    assert deadline.allows_start()
    left["ms"] = 1_999
    assert not deadline.allows_start()
    assert Deadline(lambda: 0, 0).allows_start()  # 0 turns it off
