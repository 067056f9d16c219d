"""Local AWS endpoint process: moto's server on a loopback port (used by :mod:`sqs_cluster.local`).

Usage::

    python -m sqs_cluster.local.server --host 127.0.0.1 --port 0 [--item-write-budget 20]

Port 0 lets the OS pick a free port. Once the socket is listening, the process prints exactly one
line, ``READY <port>``, to stdout; anything printed later goes to stderr. It serves until SIGTERM
or SIGINT (or, with ``--exit-on-stdin-eof``, until its parent closes stdin or dies), then shuts
down and exits 0.

The SQS speed-up from :mod:`sqs_cluster.local.sqs_patch` is applied here, in this process only.
Each request is atomic, as on AWS (conditions, transactions, counters; a message handed to
one receiver at a time), which moto's threaded server does not guarantee on its own: DynamoDB
and S3 requests take one lock, SQS requests another, and an SQS long poll waits outside it, so
a long poll never holds up the rest.

With ``--item-write-budget B``, each DynamoDB item may take B write units a second, as AWS
throttles a hot partition at 1,000 (see :mod:`sqs_cluster.local.budget`); the counts are served
at ``GET /_budget/stats``.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqs_cluster.local.budget import STATS_PATH, Answer, ItemWriteBudget, budget_stats
from sqs_cluster.local.ddb_patch import apply_ddb_query_patch, apply_ddb_transaction_patch
from sqs_cluster.local.sqs_patch import apply_sqs_counter_patch

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

#: Set when absent, so that nothing in the process looks for real credentials or a metadata service.
_DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


class SerialisedApp:
    """WSGI wrapper that makes each request atomic, as AWS does.

    DynamoDB and S3 requests take one lock and SQS requests another, so a long poll never holds
    up a write. An SQS long poll is run as short receives, each under the SQS lock, with the
    wait between them outside it: a message is never handed to two receivers at once, and other
    SQS requests go on while a poller waits. A lock is held until the response body has been
    read to the end and closed; the body is buffered, so that a client that goes away cannot
    leave it held. A request whose service cannot be told takes the first lock.

    With a ``budget``, DynamoDB writes go through it under the first lock, and
    ``GET /_budget/stats`` is answered at once, under neither lock.
    """

    def __init__(self, app: WSGIApp, budget: ItemWriteBudget | None = None) -> None:
        self._app = app
        self._budget = budget
        self._lock = threading.Lock()
        self._sqs_lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        path = environ.get("PATH_INFO")
        if path == STATS_PATH and environ.get("REQUEST_METHOD") == "GET":
            return _json_answer(budget_stats(self._budget), start_response)
        service = signing_service(environ)
        if service != "sqs":
            with self._lock:
                if self._budget is not None:
                    if service == "dynamodb":
                        return self._budget.respond(environ, start_response, self._respond)
                    if path == "/moto-api/reset":
                        self._budget.clear()
                return self._respond(environ, start_response)
        if environ.get("HTTP_X_AMZ_TARGET") == "AmazonSQS.ReceiveMessage":
            return self._poll(environ, start_response)
        with self._sqs_lock:
            return self._respond(environ, start_response)

    def _respond(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        body = self._app(environ, start_response)
        try:
            return list(body)
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()

    def _poll(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        """A ReceiveMessage (JSON protocol) as short receives until a message or the wait's end."""
        raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        request = json.loads(raw or b"{}")
        wait = float(request.get("WaitTimeSeconds") or 0)
        short = json.dumps({**request, "WaitTimeSeconds": 0}).encode()
        deadline = time.monotonic() + wait
        while True:
            answer = Answer()
            attempt = {
                **environ,
                "wsgi.input": io.BytesIO(short),
                "CONTENT_LENGTH": str(len(short)),
            }
            with self._sqs_lock:
                body = self._respond(attempt, answer)
            if (
                "WaitTimeSeconds" not in request
                or time.monotonic() >= deadline
                or _has_messages(answer, body)
            ):
                start_response(*answer.args)
                return body
            time.sleep(min(POLL_INTERVAL, max(0.0, deadline - time.monotonic())))


POLL_INTERVAL = 0.05
"""Seconds between the short receives of a long poll."""


def _json_answer(data: Any, start_response: Callable[..., Any]) -> list[bytes]:
    body = json.dumps(data).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def _has_messages(answer: Answer, body: list[bytes]) -> bool:
    if not answer.args or not str(answer.args[0]).startswith("200"):
        return True  # an error: answer it at once
    try:
        return bool(json.loads(b"".join(body) or b"{}").get("Messages"))
    except ValueError:
        return True


def signing_service(environ: dict[str, Any]) -> str | None:
    """The service a SigV4 request was signed for (``Credential=KEY/date/region/SERVICE/...``)."""
    header = str(environ.get("HTTP_AUTHORIZATION", ""))
    _, found, rest = header.partition("Credential=")
    scope = rest.split(",", 1)[0].split("/") if found else []
    return scope[3] if len(scope) > 3 else None


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sqs_cluster.local.server")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one")
    parser.add_argument(
        "--exit-on-stdin-eof",
        action="store_true",
        help="shut down when stdin closes (the parent exited), so servers are never orphaned",
    )
    parser.add_argument(
        "--item-write-budget",
        type=_positive_float,
        default=None,
        metavar="WCU",
        help="write units per second each DynamoDB item may take (burst: one second's worth); "
        "absent: no budget",
    )
    return parser.parse_args(argv)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _build_app(item_write_budget: float | None = None) -> WSGIApp:
    """moto's multi-service WSGI app: DynamoDB and S3 one request at a time, SQS under a lock of
    its own, and DynamoDB writes within their budget if one is given."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    app: WSGIApp = DomainDispatcherApplication(create_backend_app)
    budget = ItemWriteBudget(item_write_budget) if item_write_budget is not None else None
    return SerialisedApp(app, budget)


def _stop_on_signals(stop: threading.Event) -> None:
    """Turn SIGTERM/SIGINT into a graceful stop request."""

    def handler(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _stop_on_stdin_eof(stop: threading.Event) -> None:
    """Request a stop once stdin reaches end-of-file, that is when the parent has gone."""

    def watch() -> None:
        while sys.stdin.buffer.read(4096):
            pass
        stop.set()

    threading.Thread(target=watch, name="stdin-eof-watch", daemon=True).start()


def _announce(port: int) -> None:
    """Print the single READY line, then point stdout at stderr so nothing else lands there."""
    sys.stdout.write(f"READY {port}\n")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until asked to stop; returns the exit code."""
    args = _parse_args(argv)
    for key, value in _DUMMY_AWS_ENV.items():
        os.environ.setdefault(key, value)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request on stderr
    apply_sqs_counter_patch()
    apply_ddb_transaction_patch()
    apply_ddb_query_patch()

    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import make_server

    stop = threading.Event()
    _stop_on_signals(stop)
    app = _build_app(args.item_write_budget)
    server = make_server(
        args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler
    )
    # moto builds a few self-referencing URLs from MOTO_PORT.
    os.environ["MOTO_PORT"] = str(server.server_port)
    serving = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="moto-server", daemon=True
    )
    serving.start()
    if args.exit_on_stdin_eof:
        _stop_on_stdin_eof(stop)
    _announce(server.server_port)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        server.shutdown()
        server.server_close()
        serving.join(timeout=10.0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
