"""The fault matrix: every public operation of MessageClient (a test keeps it that way) under every
fault class that can reach it, at a 20% rate (seeded). Each cell either succeeds with exact
results or raises a clear error saying what was done; a retry then completes it, and the final
state is checked exactly. The rows are in matrix.py.
"""

from __future__ import annotations

import pytest

from sqs_cluster import MessageClient
from sqs_cluster.testing import FaultInjector, FaultKind

from ..faults import fresh_queue
from .matrix import DELAY_SCALE, PREFLIGHT_OPERATIONS, RATE, SCENARIOS, SEED, Cell, matrix


@pytest.mark.parametrize(("operation", "kind"), matrix())
async def test_fault_matrix(
    operation: str, kind: FaultKind, clean: MessageClient, faulty: MessageClient
) -> None:
    scenario = SCENARIOS[operation]
    injector = FaultInjector(SEED, {kind: RATE}, delay_scale=DELAY_SCALE)
    with injector.attached(faulty):
        for _ in range(10):  # rounds, each on a fresh queue, until a fault landed
            cell = Cell(kind, clean, faulty, await fresh_queue(clean), injector)
            await scenario.run(cell)
            if injector.count():
                break
    assert injector.count() > 0, (
        f"no {kind.value} fault reached {operation}: the cell proves nothing"
    )
    undeclared = set(injector.calls) - scenario.operations - PREFLIGHT_OPERATIONS
    assert not undeclared, f"{operation} issues undeclared operations: {sorted(undeclared)}"
