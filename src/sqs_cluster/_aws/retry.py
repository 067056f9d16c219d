"""Jittered back-off for the retries botocore does not do: partial batch failures and conflicts."""

from __future__ import annotations

import asyncio
import random

BASE_DELAY = 0.05
MAX_DELAY = 2.0


def backoff_delay(attempt: int, *, base: float = BASE_DELAY, cap: float = MAX_DELAY) -> float:
    """Full-jitter exponential delay for retry ``attempt`` (0-based)."""
    return random.uniform(0, min(cap, base * (2**attempt)))


async def sleep_backoff(attempt: int) -> None:
    """Sleep the jittered delay for ``attempt``."""
    await asyncio.sleep(backoff_delay(attempt))
