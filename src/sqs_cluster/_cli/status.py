"""Cluster progress: one labelled line that fits 80 columns, shown three ways.

On a terminal it is a live bar with the line under it; in a pipe or a log it is the same line
printed every few seconds and once more at the end (never truncated); with ``--json`` it is one
JSON object per refresh. The counts, the rate and the ETA are pure functions of the cluster
record (:func:`snapshot`), so every mode shows the same numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, TextIO

from .._client.client import MessageClient
from .._clusters.model import ClusterRecord
from .._errors import SQSClusterError

PLAIN_INTERVAL = 5.0
"""Seconds between the lines printed when stdout is not a terminal."""


@dataclass(frozen=True)
class Snapshot:
    """What a progress line shows: counts, timing and rate of one cluster at one moment."""

    cluster: str
    status: str
    total: int
    done: int
    failed: int
    cancelled: int
    left: int
    elapsed_seconds: float | None
    rate_per_second: float | None
    eta_seconds: float | None
    started_at: str | None
    completed_at: str | None

    def to_json(self) -> str:
        """One line of JSON (``status --json``)."""
        return json.dumps(asdict(self), separators=(",", ":"))


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    with contextlib.suppress(ValueError):
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return None


def snapshot(cluster: ClusterRecord[Any, Any], now: datetime | None = None) -> Snapshot:
    """The cluster's progress; elapsed time runs from the cluster's start (its record), to its
    end once finished, and the rate is counted tasks over that time."""
    start, end = _parse_time(cluster.started_at), _parse_time(cluster.completed_at)
    finish = end if cluster.is_finished and end else (now or datetime.now(timezone.utc))
    elapsed = max(0.0, (finish - start).total_seconds()) if start else None
    counted = cluster.completed + cluster.failed
    rate = counted / elapsed if elapsed and counted else None
    eta = cluster.in_progress / rate if rate and not cluster.is_finished else None
    return Snapshot(
        cluster=cluster.id,
        status=cluster.status.value,
        total=cluster.total,
        done=cluster.completed,
        failed=cluster.failed,
        cancelled=cluster.cancelled,
        left=cluster.in_progress,
        elapsed_seconds=None if elapsed is None else round(elapsed, 3),
        rate_per_second=None if rate is None else round(rate, 3),
        eta_seconds=None if eta is None else round(eta, 1),
        started_at=cluster.started_at,
        completed_at=cluster.completed_at,
    )


def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``: short enough for an 80-column line."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def progress_line(snap: Snapshot) -> str:
    """``IN PROGRESS  done 812/1000  failed 3  left 185  42 tasks/s  elapsed 19s  eta 4s``;
    a label is left out rather than shown as a placeholder when its number is unknown."""
    parts = [snap.status, f"done {snap.done:,}/{snap.total:,}", f"failed {snap.failed:,}"]
    if snap.cancelled:
        parts.append(f"cancelled {snap.cancelled:,}")
    parts.append(f"left {snap.left:,}")
    if snap.rate_per_second:
        parts.append(f"{snap.rate_per_second:,.0f} tasks/s")
    if snap.elapsed_seconds is not None:
        parts.append(f"elapsed {duration(snap.elapsed_seconds)}")
    if snap.eta_seconds is not None:
        parts.append(f"eta {duration(snap.eta_seconds)}")
    return "  ".join(parts)


def summary_line(snap: Snapshot, *, interrupted: bool = False) -> str:
    """The closing line under the last progress line: how the watch ended (short)."""
    if interrupted:
        return f"stopped watching cluster {snap.cluster}; it goes on"
    return f"cluster {snap.cluster} ended {snap.status}"


class Display:
    """Where progress goes: a live bar (terminal), periodic lines (pipe) or JSON lines."""

    def __init__(self, mode: str, out: TextIO | None = None, plain_interval: float = 0.0) -> None:
        self.mode = mode
        self.out = out or sys.stdout
        self.plain_interval = plain_interval or PLAIN_INTERVAL
        self._printed_at: float | None = None
        self._live: Any = None

    @classmethod
    def choose(
        cls, *, as_json: bool = False, out: TextIO | None = None, plain_interval: float = 0.0
    ) -> Display:
        """JSON when asked, a live bar on a terminal, plain lines otherwise."""
        stream = out or sys.stdout
        if as_json:
            return cls("json", stream)
        return cls("live" if stream.isatty() else "plain", stream, plain_interval)

    def say(self, text: str) -> None:
        """A line of its own (a header or a summary), in any mode but JSON."""
        if self.mode == "json":
            return
        if self._live is not None:
            self._live.console.print(text, highlight=False, markup=False)
        else:
            print(text, file=self.out, flush=True)

    @contextlib.contextmanager
    def running(self) -> Iterator[Display]:
        """Show updates within this block (the live bar is drawn only here)."""
        if self.mode != "live":
            yield self
            return
        from rich.console import Console
        from rich.live import Live

        console = Console(file=self.out, highlight=False)
        with Live(console=console, auto_refresh=False, transient=False) as live:
            self._live = live
            try:
                yield self
            finally:
                self._live = None

    def show(self, snap: Snapshot, *, final: bool = False) -> None:
        """One refresh; plain lines only every ``plain_interval`` seconds and at the end."""
        if self.mode == "json":
            print(snap.to_json(), file=self.out, flush=True)
        elif self._live is not None:
            self._live.update(_bar(snap), refresh=True)
        elif self.mode == "plain":
            now = time.monotonic()
            due = self._printed_at is None or now - self._printed_at >= self.plain_interval
            if final or due:
                print(progress_line(snap), file=self.out, flush=True)
                self._printed_at = now


def _bar(snap: Snapshot) -> Any:
    """The bar on one line (the terminal's width), the progress line under it."""
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(expand=True)
    grid.add_row(ProgressBar(total=max(1, snap.total), completed=snap.done + snap.failed))
    grid.add_row(Text(progress_line(snap), overflow="fold"))
    return grid


async def watch_cluster(
    client: MessageClient,
    key: Any,
    *,
    display: Display | None = None,
    interval: float = 1.0,
    watch: bool = True,
    stall_seconds: float | None = None,
    stop: asyncio.Event | None = None,
) -> tuple[ClusterRecord[Any, Any], bool]:
    """Show a cluster's progress until it ends; returns it and whether ``stop`` cut it short.

    With ``watch=False`` it shows the current state once. With ``stall_seconds`` it raises
    SQSClusterError once nothing new was counted for that long.
    """
    display = display or Display.choose()
    stop = stop or asyncio.Event()
    cluster = await client.get_message_cluster(key, consistent_read=True)
    counted, since = -1, time.monotonic()
    with display.running():
        while True:
            ended = cluster.is_finished or not watch
            display.show(snapshot(cluster), final=ended or stop.is_set())
            if ended or stop.is_set():
                return cluster, stop.is_set() and not ended
            if cluster.completed + cluster.failed != counted:
                counted, since = cluster.completed + cluster.failed, time.monotonic()
            elif stall_seconds is not None and time.monotonic() - since > stall_seconds:
                raise SQSClusterError(
                    f"no progress for {stall_seconds:.0f} s, stuck at {counted} of "
                    f"{cluster.total} tasks counted (status {cluster.status.value})"
                )
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            cluster = await client.get_message_cluster(key, consistent_read=True)
