"""Conditional writes: the one place where a failed DynamoDB condition becomes an answer.

The exactly-once algorithm is its condition expressions. Every conditional write of the
library goes through :func:`update_if`, :func:`put_if`, :func:`delete_if` or
:func:`transact_if`, which return whether the write applied and the item as it stood, so a
refused write and a lost answer are handled the same way everywhere. Any other error
(throttling after botocore's retries, a 5xx, a reset) is raised as it is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .clients import AWS, error_code

CONDITION_FAILED = "ConditionalCheckFailedException"
TRANSACTION_CANCELED = "TransactionCanceledException"


@dataclass(frozen=True)
class Written:
    """What a conditional write did.

    ``applied``: the condition held and the write landed. ``item``: when applied, the
    attributes the request asked back (``ReturnValues``); when refused, the item as it stood
    (asked with ``ReturnValuesOnConditionCheckFailure="ALL_OLD"``), None if absent or not asked.
    """

    applied: bool
    item: dict[str, Any] | None = None


def _refused(exc: BaseException) -> Written:
    item: dict[str, Any] | None = getattr(exc, "response", {}).get("Item")
    return Written(False, item)


async def update_if(aws: AWS, params: dict[str, Any]) -> Written:
    """UpdateItem with a ``ConditionExpression``; a failed condition is an answer."""
    return await _write_if(aws, aws.ddb.update_item, params)


async def put_if(aws: AWS, params: dict[str, Any]) -> Written:
    """PutItem with a ``ConditionExpression``; a failed condition is an answer."""
    return await _write_if(aws, aws.ddb.put_item, params)


async def delete_if(aws: AWS, params: dict[str, Any]) -> Written:
    """DeleteItem with a ``ConditionExpression``; a failed condition is an answer."""
    return await _write_if(aws, aws.ddb.delete_item, params)


async def _write_if(
    aws: AWS, operation: Callable[..., Awaitable[Any]], params: dict[str, Any]
) -> Written:
    try:
        async with aws.slot():
            resp = await operation(**params)
    except Exception as exc:
        if error_code(exc) != CONDITION_FAILED:
            raise
        return _refused(exc)
    return Written(True, resp.get("Attributes"))


async def transact_if(aws: AWS, actions: list[dict[str, Any]]) -> Written:
    """TransactWriteItems whose deciding condition is on its first action.

    Refused (with that action's item as it stood, when it asks for it) when the first
    action's condition failed. A cancellation for any other reason, a transaction conflict
    included, is raised: see :func:`conflicted`.
    """
    try:
        async with aws.slot():
            await aws.ddb.transact_write_items(TransactItems=actions)  # type: ignore[arg-type]
    except Exception as exc:
        reasons = _reasons(exc)
        if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
            return Written(False, reasons[0].get("Item"))
        raise
    return Written(True)


async def transact_reasons(aws: AWS, actions: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """TransactWriteItems whose every action may carry a condition: None when it applied,
    else the cancellation reasons, one per action in order (``Code``, and ``Item`` as it stood
    for an action that asked with ``ReturnValuesOnConditionCheckFailure``). Any other error is
    raised as it is."""
    try:
        async with aws.slot():
            await aws.ddb.transact_write_items(TransactItems=actions)  # type: ignore[arg-type]
    except Exception as exc:
        reasons = _reasons(exc)
        if error_code(exc) == TRANSACTION_CANCELED and len(reasons) == len(actions):
            return reasons
        raise
    return None


def condition_failed(reason: dict[str, Any]) -> bool:
    """Whether a cancellation reason of :func:`transact_reasons` is its action's condition."""
    return reason.get("Code") == "ConditionalCheckFailed"


def contended(reason: dict[str, Any]) -> bool:
    """Whether a cancellation reason is contention on its item (another transaction on it, or
    its write budget spent): the same transaction is worth trying again after a pause."""
    return reason.get("Code") in ("TransactionConflict", "ThrottlingError")


def conflicted(exc: BaseException) -> bool:
    """True when a transaction was cancelled by a conflicting write: worth trying again."""
    codes = [reason.get("Code") for reason in _reasons(exc)]
    return error_code(exc) == TRANSACTION_CANCELED and "TransactionConflict" in codes


def _reasons(exc: BaseException) -> list[dict[str, Any]]:
    reasons: list[dict[str, Any]] = getattr(exc, "response", {}).get("CancellationReasons", [])
    return reasons
