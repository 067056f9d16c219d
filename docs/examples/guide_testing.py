"""Tests of the handler of guide_async_lambda.py, with the fixtures of sqs-cluster's pytest plugin.

``pip install "sqs-cluster[local]" pytest`` is all it takes: the plugin registers itself, and the
first test that asks for one of its fixtures starts the local AWS for the session.
"""

from __future__ import annotations

import asyncio

import pytest
from guide_async_lambda import lambda_handler

from sqs_cluster import MessageClient, Status
from sqs_cluster.pytest_plugin import EventFactory


def test_a_good_order_succeeds(sqs_cluster_event: EventFactory) -> None:
    event = sqs_cluster_event([{"id": 1, "quantity": 2}])
    assert lambda_handler(event, None) == {"batchItemFailures": []}


def test_only_the_bad_order_comes_back(sqs_cluster_event: EventFactory) -> None:
    event = sqs_cluster_event([{"id": 1, "quantity": 2}, {"id": 2, "quantity": 0}])
    bad = next(r["messageId"] for r in event["Records"] if '"id":2' in r["body"])
    assert lambda_handler(event, None) == {"batchItemFailures": [{"itemIdentifier": bad}]}
    assert lambda_handler(event, None)["batchItemFailures"] == [{"itemIdentifier": bad}]


@pytest.mark.sqs_cluster(max_receive_count=1)  # the first failure is final
@pytest.mark.asyncio  # async tests need pytest-asyncio (or another async plugin)
async def test_the_records_tell_what_happened(
    sqs_cluster_event: EventFactory, sqs_cluster_client: MessageClient
) -> None:
    event = sqs_cluster_event([{"id": 1, "quantity": 2}, {"id": 2, "quantity": 0}])
    await asyncio.to_thread(lambda_handler, event, None)  # it runs its own event loop
    messages = [sqs_cluster_client.read_sqs_record(r) for r in event["Records"]]
    records = {m.body["id"]: await m.get_message_record(consistent_read=True) for m in messages}
    assert records[1].status is Status.COMPLETE and records[1].result == {"reserved": 2}
    assert records[2].status_code == 500 and records[2].errors[0].type == "ValueError"
