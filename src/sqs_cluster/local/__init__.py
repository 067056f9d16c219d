"""A local, in-memory AWS endpoint (moto) in a child process, for tests, demos and benchmarks.

::

    with LocalAWS() as aws:
        sqs = boto3.client("sqs", endpoint_url=aws.endpoint_url, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")

The server runs as its own process (``python -m sqs_cluster.local.server``). This keeps moto, its
threads and its performance patch out of the caller's process, and lets :meth:`LocalAWS.stop`
end the server by PID. This module does not import moto.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import queue
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from .._config import Config

__all__ = ["LocalAWS", "LocalAWSError", "LocalResources"]

_STOP_TIMEOUT = 10.0
_POLL_INTERVAL = 0.05
_STDERR_TAIL_BYTES = 4000
#: Requests to the local server never go through a proxy configured in the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

_LocalAWS = TypeVar("_LocalAWS", bound="LocalAWS")


class LocalAWSError(RuntimeError):
    """The local AWS server could not be started or used."""


@dataclass(frozen=True)
class LocalResources:
    """What :meth:`LocalAWS.provision` made: a Config for it, and the queue and DLQ URLs."""

    config: Config
    queue_url: str | None
    dlq_url: str | None


class LocalAWS:
    """A local moto server in a child process, reachable at :attr:`endpoint_url`.

    Nothing happens until :meth:`start`, or until the sync or async context manager is entered.
    One endpoint serves every AWS service that moto supports. Any dummy credentials and region
    will do. DynamoDB and S3 requests are handled one at a time, so every write is atomic as on
    AWS (conditions, transactions, counters), while SQS requests take a lock of their own and a
    long poll waits outside it (it holds up nothing). There is one mode: it is both. The server is
    stopped by :meth:`stop`, when the context exits, when this object is garbage-collected, at
    interpreter exit, and (because it watches its stdin) when this process dies.

    ``item_write_budget`` (WCU per second, per item) makes the server throttle a DynamoDB item
    written harder than that, as AWS throttles a hot partition past 1,000 WCU a second; None
    (the default) throttles nothing. ``port`` 0 (the default) takes any free port. See
    ``docs/local.md``.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        startup_timeout: float = 30.0,
        item_write_budget: float | None = None,
    ) -> None:
        if item_write_budget is not None and not (
            item_write_budget > 0 and math.isfinite(item_write_budget)
        ):
            raise ValueError(f"item_write_budget must be positive, not {item_write_budget!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be 0-65535 (0: any free port), not {port!r}")
        self.host = host
        self.port = port
        self.startup_timeout = startup_timeout
        self.item_write_budget = item_write_budget
        self._lock = threading.Lock()
        self._server: _ServerProcess | None = None
        self._finalizer: Callable[[], object] | None = None
        self._endpoint: str | None = None

    def __repr__(self) -> str:
        where = self._endpoint or "not running"
        return f"LocalAWS({where}, pid={self.pid})"

    @property
    def endpoint_url(self) -> str:
        """``http://<host>:<port>`` of the running server; raises LocalAWSError if not started."""
        if self._endpoint is None:
            raise LocalAWSError("LocalAWS is not running; call start() first")
        return self._endpoint

    @property
    def pid(self) -> int | None:
        """PID of the server process, or None when not started or stopped."""
        server = self._server
        return server.proc.pid if server is not None else None

    @property
    def running(self) -> bool:
        """Whether the server process has been started and has not exited."""
        server = self._server
        return server is not None and server.proc.poll() is None

    def start(self) -> str:
        """Start the server unless it is running, wait until it answers HTTP; return its URL.

        Raises LocalAWSError, with the end of the server's stderr, if the server exits or does
        not answer within ``startup_timeout`` seconds.
        """
        with self._lock:
            if self._endpoint is not None and self.running:
                return self._endpoint
            self._discard()
            deadline = time.monotonic() + self.startup_timeout
            server = _ServerProcess(self._command())
            self._server = server
            self._finalizer = weakref.finalize(self, server.close)
            try:
                port = server.read_ready_port(deadline)
                endpoint = f"http://{_url_host(self.host)}:{port}"
                server.wait_until_answering(endpoint, deadline)
            except BaseException:
                self._discard()
                raise
            self._endpoint = endpoint
            return endpoint

    def stop(self) -> None:
        """Stop the server by its PID (terminate, then kill after a grace period). Idempotent."""
        with self._lock:
            self._discard()

    def reset(self) -> None:
        """Delete all state in the server (every service, account and region)."""
        url = f"{self.endpoint_url}/moto-api/reset"
        request = urllib.request.Request(url, data=b"", method="POST")  # noqa: S310 - http URL built here
        try:
            with _OPENER.open(request, timeout=30.0) as response:
                response.read()
        except OSError as exc:
            raise LocalAWSError(f"resetting the local AWS server at {url} failed: {exc}") from exc

    def budget_stats(self) -> dict[str, Any]:
        """The server's write-budget counts (``GET /_budget/stats``: throttles per operation,
        units billed, the most written items); all empty when it runs without a budget."""
        url = f"{self.endpoint_url}/_budget/stats"
        try:
            with _OPENER.open(url, timeout=30.0) as response:
                data: dict[str, Any] = json.load(response)
        except (OSError, ValueError) as exc:
            raise LocalAWSError(f"reading the write-budget stats at {url} failed: {exc}") from exc
        return data

    # -- provisioning -------------------------------------------------------------------------

    async def aprovision(
        self,
        *,
        prefix: str = "sqs-cluster",
        queue: bool = True,
        fifo: bool = False,
        max_receive_count: int = 3,
        visibility_timeout: int = 360,
        region: str = "us-east-1",
    ) -> LocalResources:
        """Create a table, a bucket and (unless ``queue=False``) a queue with a DLQ.

        Names are ``<prefix>-<random>``, because the server's state is shared by everything
        that talks to it. Returns a ready :class:`~sqs_cluster.Config` and the queue URLs.
        """
        from .._aws.provision import ensure_resources
        from .._config import Config

        suffix = uuid.uuid4().hex[:10]
        config = Config(
            table=f"{prefix}-{suffix}",
            bucket=f"{prefix}-{suffix}",
            region=region,
            endpoint_url=self.endpoint_url,
        )
        name = f"{prefix}-{suffix}" + (".fifo" if fifo else "") if queue else None
        from aiobotocore.session import get_session

        session = get_session()  # the server takes any credentials: none need be configured
        session.set_credentials("local", "local")
        res = await ensure_resources(
            config,
            session=session,
            queue_name=name,
            max_receive_count=max_receive_count,
            visibility_timeout=visibility_timeout,
        )
        return LocalResources(config, res.queue_url, res.dlq_url)

    def provision(self, **kwargs: Any) -> LocalResources:
        """Blocking :meth:`aprovision` (runs on its own event loop, in a thread if needed)."""
        import asyncio
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, self.aprovision(**kwargs)).result()

    # -- context managers ---------------------------------------------------------------------

    def __enter__(self: _LocalAWS) -> _LocalAWS:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self: _LocalAWS) -> _LocalAWS:
        try:
            await asyncio.to_thread(self.start)
        except asyncio.CancelledError:
            # start() keeps running in its thread; stop() waits for it, then stops the server.
            await asyncio.to_thread(self.stop)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    # -- internals ----------------------------------------------------------------------------

    def _command(self) -> list[str]:
        command = [sys.executable, "-m", "sqs_cluster.local.server", "--host", self.host]
        if self.item_write_budget is not None:
            command += ["--item-write-budget", repr(float(self.item_write_budget))]
        return [*command, "--port", str(self.port), "--exit-on-stdin-eof"]

    def _discard(self) -> None:
        """Forget the current server and make sure its process and files are gone."""
        finalizer = self._finalizer
        self._server = self._finalizer = self._endpoint = None
        if finalizer is not None:
            finalizer()


