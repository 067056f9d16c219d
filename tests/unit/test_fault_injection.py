"""The fault injector's configuration and the fault matrix's coverage, without a server (the
injector at work is tested in tests/fault_injection/)."""

from __future__ import annotations

import pytest

from sqs_cluster.testing import ENV_VAR, FaultInjector, FaultKind

from ..fault_injection.matrix import NOT_IN_MATRIX, SCENARIOS, public_operations


def test_environment_configuration_round_trips() -> None:
    injector = FaultInjector(
        7,
        {FaultKind.THROTTLING: 0.2, "read_timeout": 0.05},
        ["dynamodb.UpdateItem", "SendMessageBatch"],
        limit=3,
        delay_scale=0.5,
    )
    again = FaultInjector.from_env({ENV_VAR: injector.to_env()})
    assert again is not None and again.to_env() == injector.to_env()
    compact = FaultInjector.parse("seed=7, throttling=0.2; ops=sqs.SendMessageBatch|GetItem")
    assert compact.rates == {FaultKind.THROTTLING: 0.2}
    assert compact.operations == frozenset({"sqs.SendMessageBatch", "GetItem"})
    assert FaultInjector.from_env({}) is None and FaultInjector.from_env({ENV_VAR: " "}) is None
    for bad in ("throttling=2", "nonsense=0.1", "seed", '{"rates": {"throttling": -1}}'):
        with pytest.raises(ValueError):
            FaultInjector.parse(bad)
    with pytest.raises(ValueError, match="operations"):
        FaultInjector(1, {}, ["not an op"])


def test_the_matrix_covers_every_public_operation() -> None:
    covered = set().union(*(s.covers for s in SCENARIOS.values()))
    public = public_operations()
    assert {"send_message", "iter_tasks", "aclose"} <= public  # the introspection sees them
    missing = public - covered - NOT_IN_MATRIX.keys()
    assert not missing, f"public operations in no fault matrix row (nor exempted): {missing}"
    assert covered <= public, f"rows cover what is not a public operation: {covered - public}"
    assert not covered & NOT_IN_MATRIX.keys(), (
        "an exempted operation is covered: drop its exemption"
    )
