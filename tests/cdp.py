"""A headless Chromium driven over the DevTools protocol (its WebSocket, with aiohttp's
client): navigate, evaluate, accept a confirm dialog, take screenshots. For browser tests."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import aiohttp

CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    """The path of a Chromium, or None where none is installed."""
    for candidate in CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


class Page:
    """One page target: commands answered in order of their ids, events kept for waiting."""

    def __init__(self, ws: Any) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._events: list[dict[str, Any]] = []
        self._event = asyncio.Event()
        self._sending: set[asyncio.Future[None]] = set()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self._ws:
            data = json.loads(message.data)
            if "id" in data and data["id"] in self._pending:
                future = self._pending.pop(data["id"])
                if "error" in data:
                    future.set_exception(RuntimeError(f"DevTools: {data['error']}"))
                else:
                    future.set_result(data.get("result", {}))
            elif "method" in data:
                self._events.append(data)
                self._event.set()

    def send(self, method: str, **params: Any) -> asyncio.Future[Any]:
        """Send a command; the future resolves with its result."""
        number = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[number] = future
        sending = asyncio.ensure_future(
            self._ws.send_str(json.dumps({"id": number, "method": method, "params": params}))
        )
        self._sending.add(sending)
        sending.add_done_callback(self._sending.discard)
        return future

    async def event(self, method: str, timeout: float = 30) -> dict[str, Any]:
        """The first unconsumed event named ``method`` (waiting for it)."""
        return await asyncio.wait_for(self._next_event(method), timeout)

    async def _next_event(self, method: str) -> dict[str, Any]:
        while True:
            for i, event in enumerate(self._events):
                if event["method"] == method:
                    return self._events.pop(i)
            self._event.clear()
            await self._event.wait()

    async def navigate(self, url: str) -> None:
        self._events.clear()
        await self.send("Page.navigate", url=url)
        await self.event("Page.loadEventFired")

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 30) -> Any:
        """Evaluate ``expression`` every 0.2 s until it is truthy; its value."""

        async def poll() -> Any:
            while not (value := await self.evaluate(expression)):  # noqa: ASYNC110 (the page)
                await asyncio.sleep(0.2)
            return value

        return await asyncio.wait_for(poll(), timeout)

    async def dom(self) -> str:
        """The page's DOM as it stands (what ``--dump-dom`` prints)."""
        return str(await self.evaluate("document.documentElement.outerHTML"))

    async def screenshot(self, path: Path, width: int) -> None:
        """A PNG of the whole page at ``width`` CSS pixels."""
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=800,
            deviceScaleFactor=1,
            mobile=False,
        )
        height = int(await self.evaluate("document.documentElement.scrollHeight"))
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=min(height, 4000),
            deviceScaleFactor=1,
            mobile=False,
        )
        shot = await self.send("Page.captureScreenshot", format="png")
        await asyncio.to_thread(path.write_bytes, base64.b64decode(shot["data"]))

    async def close(self) -> None:
        self._reader.cancel()
        await self._ws.close()


class Chromium:
    """``async with Chromium(path) as page``: a headless browser on a free DevTools port,
    stopped by its own process handle on exit."""

    def __init__(self, executable: str) -> None:
        self.executable = executable
        self._profile = tempfile.TemporaryDirectory(prefix="dashboard-browser-")

    async def __aenter__(self) -> Page:
        self._process = await asyncio.create_subprocess_exec(
            self.executable, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
            "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
            f"--user-data-dir={self._profile.name}", "--window-size=1280,800", "about:blank",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        endpoint = await asyncio.wait_for(self._endpoint(), 60)
        assert self._process.stderr is not None
        self._drain = asyncio.create_task(self._process.stderr.read())
        port = endpoint.split("://", 1)[1].split("/", 1)[0]
        self._session = aiohttp.ClientSession()
        async with self._session.get(f"http://{port}/json/list") as resp:
            targets = await resp.json(content_type=None)
        target = next(t for t in targets if t.get("type") == "page")
        ws = await self._session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0)
        self.page = Page(ws)
        await self.page.send("Page.enable")
        await self.page.send("Runtime.enable")
        return self.page

    async def _endpoint(self) -> str:
        assert self._process.stderr is not None
        while True:
            line = (await self._process.stderr.readline()).decode()
            if not line:
                raise RuntimeError("chromium exited before its DevTools endpoint was up")
            if "DevTools listening on " in line:
                return line.split("DevTools listening on ", 1)[1].strip()

    async def __aexit__(self, *exc: object) -> None:
        await self.page.close()
        await self._session.close()
        if self._process.returncode is None:
            self._process.terminate()
        await self._process.wait()
        self._drain.cancel()
        self._profile.cleanup()
