"""Settling a batch in one transaction: each record's outcome, and each task counted once.

A batch's completions (and a task's final failure) are written together: every record's
conditional update, plus, per cluster, one counting action on a shard with room (see
``shards``), in one TransactWriteItems. A record's condition makes its task count once: the
transaction is all or nothing, so a task is counted exactly when its record moves. The
common case costs one request for the whole batch and writes each record once (2 write
units, transactional) and each cluster's shard once.

A refused transaction says why, action by action: a record that was settled already (by a
duplicate delivery, or by this very call whose answer was lost) leaves the batch; a shard
with too little room left gives its room, and the next attempt fills it exactly (and counts
it down on the top counter) and counts the rest elsewhere; contention (a conflicting
transaction, a spent write budget) is tried again after a pause. The attempt whose top
counter reaches zero ended the cluster's counting: its caller ends the cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .._aws.clients import AWS, item_too_large
from .._aws.conditional import (
    condition_failed,
    contended,
    transact_reasons,
    update_if,
)
from .._aws.retry import sleep_backoff
from .._errors import ConflictError
from .._messages.tracking import error_list_full, landed
from .._records.codec import key_item, now_iso
from .._records.model import RecordKey
from .model import counter_key
from .shards import FULL_SHARDS, shard_key

MAX_ACTIONS = 100
"""DynamoDB's limit of actions in one transaction."""
MAX_ROUNDS = 64
"""Attempts of one settle, refusals that teach it something included."""


@dataclass
class Entry:
    """One record to settle: its conditional update and, for a task, what it counts.

    ``tally`` is what a task counts as (one of ``TALLIES``). ``refit`` gives the
    update again when it cannot land as it is: without the result when
    the item would be too large (``"size"``), in the full form of a bounded error list
    (``"errors"``); None when there is no other form.
    """

    update: dict[str, Any]
    cluster: RecordKey | None = None
    shards: int = 0
    tally: str = "completed"
    refit: Callable[[str], dict[str, Any] | None] = lambda why: None


@dataclass(frozen=True)
class Outcome:
    """What settling one entry did.

    ``applied``: its write landed (for a task: it was counted), now or, when ``earlier``, by
    an earlier try of this call whose answer was lost (then whether it ended its cluster is
    unknown: check). ``item``: the record as it stood when refused. ``ended``: this write
    ended its cluster's counting (one entry of the cluster says so).
    """

    applied: bool
    item: dict[str, Any] | None = None
    ended: bool = False
    earlier: bool = False


@dataclass
class _Plan:
    actions: list[dict[str, Any]] = field(default_factory=list)
    roles: list[tuple[str, Any]] = field(default_factory=list)  # ("entry", i) / ("shard", ...)
    finishing: set[str] = field(default_factory=set)  # clusters whose top reaches zero
    filling: list[tuple[RecordKey, int]] = field(default_factory=list)  # shards it fills

    def add(self, action: dict[str, Any], role: tuple[str, Any]) -> None:
        self.actions.append(action)
        self.roles.append(role)


@dataclass
class _State:
    """What one settle learnt from refused attempts: rooms of shards, tops' shards left."""

    rooms: dict[tuple[str, int], int] = field(default_factory=dict)
    tops: dict[str, int] = field(default_factory=dict)


TALLIES = ("completed", "failed", "cancelled")
"""What a task counts as in its shard: completed, failed for good, or cancelled unstarted."""


async def settle(aws: AWS, entries: list[Entry]) -> list[Outcome]:
    """Write every entry's update and count its task; see the module docstring."""
    outcomes: dict[int, Outcome] = {}
    live = list(range(len(entries)))
    state = _State()
    pauses = 0
    for _ in range(MAX_ROUNDS):
        if not live:
            break
        plan = _plan(aws, entries, live, state)
        if len(plan.actions) > MAX_ACTIONS:  # many clusters in one batch: halve it
            half = len(live) // 2
            first = await settle(aws, [entries[i] for i in live[:half]])
            second = await settle(aws, [entries[i] for i in live[half:]])
            outcomes.update(zip(live, first + second, strict=True))
            break
        if len(plan.actions) == 1:  # a plain message alone: no transaction needed
            outcomes[live[0]] = await _settle_alone(aws, entries[live[0]])
            break
        try:
            reasons = await transact_reasons(aws, plan.actions)
        except Exception as exc:
            if not item_too_large(exc):
                raise
            if not _refit_all(entries, live, "size"):
                raise
            continue
        if reasons is None:
            for cluster, shard in plan.filling:
                FULL_SHARDS.of(cluster).add(shard)
            for i in live:
                outcomes[i] = Outcome(True, ended=_ends(entries[i], plan))
            break
        retry = _learn(entries, plan, reasons, state, outcomes)
        live = [i for i in live if i not in outcomes]
        if retry:
            pauses += 1
            if pauses >= aws.config.partial_retry_attempts:
                raise ConflictError(
                    f"settling {len(live)} record(s): {pauses} transactions in a row met "
                    "contention; nothing of them was written (their tasks were not counted), "
                    "so a redelivery settles them"
                )
            await sleep_backoff(pauses)
    else:
        raise ConflictError(
            f"settling {len(live)} record(s): no consistent plan after {MAX_ROUNDS} rounds "
            "(a cluster's counters disagree with its records); nothing of them was written"
        )
    return [outcomes[i] for i in range(len(entries))]


