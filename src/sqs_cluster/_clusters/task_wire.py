"""The wire text of a cluster's task messages, built from per-cluster templates.

A task's body and key attribute differ between tasks only in the task itself and its index,
so the constant parts are serialised once per cluster and each task costs one ``json.dumps``
of the caller's value plus string joins. This is the hot path of a large fan-out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._records.model import RecordKey, RecordType


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


@dataclass(frozen=True)
class TaskWire:
    """Templates for one cluster's task bodies, task keys and key attributes.

    The body is ``{"task", "type": "task", "index", "shards"}`` (``shards``: how many counter
    shards the cluster counts into) plus, when the cluster has globals, ``globals``: the bucket
    they are in (their key derives from the cluster's), exactly as ``json.dumps`` of that dict
    would write it. The cluster's key travels in the key attribute only: the task's record key
    is the cluster's ``pKey`` plus ``.<index>``, under the same ``rKey``.
    """

    cluster: RecordKey
    body_head: str
    body_middle: str
    body_tail: str
    key_head: str
    key_tail: str

    @classmethod
    def for_cluster(
        cls, cluster: RecordKey, location: Mapping[str, str] | None, shards: int
    ) -> TaskWire:
        """Serialise the parts every task of ``cluster`` shares."""
        p_key, r_key = _json(cluster.p_key), _json(cluster.r_key)
        tail = f',"shards":{shards}'
        tail += "}" if location is None else f',"globals":{_json(location["Bucket"])}}}'
        return cls(
            cluster=cluster,
            body_head='{"task":',
            body_middle=f',"type":{_json(RecordType.TASK.value)},"index":',
            body_tail=tail,
            key_head=f'{{"pKey":{p_key[:-1]}.',
            key_tail=f'","rKey":{r_key}}}',
        )

    def body(self, index: int, task_text: str) -> str:
        """The message body of task ``index`` whose value serialises to ``task_text``."""
        return f"{self.body_head}{task_text}{self.body_middle}{index}{self.body_tail}"

    def key(self, index: int) -> RecordKey:
        """The record key of task ``index`` (see ``model.task_key``)."""
        return RecordKey(f"{self.cluster.p_key}.{index}", self.cluster.r_key)

    def key_attribute(self, index: int) -> str:
        """The JSON of task ``index``'s record key, as its message attribute carries it."""
        return f"{self.key_head}{index}{self.key_tail}"

    def fifo_id(self, index: int) -> str:
        """Task ``index``'s FIFO deduplication id, and its default message group id.

        Derived from the cluster id and the index only, so a resume (or botocore's retry of a
        send whose answer was lost) sends the same id again, and SQS drops the duplicate within
        its 5-minute deduplication window. At most 64 + 1 + 10 characters, within SQS's 128.
        """
        return f"{self.cluster.id}.{index}"
