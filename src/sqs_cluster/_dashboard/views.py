"""The dashboard's HTML: server-rendered pages whose every value goes through ``html.escape``;
``static/app.js`` keeps them live from the JSON API (with ``textContent``, never HTML)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from html import escape
from typing import Any
from urllib.parse import quote

BAR_PARTS = ("completed", "failed", "cancelled", "outstanding")


def e(value: Any) -> str:
    """A value as escaped HTML text (None as a dash)."""
    return "-" if value is None else escape(str(value), quote=True)


def page(title: str, body: str, *, kind: str, token: str, cluster: str = "") -> str:
    """The page shell: no inline script or style (the CSP forbids them), the action token in a
    meta tag for the POSTs."""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="dashboard-token" content="{e(token)}">'
        f"<title>{e(title)} · sqs-cluster</title>"
        '<link rel="stylesheet" href="/static/style.css"></head>'
        f'<body data-page="{e(kind)}" data-cluster="{e(cluster)}">'
        '<header><a href="/" class="brand">sqs-cluster</a> <span>operations dashboard</span>'
        '<span id="live" class="live" title="live updates">live</span></header>'
        f"<main>{body}</main>"
        '<script src="/static/app.js"></script></body></html>\n'
    )


def progress_bar(row: Mapping[str, Any]) -> str:
    """A stacked bar: completed, failed, cancelled and outstanding, as shares of the total
    (``data-share``, in percent; the script sets the widths, as the CSP refuses inline
    styles)."""
    total = max(1, int(row["total"]))
    parts = "".join(
        f'<span class="bar-{name}" data-part="{name}" '
        f'data-share="{100 * int(row[name]) / total:.2f}"></span>'
        for name in BAR_PARTS
    )
    return f'<div class="bar" role="img" aria-label="{e(counts_text(row))}">{parts}</div>'


def counts_text(row: Mapping[str, Any]) -> str:
    return (
        f"{row['completed']} done · {row['failed']} failed · {row['cancelled']} cancelled · "
        f"{row['outstanding']} left of {row['total']}"
    )


def rate_text(value: Any) -> str:
    return "-" if value is None else f"{value:g}/s"


def age_text(seconds: Any) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def cluster_href(row: Mapping[str, Any]) -> str:
    return "/clusters/" + quote(str(row["id"]), safe="")


def home_row(row: Mapping[str, Any]) -> str:
    return (
        f'<tr data-id="{e(row["id"])}">'
        f'<td class="id"><a href="{e(cluster_href(row))}">{e(row["id"])}</a></td>'
        f'<td><span class="status status-{e(row["status"]).replace(" ", "-")}">'
        f"{e(row['status'])}</span></td>"
        f'<td class="progress">{progress_bar(row)}'
        f'<div class="counts">{e(counts_text(row))}</div></td>'
        f'<td class="num">{e(rate_text(row["throughput"]))}</td>'
        f'<td class="num">{e(age_text(row["age"]))}</td></tr>'
    )


def home(
    rows: Iterable[Mapping[str, Any]], *, next_cursor: str | None, problem: str | None, token: str
) -> str:
    """The recent clusters, newest first."""
    notice = f'<p class="problem" id="problem">{e(problem)}</p>' if problem else ""
    more = (
        f'<p><a id="older" href="/?before={e(quote(next_cursor, safe=""))}">older clusters</a></p>'
        if next_cursor
        else ""
    )
    body = (
        f"<h1>Recent clusters</h1>{notice}"
        '<table class="clusters"><thead><tr><th>cluster</th><th>status</th>'
        "<th>progress</th><th>throughput</th><th>age</th></tr></thead>"
        f'<tbody id="clusters">{"".join(home_row(r) for r in rows)}</tbody></table>{more}'
    )
    return page("clusters", body, kind="home", token=token)


def _facts(detail: Mapping[str, Any]) -> str:
    facts = {
        "status": detail["status"],
        "total": detail["total"],
        "sent": detail["sent"],
        "completed": detail["completed"],
        "failed": detail["failed"],
        "cancelled": detail["cancelled"],
        "outstanding": detail["outstanding"],
        "throughput": rate_text(detail["throughput"]),
        "age": age_text(detail["age"]),
        "startedAt": detail["startedAt"],
        "completedAt": detail["completedAt"],
        "toleratedFailures": detail["toleratedFailures"],
        "redrives": detail["redrives"],
        "cancelReason": detail["cancelReason"],
        "queue": detail["queue"],
        "results": _location(detail["results"]),
    }
    return "".join(
        f'<dt>{e(name)}</dt><dd data-field="{e(name)}">{e(value)}</dd>'
        for name, value in facts.items()
    )


def _location(location: Mapping[str, str] | None) -> str | None:
    return None if not location else f"s3://{location['Bucket']}/{location['Key']}"


def _queues(queues: Mapping[str, Any]) -> str:
    if "error" in queues:
        return f'<p class="problem">{e(queues["error"])}</p>'
    rows = []
    for label, name in (("queue", "queue"), ("dead-letter queue", "deadLetters")):
        depth = queues.get(name)
        if not depth:
            rows.append(f"<tr><td>{e(label)}</td><td colspan=4>none</td></tr>")
            continue
        rows.append(
            f'<tr data-queue="{e(name)}"><td>{e(label)}</td><td class="url">{e(depth["url"])}</td>'
            + "".join(
                f'<td class="num" data-depth="{e(a)}">{e(depth[a])}</td>'
                for a in (
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                )
            )
            + "</tr>"
        )
    return (
        '<table class="queues"><thead><tr><th></th><th>url</th><th>visible</th>'
        "<th>in flight</th><th>delayed</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def failed_rows(tasks: Iterable[Mapping[str, Any]]) -> str:
    out = []
    for task in tasks:
        errors = "".join(
            f"<li><b>{e(x['type'])}</b>: {e(x['message'])} <small>{e(x['at'])}</small></li>"
            for x in task["errors"]
        )
        out.append(
            f'<tr><td class="num">{e(task["index"])}</td><td class="num">{e(task["receives"])}'
            f"</td><td><ul class=errors>{errors or '<li>no error recorded</li>'}</ul></td></tr>"
        )
    return "".join(out)


def _failed(cluster_id: str, page_data: Mapping[str, Any]) -> str:
    base = "/clusters/" + quote(cluster_id, safe="")
    links = []
    if page_data["offset"]:
        links.append(f'<a href="{e(base)}?offset={max(0, page_data["offset"] - 25)}">newer</a>')
    if page_data["next"] is not None:
        links.append(f'<a href="{e(base)}?offset={int(page_data["next"])}">more</a>')
    return (
        '<table class="failed"><thead><tr><th>task</th><th>receives</th><th>errors</th></tr>'
        f'</thead><tbody id="failed">{failed_rows(page_data["tasks"])}</tbody></table>'
        f'<p class="pager">{" · ".join(links)}</p>'
    )


def _actions(allow: bool) -> str:
    if not allow:
        return (
            '<p class="hint">Actions are off: start the dashboard with --allow-actions to '
            "cancel or redrive from here.</p>"
        )
    return (
        '<div class="actions"><label>reason <input id="reason" maxlength="200"></label> '
        '<button id="cancel" data-action="cancel" class="danger">Cancel cluster</button> '
        '<button id="redrive" data-action="redrive">Redrive failed and cancelled</button>'
        '<p id="action-result" role="status"></p></div>'
    )


def cluster_page(
    detail: Mapping[str, Any], failed: Mapping[str, Any], *, allow_actions: bool, token: str
) -> str:
    """One cluster: its facts, meta, errors, queues, failed tasks and (opt-in) actions."""
    errors = "".join(
        f"<li><b>{e(x['type'])}</b>: {e(x['message'])} <small>{e(x['at'])}</small></li>"
        for x in detail["errors"]
    )
    body = (
        f'<h1>Cluster <span class="id">{e(detail["id"])}</span></h1>'
        f'<div class="progress-wide">{progress_bar(detail)}'
        f'<div class="counts" data-field="counts">{e(counts_text(detail))}</div></div>'
        f"{_actions(allow_actions)}"
        f'<section><h2>Facts</h2><dl class="facts">{_facts(detail)}</dl></section>'
        f'<section><h2>Meta</h2><pre class="meta">{e(detail["meta"])}</pre></section>'
        f"<section><h2>Queues</h2>{_queues(detail['queues'])}</section>"
        f'<section><h2>Cluster errors</h2><ul class="errors">{errors or "<li>none</li>"}</ul>'
        "</section>"
        f"<section><h2>Failed tasks</h2>{_failed(detail['id'], failed)}</section>"
    )
    return page(f"cluster {detail['id']}", body, kind="cluster", token=token, cluster=detail["id"])


def not_found(message: str, *, token: str) -> str:
    return page(
        "not found",
        f'<h1>Not found</h1><p class="problem">{e(message)}</p>',
        kind="error",
        token=token,
    )


def json_text(value: Any) -> str:
    return json.dumps(value, default=str)
