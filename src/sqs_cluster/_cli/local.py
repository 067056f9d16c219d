"""``sqs-cluster local``: the embedded local AWS in the foreground, for use from other shells.

It starts the local server, creates a table, a bucket and a queue with a dead-letter queue,
prints the ``export`` lines another shell needs, and serves until SIGINT or SIGTERM, when it
stops the server by its PID and exits 0. Everything it prints on stdout is valid shell: the
exports, and comments (``#``) for the rest.
"""

from __future__ import annotations

import shlex
import signal
import socket
import threading
from typing import Any

from .._config import ENV_VARS
from .._errors import SQSClusterError

DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
"""The local server takes any credentials; these make the SDKs and the AWS CLI sign requests."""
_SIGNALS = (signal.SIGINT, signal.SIGTERM)
HEALTH_INTERVAL = 0.5
"""Seconds between checks that the server is still running."""


def export_lines(made: Any) -> list[str]:
    """The shell lines that point another process at the local AWS ``made`` describes."""
    config = made.config
    values = {
        ENV_VARS["table"]: config.table,
        ENV_VARS["bucket"]: config.bucket,
        ENV_VARS["endpoint_url"]: config.endpoint_url,
        ENV_VARS["region"]: config.region,
        "AWS_ENDPOINT_URL": config.endpoint_url,
        "AWS_REGION": config.region,
        "AWS_DEFAULT_REGION": config.region,
        **DUMMY_CREDENTIALS,
        "QUEUE_URL": made.queue_url,
        "DLQ_URL": made.dlq_url,
    }
    return [f"export {name}={shlex.quote(str(value))}" for name, value in values.items()]


def run_local(
    *, port: int = 0, host: str = "127.0.0.1", prefix: str = "local", visibility_timeout: int = 360
) -> int:
    """Serve the local AWS until SIGINT/SIGTERM; 0 on a clean stop, 1 if the server died."""
    from ..local import LocalAWS

    _check_port(host, port)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in _SIGNALS}
    try:
        with LocalAWS(host=host, port=port) as aws:
            made = aws.provision(prefix=prefix, visibility_timeout=visibility_timeout)
            _say(f"# local AWS at {aws.endpoint_url} (pid {aws.pid}); Ctrl-C stops it")
            _say("# in another shell, paste these lines:")
            for line in export_lines(made):
                _say(line)
            while not stop.wait(HEALTH_INTERVAL):
                if not aws.running and not stop.is_set():
                    raise SQSClusterError(f"local: the server (pid {aws.pid}) exited on its own")
            _say("# stopping the local AWS")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    _say("# stopped; its data is gone")
    return 0


def _say(line: str) -> None:
    print(line, flush=True)


def _check_port(host: str, port: int) -> None:
    """A clear error before starting, when ``port`` is taken (the server would only fail)."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise SQSClusterError(
                f"--port: cannot listen on {host}:{port} ({exc.strerror}); pick another port, "
                "or 0 for any free one"
            ) from None