async def _settle_alone(aws: AWS, entry: Entry) -> Outcome:
    update = entry.update
    try:
        written = await update_if(aws, update)
    except Exception as exc:
        refit = entry.refit("size") if item_too_large(exc) else None
        if refit is None:
            raise
        update = entry.update = refit
        written = await update_if(aws, update)
    if not written.applied and error_list_full(written.item):
        refit = entry.refit("errors")
        if refit is not None:
            update = entry.update = refit
            written = await update_if(aws, update)
    if written.applied:
        return Outcome(True)
    mine = landed(update, written.item)
    return Outcome(mine, written.item, earlier=mine)


def _ends(entry: Entry, plan: _Plan) -> bool:
    """Whether this entry is the one to report its cluster's end (the first of the cluster)."""
    if entry.cluster is None or entry.cluster.p_key not in plan.finishing:
        return False
    plan.finishing.discard(entry.cluster.p_key)
    return True


def _refit_all(entries: list[Entry], live: list[int], why: str) -> bool:
    """Swap in the other form of every live entry that has one; False when none had."""
    changed = False
    for i in live:
        refit = entries[i].refit(why)
        if refit is not None:
            entries[i].update, changed = refit, True
    return changed


def _plan(aws: AWS, entries: list[Entry], live: list[int], state: _State) -> _Plan:
    plan = _Plan()
    by_cluster: dict[str, list[Entry]] = {}
    for i in live:
        entry = entries[i]
        plan.add({"Update": entry.update}, ("entry", i))
        if entry.cluster is not None:
            by_cluster.setdefault(entry.cluster.p_key, []).append(entry)
    for group in by_cluster.values():
        _plan_counts(aws, plan, group, state)
    return plan


def _plan_counts(aws: AWS, plan: _Plan, group: list[Entry], state: _State) -> None:
    """The shard actions counting ``group`` (tasks of one cluster), and the top counter's when
    they fill shards."""
    cluster, shards = group[0].cluster, group[0].shards
    assert cluster is not None
    counts = dict.fromkeys(TALLIES, 0)
    for entry in group:
        counts[entry.tally] += 1
    left = len(group)
    used: set[int] = set()
    filled = 0
    while left:
        shard = _choose(cluster, shards, used, state)
        if shard is None:  # no room left for them: some of these tasks were counted already
            plan.add(_top_check(aws, cluster, counted=not used), ("check", (cluster, not used)))
            break
        used.add(shard)
        room = state.rooms.get((cluster.p_key, shard))
        take = left if room is None or room > left else room
        fills = room is not None and room == take
        split, rest = {}, take
        for name in TALLIES:  # this shard's share of each tally
            split[name] = min(counts[name], rest)
            counts[name] -= split[name]
            rest -= split[name]
        action = _shard_action(aws, cluster, shard, take, split, fills, room)
        plan.add(action, ("shard", (cluster.p_key, shard)))
        if fills:
            plan.filling.append((cluster, shard))
        filled += fills
        left -= take
    if filled:
        known = state.tops.get(cluster.p_key)
        if known is None:  # a guess: the last shards when every other one is known full
            finishing = len(FULL_SHARDS.of(cluster)) + filled >= shards
        else:
            finishing = known == filled
        plan.add(_top_action(aws, cluster, filled, finishing), ("top", cluster.p_key))
        if finishing:
            plan.finishing.add(cluster.p_key)


