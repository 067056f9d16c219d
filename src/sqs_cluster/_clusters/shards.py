"""Where a cluster's tasks are counted: counter shards with fixed quotas. Pure, no AWS calls.

One DynamoDB item takes at most 1,000 write units a second, and a transaction action costs
two, so a cluster counted on one item completes at most about 500 tasks a second. A cluster
of ``total`` tasks therefore counts into ``shard_count(total)`` shard items, each in a
partition of its own (``<cluster pKey>#<n>``), each with a fixed quota of tasks (its
``room``, counted down). A batch counts its tasks into any shard with room; the write that
takes a shard's room to zero also counts the shard down on the top counter item
(``shardsLeft``), and the write that takes that to zero is the one that ended the counting:
end detection reads no shard on the way. Quotas add up to the total, so every task is
counted once in exactly one shard, and the sum of the shards' counts is exact.
"""

from __future__ import annotations

import random
from collections import OrderedDict

from .._records.limits import MAX_SHARDS
from .._records.model import RecordKey

TASKS_PER_SHARD = 250
"""Tasks per shard for clusters below ``MAX_SHARDS`` shards (64: enough for 20,000 tasks a
second with one task per counting write, see ``docs/benchmarks.md``, and one BatchGetItem
reads them all)."""
SHARD_R_KEY = "SQSMessage$shard"


def shard_count(total: int) -> int:
    """How many shards a cluster of ``total`` tasks counts into (never more than tasks)."""
    return max(1, min(MAX_SHARDS, -(-total // TASKS_PER_SHARD)))


def quota(total: int, shards: int, shard: int) -> int:
    """Shard ``shard``'s quota: the total spread evenly, the first ones taking the rest."""
    return total // shards + (1 if shard < total % shards else 0)


def shard_key(cluster: RecordKey, shard: int) -> RecordKey:
    """The key of a counter shard: a partition of its own, so shards do not share capacity."""
    return RecordKey(f"{cluster.p_key}#{shard}", SHARD_R_KEY)


class FullShards:
    """Shards this process saw with no room left, per cluster (the most recent clusters only).

    A shard's room only goes down, so "full" never goes stale; the rest is learnt from the
    refused writes that meet a full shard.
    """

    def __init__(self, clusters: int = 1024) -> None:
        self._full: OrderedDict[str, set[int]] = OrderedDict()
        self._clusters = clusters

    def of(self, cluster: RecordKey) -> set[int]:
        """The shards of ``cluster`` known to be full (a live set: add to it)."""
        full = self._full.get(cluster.p_key)
        if full is None:
            full = self._full[cluster.p_key] = set()
            while len(self._full) > self._clusters:
                self._full.popitem(last=False)
        else:
            self._full.move_to_end(cluster.p_key)
        return full

    def pick(self, cluster: RecordKey, shards: int, avoid: set[int]) -> int | None:
        """A shard to count into at random among those not known full nor in ``avoid``;
        None when every shard is known full."""
        full = self.of(cluster)
        choices = [s for s in range(shards) if s not in full and s not in avoid]
        return random.choice(choices) if choices else None


FULL_SHARDS = FullShards()
"""This process's knowledge of full shards, shared by its clients."""
