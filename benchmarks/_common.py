"""Shared helpers of the benchmarks: machine facts, child runs, progress display, statistics."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.console import Console

RESULTS = Path(__file__).resolve().parent / "results"
REGION = "us-east-1"
PROGRESS_PREFIX = "@progress "
PLAIN_LOG_EVERY = 10.0  # seconds between progress lines when stderr is not a terminal

_console: list[Console] = []


def console() -> Console:
    """The stderr console (rich is imported only by the parent, never by measured children)."""
    if not _console:
        from rich.console import Console

        out = Console(stderr=True)
        if not out.is_terminal:
            out = Console(stderr=True, width=160)
        _console.append(out)
    return _console[0]


def setup_env() -> None:
    """Dummy credentials and a region; no profile or endpoint from the environment."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        os.environ.pop(var, None)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def src_digest() -> str:
    """A short hash of the library's source files, to tell which code a result measured."""
    root = Path(__file__).resolve().parent.parent / "src" / "sqs_cluster"
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def machine() -> dict[str, Any]:
    """The facts a reader needs to compare numbers: cores, memory and library versions."""
    return {
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gib": _memory_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {
            dist: _version(dist)
            for dist in ("sqs-cluster", "aiobotocore", "botocore", "boto3", "aiohttp", "moto")
        },
    }


def peak_rss_mib() -> float:
    """Peak resident set size of this process in MiB (Linux reports ru_maxrss in KiB)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024, 1)


def process_cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds used so far by another process (Linux only, else None)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime


def host_cpu() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat (Linux only)."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields) - idle) / ticks, sum(fields) / ticks


class HostLoad:
    """How busy the machine was between ``start()`` and ``stop()`` (other users included)."""

    def __init__(self) -> None:
        self._start: tuple[float, float] | None = None
        self._wall = 0.0

    def start(self) -> None:
        """Take the first reading."""
        self._start, self._wall = host_cpu(), time.monotonic()

    def stop(self) -> dict[str, float | None]:
        """Busy cores on average (all processes) and the 1-minute load average."""
        end, wall = host_cpu(), time.monotonic() - self._wall
        busy = None
        if self._start is not None and end is not None and wall > 0:
            busy = round((end[0] - self._start[0]) / wall, 2)
        return {"host_busy_cores": busy, "loadavg_1m": round(os.getloadavg()[0], 2)}


class ProgressWriter:
    """In a child run: report items done on stderr, at most every ``interval`` seconds."""

    def __init__(self, stream: TextIO = sys.stderr, interval: float = 0.25) -> None:
        self._stream = stream
        self._interval = interval
        self._done = 0
        self._last = 0.0

    def __call__(self, count: int) -> None:
        self._done += count
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self.flush()

    def flush(self) -> None:
        """Write the current total now."""
        self._stream.write(f"{PROGRESS_PREFIX}{self._done}\n")
        self._stream.flush()

    @property
    def done(self) -> int:
        """Items reported so far."""
        return self._done


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A rich progress bar; yields ``update(completed)``. Off a terminal, logs plain lines."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    plain = not console().is_terminal
    started = time.monotonic()
    last_line = [started]
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console(),
        transient=True,
        disable=plain,
    ) as bar:
        task = bar.add_task(description, total=total)

        def update(completed: int) -> None:
            bar.update(task, completed=completed)
            now = time.monotonic()
            if plain and now - last_line[0] >= PLAIN_LOG_EVERY:
                last_line[0] = now
                print(
                    f"  {description}: {completed}/{total} after {now - started:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )

        yield update


def run_child(argv: Sequence[str], on_progress: Callable[[int], None]) -> dict[str, Any]:
    """Run ``python <argv>`` in a fresh process; relay its progress; return its JSON result."""
    proc = subprocess.Popen(
        [sys.executable, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    other: list[str] = []
    stderr = proc.stderr

    def relay() -> None:
        for line in stderr:
            if line.startswith(PROGRESS_PREFIX):
                on_progress(int(line[len(PROGRESS_PREFIX) :]))
            else:
                other.append(line)

    reader = threading.Thread(target=relay, daemon=True)
    reader.start()
    out = proc.stdout.read()
    proc.wait()
    reader.join()
    if proc.returncode != 0:
        tail = "".join(other)[-4000:]
        raise RuntimeError(f"child {argv} exited {proc.returncode}:\n{tail}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def median(values: Sequence[float]) -> float:
    """The median (the middle of an interleaved series is robust to one slow round)."""
    return float(statistics.median(values))


def per_task(counts: Mapping[str, int], tasks: int) -> dict[str, float]:
    """Requests per task by operation, largest first."""
    return {
        op: round(n / tasks, 4) for op, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    }


def result_header(benchmark: str, started: float, digest: str | None = None) -> dict[str, Any]:
    """The fields every result file starts with: what ran, when, on which machine and code."""
    return {
        "benchmark": benchmark,
        "command": " ".join(["python", f"benchmarks/{benchmark}.py", *sys.argv[1:]]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "machine": machine(),
        "src_digest": digest or src_digest(),
    }


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as indented JSON (creating the directory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