def _choose(cluster: RecordKey, shards: int, used: set[int], state: _State) -> int | None:
    """A shard with room seen in this settle first (filling it), else one not known full."""
    known = set()
    for (p_key, shard), room in state.rooms.items():
        if p_key == cluster.p_key:
            if room > 0 and shard not in used:
                return shard
            known.add(shard)
    return FULL_SHARDS.pick(cluster, shards, used | known)


def _shard_action(
    aws: AWS,
    cluster: RecordKey,
    shard: int,
    take: int,
    split: dict[str, int],
    fills: bool,
    room: int | None,
) -> dict[str, Any]:
    """Count ``take`` tasks on a shard: while it keeps room after them (``room > take``), or,
    filling it, on exactly the room it was seen with."""
    values: dict[str, Any] = {
        ":take": {"N": str(take)},
        ":minus": {"N": str(-take)},
        ":now": {"S": now_iso()},
    }
    adds = ["room :minus"]
    for name, count in split.items():
        if count:
            adds.append(f"{name} :{name}")
            values[f":{name}"] = {"N": str(count)}
    condition = "room > :take"
    if fills:
        condition = "room = :room"
        values[":room"] = {"N": str(room)}
    return {
        "Update": {
            "TableName": aws.config.table,
            "Key": key_item(shard_key(cluster, shard)),
            "UpdateExpression": f"ADD {', '.join(adds)} SET updatedAt = :now",
            "ConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
    }


def _top_check(aws: AWS, cluster: RecordKey, *, counted: bool) -> dict[str, Any]:
    """When no shard has room for a group: with ``counted`` (every shard is full), check that
    the cluster was counted whole, so its tasks' records decide alone (those settled already
    refuse); otherwise a check that always fails, so the records say which were settled."""
    condition = "shardsLeft = :zero" if counted else "attribute_not_exists(pKey)"
    check: dict[str, Any] = {
        "TableName": aws.config.table,
        "Key": key_item(counter_key(cluster)),
        "ConditionExpression": condition,
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    if counted:
        check["ExpressionAttributeValues"] = {":zero": {"N": "0"}}
    return {"ConditionCheck": check}


def _top_action(aws: AWS, cluster: RecordKey, filled: int, finishing: bool) -> dict[str, Any]:
    """Count ``filled`` shards down on the top counter: while some stay unfilled, or, the last
    ones, exactly to zero (this write then ends the counting)."""
    return {
        "Update": {
            "TableName": aws.config.table,
            "Key": key_item(counter_key(cluster)),
            "UpdateExpression": "ADD shardsLeft :minus SET updatedAt = :now",
            "ConditionExpression": "shardsLeft = :n" if finishing else "shardsLeft > :n",
            "ExpressionAttributeValues": {
                ":n": {"N": str(filled)},
                ":minus": {"N": str(-filled)},
                ":now": {"S": now_iso()},
            },
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
    }


def _learn(
    entries: list[Entry],
    plan: _Plan,
    reasons: list[dict[str, Any]],
    state: _State,
    outcomes: dict[int, Outcome],
) -> bool:
    """Take in why a transaction was refused; True when it met contention (pause first)."""
    retry = False
    refused = 0
    forced: RecordKey | None = None
    for (role, what), reason in zip(plan.roles, reasons, strict=True):
        if contended(reason):
            retry = True
        if not condition_failed(reason):
            continue
        item = reason.get("Item")
        if role == "entry":
            refused += 1
            _refused_entry(entries[what], what, item, outcomes)
        elif role == "check":
            cluster, counted = what
            if counted:  # not counted whole after all: what this process knew is stale
                FULL_SHARDS.of(cluster).clear()
            else:
                forced = cluster
        elif role == "shard":
            room = int(item["room"]["N"]) if item and "room" in item else 0
            state.rooms[what] = room
            if room <= 0:
                FULL_SHARDS.of(RecordKey(what[0], "")).add(what[1])
        else:
            state.tops[what] = int(item["shardsLeft"]["N"]) if item and "shardsLeft" in item else 0
    if forced is not None and not refused and not retry:
        raise ConflictError(
            f"counting tasks of {forced.p_key}: its counter shards have no room left for tasks "
            "whose records were not settled; nothing of them was written"
        )
    return retry


def _refused_entry(entry: Entry, index: int, item: Any, outcomes: dict[int, Outcome]) -> None:
    if landed(entry.update, item):
        outcomes[index] = Outcome(True, item, earlier=True)
        return
    if error_list_full(item):
        refit = entry.refit("errors")
        if refit is not None:
            entry.update = refit
            return
    outcomes[index] = Outcome(False, item)
