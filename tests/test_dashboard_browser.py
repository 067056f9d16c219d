"""The dashboard in a real browser: ``sqs-cluster dashboard`` on a free port against the local
server, opened in headless Chromium driven over the DevTools protocol (tests/cdp.py). The
page's own script must show the progress of a running cluster without a reload, and its cancel
button (through the page's confirm dialog, accepted over DevTools) must stop the cluster.

Skipped, with the reason shown, only where no Chromium is installed (.ci/run installs one).
Set DASHBOARD_SCREENSHOTS=<folder> to keep the screenshots (docs/ holds the ones shown in the
documentation).
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sqs_cluster import Config, MessageClient, ReceivedMessage, Status

from .cdp import Chromium, Page, find_chromium
from .conftest import make_queue
from .drain import drain_queue

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium here (apt-get install chromium; .ci/run does)"
)


@pytest.fixture
async def dashboard(base_config: Config) -> AsyncIterator[str]:
    """``sqs-cluster dashboard --port 0 --allow-actions`` in a child process; its URL. Stopped
    by its own process handle."""
    env = {
        **os.environ,
        "SQS_CLUSTER_TABLE": base_config.table,
        "SQS_CLUSTER_BUCKET": base_config.bucket or "",
        "SQS_CLUSTER_REGION": base_config.region or "us-east-1",
        "SQS_CLUSTER_ENDPOINT_URL": base_config.endpoint_url or "",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sqs_cluster._cli.main", "dashboard", "--port", "0",
        "--allow-actions", env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
    match = re.search(r"dashboard: (http://\S+)", line)
    assert match, f"the dashboard did not say where it listens: {line!r}"
    try:
        yield match.group(1)
    finally:
        process.terminate()
        await process.wait()


def fail_every_seventh(message: ReceivedMessage[Any]) -> None:
    if message.task["i"] % 7 == 3:
        raise ValueError(f"task {message.task['i']}: <i>no</i> such customer")


def row_counts(dom: str, cluster_id: str) -> tuple[int, int, int]:
    """(done, failed, left) of the cluster's row, read from a DOM dump."""
    row = dom.split(f'data-id="{cluster_id}"', 1)[1].split("</tr>", 1)[0]
    found = re.search(r"(\d+) done · (\d+) failed · \d+ cancelled · (\d+) left", row)
    assert found, row
    done, failed, left = (int(g) for g in found.groups())
    return done, failed, left


def copy_screenshot(shot: Path) -> None:
    """The screenshot as a PNG, copied to $DASHBOARD_SCREENSHOTS when set."""
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    target = os.environ.get("DASHBOARD_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        (Path(target) / shot.name).write_bytes(shot.read_bytes())


async def keep(page: Page, folder: Path, name: str, width: int) -> None:
    await page.screenshot(folder / name, width)
    await asyncio.to_thread(copy_screenshot, folder / name)


async def test_the_page_shows_progress_live_and_its_cancel_button_stops_the_cluster(
    base_config: Config, dashboard: str, tmp_path: Path
) -> None:
    assert CHROMIUM is not None
    queue = await make_queue(base_config, max_receive_count=1, visibility_timeout=30)
    async with MessageClient(base_config) as client, Chromium(CHROMIUM) as page:
        key = await client.create_message_cluster(
            queue.url, [{"i": i} for i in range(120)], meta={"job": "<b>nightly</b> import"}
        )
        await page.navigate(dashboard)
        await page.wait_for(f"!!document.querySelector('tr[data-id=\"{key.id}\"]')")
        before = row_counts(await page.dom(), key.id)
        assert before == (0, 0, 120)

        await drain_queue(client, queue.url, fail_every_seventh, max_batches=4)
        # the page's script refreshes the row; no reload
        await page.wait_for(
            f"!document.querySelector('tr[data-id=\"{key.id}\"] .counts')"
            ".textContent.startsWith('0 done')"
        )
        after = row_counts(await page.dom(), key.id)
        assert after[0] > before[0] and after[1] > 0 and after[2] < before[2]
        assert sum(after) == 120
        assert "<b>nightly</b>" not in await page.dom()
        await keep(page, tmp_path, "dashboard-home.png", 1280)
        await keep(page, tmp_path, "dashboard-home-narrow.png", 800)

        await page.navigate(f"{dashboard}clusters/{key.id}")
        await page.wait_for("document.getElementById('failed').children.length > 0")
        dom = await page.dom()
        assert "&lt;i&gt;no&lt;/i&gt; such customer" in dom and "<i>no</i>" not in dom
        assert "&lt;b&gt;nightly&lt;/b&gt; import" in dom
        await keep(page, tmp_path, "dashboard-cluster.png", 1280)
        await keep(page, tmp_path, "dashboard-cluster-narrow.png", 800)

        await page.evaluate("document.getElementById('reason').value = 'stopped from the page'")
        click = page.send(
            "Runtime.evaluate", expression="document.getElementById('cancel').click()"
        )
        dialog = await page.event("Page.javascriptDialogOpening")
        assert dialog["params"]["type"] == "confirm" and key.id in dialog["params"]["message"]
        await page.send("Page.handleJavaScriptDialog", accept=True)
        await click
        outcome = await page.wait_for(
            "document.getElementById('action-result').getAttribute('data-outcome')"
        )
        assert outcome == "ok"
        await page.wait_for(
            "document.querySelector('[data-field=status]').textContent === 'STOPPED'"
        )

        cluster = await client.get_message_cluster(key, consistent_read=True)
        assert cluster.status is Status.STOPPED and cluster.cancelled > 0
        assert cluster.cancel_reason == "stopped from the page"
        assert cluster.completed + cluster.failed + cluster.cancelled == 120
