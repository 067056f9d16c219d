"""The operations dashboard over HTTP (aiohttp's test server) against the local server: the
JSON API, escaping, the missing-index message, and the guards on actions."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import pytest
from aiohttp.test_utils import TestClient, TestServer

from sqs_cluster import Config, MessageClient, ReceivedMessage, Status
from sqs_cluster._aws.provision import CLUSTERS_INDEX, ensure_resources
from sqs_cluster._dashboard.server import TOKEN_HEADER, Settings, make_app
from sqs_cluster._records.model import KEY_PREFIX

from .conftest import REGION, Queue, make_queue, unique
from .drain import drain_queue

Open = Callable[..., Any]
GUIDE_SCRIPT = Path(__file__).resolve().parent.parent / "docs" / "examples" / "guide_dashboard.sh"


@pytest.fixture
async def open_dashboard(base_config: Config) -> AsyncIterator[Open]:
    """Start a dashboard on the session's table: ``await open_dashboard(allow_actions=...)``
    gives (HTTP client, settings); everything is closed after the test."""
    opened: list[Any] = []

    async def start(
        config: Config = base_config, *, allow_actions: bool = False
    ) -> tuple[TestClient[Any, Any], Settings]:
        client = MessageClient(config)
        await client.__aenter__()
        settings = Settings(client, allow_actions=allow_actions)
        http: TestClient[Any, Any] = TestClient(TestServer(make_app(settings), host="127.0.0.1"))
        await http.start_server()
        opened.append((http, client))
        return http, settings

    yield start
    for http, client in reversed(opened):
        await http.close()
        await client.aclose()


async def fail_task_one(message: ReceivedMessage[Any]) -> None:
    if message.task["i"] == 1:
        raise ValueError("task 1 <b>always</b> fails")


async def run_cluster(config: Config, queue: Queue, tasks: int = 4) -> str:
    """A cluster whose task 1 fails for good (a queue with maxReceiveCount 1), drained."""
    async with MessageClient(config) as client:
        key = await client.create_message_cluster(queue.url, [{"i": i} for i in range(tasks)])
        await drain_queue(client, queue.url, fail_task_one)
        return key.id


async def test_home_lists_the_newest_clusters_first_from_the_index(
    base_config: Config, queue: Queue, open_dashboard: Open
) -> None:
    async with MessageClient(base_config) as client:
        first = await client.create_message_cluster(queue.url, [1, 2])
        second = await client.create_message_cluster(queue.url, [1, 2, 3])
    http, _ = await open_dashboard()
    resp = await http.get("/api/clusters")
    assert resp.status == 200
    rows = (await resp.json())["clusters"]
    ids = [r["id"] for r in rows]
    assert first.id in ids and second.id in ids
    order = [(r["startedAt"], r["id"]) for r in rows]
    assert order == sorted(order, reverse=True)
    row = next(r for r in rows if r["id"] == second.id)
    assert (row["total"], row["outstanding"], row["completed"]) == (3, 3, 0)
    page = await (await http.get("/")).text()
    assert f'href="/clusters/{second.id}"' in page


async def test_the_home_page_pages_with_a_cursor(
    base_config: Config, queue: Queue, open_dashboard: Open
) -> None:
    async with MessageClient(base_config) as client:
        for _ in range(3):
            await client.create_message_cluster(queue.url, [1])
    http, _ = await open_dashboard()
    from sqs_cluster._dashboard import data

    _, settings = await open_dashboard()
    page_one = await data.recent_clusters(settings.client, limit=2)
    assert len(page_one["clusters"]) == 2 and page_one["next"]
    resp = await http.get("/api/clusters", params={"before": page_one["next"]})
    later = (await resp.json())["clusters"]
    seen = {r["id"] for r in page_one["clusters"]}
    assert later and not seen & {r["id"] for r in later}
    assert max(r["startedAt"] for r in later) <= min(r["startedAt"] for r in page_one["clusters"])


async def test_a_cluster_shows_its_counts_failed_tasks_and_queues(
    base_config: Config, open_dashboard: Open
) -> None:
    queue = await make_queue(base_config, max_receive_count=1, visibility_timeout=30)
    cluster_id = await run_cluster(base_config, queue)
    http, _ = await open_dashboard()
    detail = await (await http.get(f"/api/clusters/{cluster_id}")).json()
    assert (detail["completed"], detail["failed"], detail["outstanding"]) == (3, 1, 0)
    assert detail["status"] == "COMPLETE" or detail["status"] == "ERROR"
    assert detail["queues"]["queue"]["url"] == queue.url
    assert detail["queues"]["deadLetters"]["url"] == queue.dlq_url
    assert detail["queues"]["queue"]["ApproximateNumberOfMessages"] == 0
    assert detail["actions"] is False
    failed = await (await http.get(f"/api/clusters/{cluster_id}/failed")).json()
    assert [t["index"] for t in failed["tasks"]] == [1]
    assert failed["tasks"][0]["errors"][0]["type"] == "ValueError"
    assert "always" in failed["tasks"][0]["errors"][0]["message"]
    page = await (await http.get(f"/clusters/{KEY_PREFIX}{cluster_id}")).text()
    assert "task 1 &lt;b&gt;always&lt;/b&gt; fails" in page and "<b>always</b>" not in page


async def test_failed_tasks_are_paged(base_config: Config, open_dashboard: Open) -> None:
    queue = await make_queue(base_config, max_receive_count=1, visibility_timeout=30)
    async with MessageClient(base_config) as client:
        key = await client.create_message_cluster(queue.url, [{"i": 1}] * 30)
        await drain_queue(client, queue.url, fail_task_one)
    http, _ = await open_dashboard()
    first = await (await http.get(f"/api/clusters/{key.id}/failed")).json()
    assert len(first["tasks"]) == 25 and first["next"] == 25
    rest = await (await http.get(f"/api/clusters/{key.id}/failed?offset=25")).json()
    assert [t["index"] for t in rest["tasks"]] == list(range(25, 30)) and rest["next"] is None
    bad = await http.get(f"/api/clusters/{key.id}/failed?offset=x")
    assert bad.status == 400 and "offset" in (await bad.json())["error"]


async def test_meta_and_errors_are_escaped_on_every_page(
    base_config: Config, queue: Queue, open_dashboard: Open
) -> None:
    attack = "<script>alert('x')</script>"
    async with MessageClient(base_config) as client:
        key = await client.create_message_cluster(queue.url, [1], meta={"note": attack})
    http, _ = await open_dashboard()
    page = await (await http.get(f"/clusters/{key.id}")).text()
    assert attack not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert page.count("<script") == 1  # only the packaged script
    assert "script-src 'self'" in (await http.get("/")).headers["Content-Security-Policy"]
    detail = await (await http.get(f"/api/clusters/{key.id}")).json()
    assert attack in detail["meta"]  # JSON carries the text; the page sets it as text


async def test_unknown_cluster_is_404_and_a_foreign_key_400(open_dashboard: Open) -> None:
    http, _ = await open_dashboard()
    missing = await http.get(f"/api/clusters/{unique('none')}")
    assert missing.status == 404 and "no record" in (await missing.json())["error"]
    page = await http.get(f"/clusters/{unique('none')}")
    assert page.status == 404 and "Not found" in await page.text()


async def test_a_foreign_host_header_is_refused(open_dashboard: Open) -> None:
    http, _ = await open_dashboard()
    resp = await http.get("/api/clusters", headers={"Host": "attacker.example:8000"})
    assert resp.status == 403
    assert (await http.get("/api/clusters", headers={"Host": "localhost:8000"})).status == 200


async def test_actions_are_refused_without_allow_actions(
    base_config: Config, queue: Queue, open_dashboard: Open
) -> None:
    async with MessageClient(base_config) as client:
        key = await client.create_message_cluster(queue.url, [1, 2])
    http, settings = await open_dashboard(allow_actions=False)
    page = await (await http.get(f"/clusters/{key.id}")).text()
    assert 'data-action="cancel"' not in page and "--allow-actions" in page
    resp = await http.post(
        f"/api/clusters/{key.id}/cancel", headers={TOKEN_HEADER: settings.token}, json={}
    )
    assert resp.status == 403 and "--allow-actions" in (await resp.json())["error"]
    async with MessageClient(base_config) as client:
        assert (await client.get_message_cluster(key, consistent_read=True)).cancelled_at is None


async def test_actions_are_refused_on_get_and_without_the_token(
    base_config: Config, queue: Queue, open_dashboard: Open
) -> None:
    async with MessageClient(base_config) as client:
        key = await client.create_message_cluster(queue.url, [1, 2])
    http, settings = await open_dashboard(allow_actions=True)
    for action in ("cancel", "redrive"):
        url = f"/api/clusters/{key.id}/{action}"
        assert (await http.get(url, headers={TOKEN_HEADER: settings.token})).status == 405
        assert (await http.post(url, json={})).status == 403
        wrong = await http.post(url, headers={TOKEN_HEADER: "x" + settings.token}, json={})
        assert wrong.status == 403 and TOKEN_HEADER in (await wrong.json())["error"]
    async with MessageClient(base_config) as client:
        cluster = await client.get_message_cluster(key, consistent_read=True)
    assert cluster.cancelled_at is None and cluster.status is Status.IN_PROGRESS


async def test_cancel_with_the_pages_token_stops_the_cluster(
    base_config: Config, queue: Queue, open_dashboard: Open
) -> None:
    async with MessageClient(base_config) as client:
        key = await client.create_message_cluster(queue.url, [{"i": 0}, {"i": 2}])
    http, settings = await open_dashboard(allow_actions=True)
    page = await (await http.get(f"/clusters/{key.id}")).text()
    assert f'<meta name="dashboard-token" content="{settings.token}">' in page
    assert 'data-action="cancel"' in page and 'data-action="redrive"' in page
    headers = {TOKEN_HEADER: settings.token}
    resp = await http.post(
        f"/api/clusters/{key.id}/cancel", headers=headers, json={"reason": "from the page"}
    )
    assert resp.status == 200 and (await resp.json()) == {"status": "STOPPED", "cancelled": 2}
    detail = await (await http.get(f"/api/clusters/{key.id}")).json()
    assert (detail["status"], detail["cancelReason"]) == ("STOPPED", "from the page")
    again = await http.post(f"/api/clusters/{key.id}/cancel", headers=headers, json={})
    assert again.status == 400 and "ended" in (await again.json())["error"]


async def test_redrive_with_the_pages_token_runs_the_failed_tasks_again(
    base_config: Config, open_dashboard: Open
) -> None:
    queue = await make_queue(base_config, max_receive_count=1, visibility_timeout=30)
    cluster_id = await run_cluster(base_config, queue)
    http, settings = await open_dashboard(allow_actions=True)
    url = f"/api/clusters/{cluster_id}/redrive"
    redriven = await http.post(url, headers={TOKEN_HEADER: settings.token}, json={})
    assert redriven.status == 200 and (await redriven.json()) == {"redriven": 1}
    async with MessageClient(base_config) as client:
        await drain_queue(client, queue.url, lambda message: None)
        cluster = await client.get_message_cluster(KEY_PREFIX + cluster_id, consistent_read=True)
    assert (cluster.status, cluster.completed, cluster.failed) == (Status.COMPLETE, 4, 0)


async def test_a_table_without_the_index_gets_a_clear_message_then_init_adds_it(
    endpoint: str, open_dashboard: Open
) -> None:
    config = Config(table=unique("old"), region=REGION, endpoint_url=endpoint)
    ddb = boto3.client("dynamodb", endpoint_url=endpoint, region_name=REGION)
    ddb.create_table(  # a table made before the index existed
        TableName=config.table,
        KeySchema=[
            {"AttributeName": "pKey", "KeyType": "HASH"},
            {"AttributeName": "rKey", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pKey", "AttributeType": "S"},
            {"AttributeName": "rKey", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    http, _ = await open_dashboard(config)
    resp = await http.get("/api/clusters")
    message = (await resp.json())["error"]
    assert resp.status == 503 and CLUSTERS_INDEX in message and "sqs-cluster init" in message
    page = await http.get("/")
    assert page.status == 503 and "sqs-cluster init" in await page.text()
    await ensure_resources(config)
    indexes = ddb.describe_table(TableName=config.table)["Table"]["GlobalSecondaryIndexes"]
    assert [i["IndexName"] for i in indexes] == [CLUSTERS_INDEX]
    await ensure_resources(config)  # idempotent: the index is there
    resp = await http.get("/api/clusters")
    assert resp.status == 200 and (await resp.json())["clusters"] == []


async def test_the_guide_script_serves_the_dashboard(endpoint: str) -> None:
    """docs/examples/guide_dashboard.sh, as docs/operations/dashboard.md shows it, on a free
    port: it prints its URL and serves the home page and the JSON API; stopped by its PID."""
    script = GUIDE_SCRIPT
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": REGION,
        "DASHBOARD_PORT": "0",
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    process = await asyncio.create_subprocess_exec(
        "bash", str(script), env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        url = ""
        while not url.startswith("http://127.0.0.1:"):
            line = (await asyncio.wait_for(process.stdout.readline(), 120)).decode()
            assert line, "the script ended before the dashboard listened"
            url = line.removeprefix("dashboard: ").split()[0] if "dashboard: " in line else ""
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "api/clusters") as resp:
                assert resp.status == 200 and "clusters" in await resp.json()
            async with http.post(url + "api/clusters/x/cancel") as resp:
                assert resp.status == 403  # actions are off without --allow-actions
    finally:
        process.terminate()
        await process.wait()
