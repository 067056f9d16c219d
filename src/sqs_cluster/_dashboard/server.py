"""The dashboard's aiohttp application: pages, the JSON API the page polls, and the opt-in
actions (POST only, with the per-process token the page carries)."""

from __future__ import annotations

import asyncio
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from aiohttp import web

from .._client.client import MessageClient
from .._errors import RecordNotFoundError, ResourceMissingError, SQSClusterError, ValidationError
from . import data, views

TOKEN_HEADER = "X-Dashboard-Token"  # noqa: S105 (a header name)
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
STATIC = {"app.js": "text/javascript", "style.css": "text/css"}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Settings:
    """How the dashboard runs: its client, the host it is bound to, whether actions are on,
    and the random token every action must carry (new in each process)."""

    client: MessageClient
    host: str = "127.0.0.1"
    allow_actions: bool = False
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))


SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)


def _settings(request: web.Request) -> Settings:
    return request.app[SETTINGS]


class Refused(Exception):
    """An action the dashboard will not run (403): actions off, or no valid token."""


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a Host header naming another site while bound to loopback (DNS rebinding),
    turn the library's errors into clear answers, and add the security headers."""
    settings = _settings(request)
    if settings.host in LOOPBACK and _hostname(request.host or "") not in LOOPBACK:
        response: web.StreamResponse = _error(403, f"Host {request.host!r} is not this dashboard")
    else:
        try:
            response = await _answer(request, handler)
        except web.HTTPException as exc:  # aiohttp's own 404 and 405
            exc.headers.update(SECURITY_HEADERS)
            raise
    response.headers.update(SECURITY_HEADERS)
    return response


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Refused as exc:
        return _error(403, str(exc))
    except RecordNotFoundError as exc:
        return _error(404, str(exc), request)
    except ValidationError as exc:
        return _error(400, str(exc), request)
    except ResourceMissingError as exc:
        return _error(503, str(exc), request)


def _hostname(host: str) -> str:
    """The name in a Host header, without its port (``[::1]:8000`` gives ``[::1]``)."""
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0]


def _error(status: int, message: str, request: web.Request | None = None) -> web.Response:
    if request is not None and not request.path.startswith("/api/"):
        token = _settings(request).token
        return web.Response(
            status=status, text=views.not_found(message, token=token), content_type="text/html"
        )
    return web.json_response({"error": message}, status=status)


def _html(text: str) -> web.Response:
    return web.Response(text=text, content_type="text/html")


async def home(request: web.Request) -> web.Response:
    settings = _settings(request)
    before = request.query.get("before") or None
    try:
        found = await data.recent_clusters(settings.client, before=before)
    except ResourceMissingError as exc:
        page = views.home([], next_cursor=None, problem=str(exc), token=settings.token)
        return web.Response(status=503, text=page, content_type="text/html")
    page = views.home(
        found["clusters"], next_cursor=found["next"], problem=None, token=settings.token
    )
    return _html(page)


def _offset(request: web.Request) -> int:
    try:
        return max(0, int(request.query.get("offset", "0")))
    except ValueError:
        raise ValidationError("offset", "expected a whole number of tasks") from None


async def cluster(request: web.Request) -> web.Response:
    settings = _settings(request)
    key = request.match_info["cluster"]
    detail, failed = await asyncio.gather(
        data.cluster_detail(settings.client, key),
        data.failed_tasks(settings.client, key, _offset(request)),
    )
    return _html(
        views.cluster_page(
            detail, failed, allow_actions=settings.allow_actions, token=settings.token
        )
    )


async def api_clusters(request: web.Request) -> web.Response:
    found = await data.recent_clusters(
        _settings(request).client, before=request.query.get("before") or None
    )
    return web.json_response(found)


async def api_cluster(request: web.Request) -> web.Response:
    settings = _settings(request)
    detail = await data.cluster_detail(settings.client, request.match_info["cluster"])
    return web.json_response({**detail, "actions": settings.allow_actions})


async def api_failed(request: web.Request) -> web.Response:
    found = await data.failed_tasks(
        _settings(request).client, request.match_info["cluster"], _offset(request)
    )
    return web.json_response(found)


def _check_action(request: web.Request) -> Settings:
    settings = _settings(request)
    if not settings.allow_actions:
        raise Refused("actions are off: start the dashboard with --allow-actions")
    given = request.headers.get(TOKEN_HEADER, "")
    if not hmac.compare_digest(given.encode(), settings.token.encode()):
        raise Refused(f"{TOKEN_HEADER}: missing or wrong; reload the page")
    return settings


async def _reason(request: web.Request) -> str | None:
    if not request.can_read_body:
        return None
    try:
        body: Any = await request.json()
    except ValueError:
        raise ValidationError("body", "expected a JSON object") from None
    reason = body.get("reason") if isinstance(body, dict) else None
    return str(reason)[:200] if reason else None


async def cancel(request: web.Request) -> web.Response:
    settings = _check_action(request)
    key = data.cluster_key_of(request.match_info["cluster"])
    done = await settings.client.cancel_message_cluster(key, await _reason(request))
    return web.json_response({"status": done.status.value, "cancelled": done.cancelled})


async def redrive(request: web.Request) -> web.Response:
    settings = _check_action(request)
    key = data.cluster_key_of(request.match_info["cluster"])
    try:
        count = await settings.client.redrive_message_cluster(key)
    except SQSClusterError as exc:
        if isinstance(exc, (RecordNotFoundError, ValidationError, ResourceMissingError)):
            raise
        return web.json_response({"error": str(exc)}, status=409)
    return web.json_response({"redriven": count})


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in STATIC:
        raise web.HTTPNotFound(text="no such file")
    text = (
        resources.files(__package__).joinpath("static").joinpath(name).read_text(encoding="utf-8")
    )
    return web.Response(text=text, content_type=STATIC[name])


def make_app(settings: Settings) -> web.Application:
    """The application: GET pages and JSON, POST actions (a GET on an action is 405)."""
    app = web.Application(middlewares=[guard], client_max_size=16 * 1024)
    app[SETTINGS] = settings
    app.router.add_get("/", home)
    app.router.add_get("/clusters/{cluster}", cluster)
    app.router.add_get("/api/clusters", api_clusters)
    app.router.add_get("/api/clusters/{cluster}", api_cluster)
    app.router.add_get("/api/clusters/{cluster}/failed", api_failed)
    app.router.add_post("/api/clusters/{cluster}/cancel", cancel)
    app.router.add_post("/api/clusters/{cluster}/redrive", redrive)
    app.router.add_get("/static/{name}", static)
    return app


async def serve(
    client: MessageClient,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    allow_actions: bool = False,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the dashboard until cancelled; ``ready`` gets its URL once it listens."""
    app = make_app(Settings(client, host=host, allow_actions=allow_actions))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0]
        shown = f"[{bound[0]}]" if ":" in str(bound[0]) else bound[0]
        url = f"http://{shown}:{bound[1]}/"
        if ready is not None:
            ready(url)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