class _ServerProcess:
    """One spawned server process plus the temporary file that collects its stderr."""

    def __init__(self, command: list[str]) -> None:
        self._owner_pid = os.getpid()
        # Kept open for the life of the process and closed by close().
        self._log: IO[bytes] = tempfile.TemporaryFile(  # noqa: SIM115
            prefix="sqs-cluster-aws-", suffix=".log"
        )
        try:
            self.proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._log,
                env=_child_env(),
                start_new_session=True,  # Ctrl-C reaches the owner, which stops it by PID
            )
        except BaseException:
            self._log.close()
            raise

    def read_ready_port(self, deadline: float) -> int:
        """Wait for the server's ``READY <port>`` line and return the port."""
        stdout = self.proc.stdout
        assert stdout is not None
        lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=_read_line, args=(stdout, lines), daemon=True).start()
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise self.failure("did not report READY in time") from None
        stdout.close()  # the server sends nothing else to stdout
        if not line:
            raise self.failure("exited during startup")
        parts = line.split()
        if len(parts) != 2 or parts[0] != b"READY" or not parts[1].isdigit():
            raise self.failure(f"printed {line!r} instead of READY <port>")
        return int(parts[1])

    def wait_until_answering(self, endpoint: str, deadline: float) -> None:
        """Poll the endpoint until it answers HTTP (any status will do)."""
        url = f"{endpoint}/moto-api/config"
        while True:
            if self.proc.poll() is not None:
                raise self.failure("exited during startup")
            try:
                with _OPENER.open(url, timeout=5.0) as response:
                    response.read()
                return
            except urllib.error.HTTPError as exc:
                exc.close()
                return
            except OSError:
                pass
            if time.monotonic() >= deadline:
                raise self.failure("did not answer HTTP in time")
            time.sleep(_POLL_INTERVAL)

    def failure(self, what: str) -> LocalAWSError:
        """Stop the process and describe the failure, with the end of its stderr."""
        self.terminate()
        return LocalAWSError(
            f"local AWS server (pid {self.proc.pid}) {what}; exit code {self.proc.returncode}; "
            f"stderr ends with:\n{self.stderr_tail()}"
        )

    def terminate(self) -> None:
        """End the process by PID: terminate, wait, then kill. Idempotent."""
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def stderr_tail(self) -> str:
        """The last few kilobytes the process wrote to stderr."""
        self._log.seek(0, os.SEEK_END)
        self._log.seek(max(0, self._log.tell() - _STDERR_TAIL_BYTES))
        return self._log.read().decode("utf-8", "replace")

    def close(self) -> None:
        """Terminate the process if needed and release its pipes and log file. Idempotent."""
        if os.getpid() != self._owner_pid:
            return  # a forked copy of this process exiting must not stop the parent's server
        try:
            self.terminate()
        finally:
            for stream in (self.proc.stdin, self.proc.stdout, self._log):
                if stream is not None:
                    stream.close()


def _read_line(stream: IO[bytes], lines: queue.Queue[bytes]) -> None:
    """Read one line (b"" at end of file or if the pipe is closed under us) into ``lines``."""
    try:
        line = stream.readline()
    except (OSError, ValueError):
        line = b""
    lines.put(line)


def _url_host(host: str) -> str:
    """Host part of the endpoint URL: wildcard binds map to loopback, IPv6 gets brackets."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _child_env() -> dict[str, str]:
    """Our environment, plus this package's parent directory on PYTHONPATH if it is not installed.

    That way the server runs the same sqs_cluster code as the caller, even from a plain checkout.
    """
    env = dict(os.environ)
    root = Path(__file__).resolve().parent.parent
    site_dirs = {Path(sysconfig.get_paths()[key]).resolve() for key in ("purelib", "platlib")}
    if root not in site_dirs:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    return env
