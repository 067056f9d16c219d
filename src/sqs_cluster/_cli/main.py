"""The ``sqs-cluster`` command line. Errors are one clear line and exit code 1, no traceback."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import signal
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from .._errors import SQSClusterError

EPILOG = (
    "Configuration comes from SQS_CLUSTER_* environment variables (SQS_CLUSTER_TABLE, "
    "SQS_CLUSTER_BUCKET, ...) and the usual AWS variables; flags override them."
)


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _add_aws_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", help="DynamoDB table (default: $SQS_CLUSTER_TABLE)")
    parser.add_argument("--bucket", help="S3 bucket for globals (default: $SQS_CLUSTER_BUCKET)")
    parser.add_argument("--endpoint-url", help="AWS endpoint URL (e.g. a local one)")
    parser.add_argument("--region", help="AWS region (default: $AWS_REGION)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sqs-cluster",
        description="Tracked SQS messages and message clusters on SQS, DynamoDB and S3.",
        epilog=EPILOG,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="run a message cluster end to end on an embedded local AWS",
        description="Create a cluster with globals, run local workers over it (every tenth "
        "task fails once and is retried), show live progress, and print what "
        "on_cluster_complete reported. It always starts an embedded local AWS, whatever the "
        "environment says, unless --use-env or --endpoint-url asks for the SQS_CLUSTER_* and "
        "AWS settings of the environment (then it creates a queue there). It prints the "
        "endpoint, table and queue it uses. Ctrl-C stops it at once, with a summary.",
    )
    demo.add_argument("--tasks", type=int, default=1000, help="tasks in the cluster (default 1000)")
    demo.add_argument("--workers", type=int, default=4, help="concurrent pollers (default 4)")
    demo.add_argument(
        "--use-env",
        action="store_true",
        help="use SQS_CLUSTER_TABLE, SQS_CLUSTER_BUCKET and the AWS settings of the environment "
        "instead of the embedded local AWS",
    )
    demo.add_argument("--endpoint-url", help="like --use-env, against this AWS endpoint")

    local = sub.add_parser(
        "local",
        help="run the embedded local AWS in the foreground, for use from other shells",
        description="Start the embedded local AWS, create a table, a bucket and a queue with a "
        "dead-letter queue, and print the export lines (SQS_CLUSTER_*, AWS_* dummy credentials "
        "and endpoint, QUEUE_URL, DLQ_URL) to paste into another shell. Serves until Ctrl-C "
        "(SIGINT) or SIGTERM; its data lives in memory and goes with it.",
    )
    local.add_argument("--port", type=int, default=0, help="port to listen on (default: any free)")
    local.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    local.add_argument(
        "--visibility-timeout", type=int, default=360, help="the queue's, in seconds (default 360)"
    )

    worker = sub.add_parser(
        "worker",
        help="long-poll a queue and call a Lambda-style handler",
        description="Receive batches from QUEUE_URL and call HANDLER(event, context) with "
        "Lambda-shaped SQS events; delete what succeeded (partial batch responses honoured), "
        "extend visibility while it runs, and stop gracefully on SIGINT/SIGTERM.",
        epilog=EPILOG,
    )
    worker.add_argument("queue_url", metavar="QUEUE_URL")
    worker.add_argument(
        "handler",
        metavar="HANDLER",
        nargs="?",
        help="module:function, e.g. app:handler (not with --dead-letters)",
    )
    worker.add_argument(
        "--dead-letters",
        action="store_true",
        help="QUEUE_URL is a dead-letter queue: settle its messages with process_dead_letters "
        "(record failed for good, count tasks as failed, end their clusters) instead of HANDLER",
    )
    worker.add_argument(
        "--on-cluster-complete",
        metavar="CALLBACK",
        help="with --dead-letters: module:function run as on_cluster_complete(cluster, "
        "get_globals) when a settled task ends its cluster",
    )
    worker.add_argument(
        "--on-startup",
        metavar="HOOK",
        help="module:function called (sync or async, no arguments) before the first poll, "
        "e.g. to open the client the handler keeps",
    )
    worker.add_argument(
        "--on-shutdown",
        metavar="HOOK",
        help="module:function called once polling stopped (also after an error), e.g. to "
        "close that client",
    )
    worker.add_argument("--batch-size", type=int, default=10, help="1-10 (default 10)")
    worker.add_argument("--concurrency", type=int, default=1, help="concurrent pollers (default 1)")
    worker.add_argument("--wait-seconds", type=int, default=20, help="long-poll wait, 0-20")
    worker.add_argument("--visibility-timeout", type=int, help="default: the queue's")
    worker.add_argument("--max-empty-polls", type=int, help="exit after this many empty polls")
    worker.add_argument(
        "--retry-base",
        type=float,
        metavar="SECONDS",
        help="back off failed messages: the first retry waits up to this long, each later one "
        "twice as long (full jitter; default: the visibility timeout, no back-off)",
    )
    worker.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default="INFO",
        help="DEBUG, INFO (default: a line per batch), WARNING or ERROR",
    )
    worker.add_argument(
        "--retry-max",
        type=float,
        metavar="SECONDS",
        help="with back-off, the longest wait (default 300, at most 43200)",
    )
    _add_aws_flags(worker)

    status = sub.add_parser(
        "status",
        help="show a cluster's progress",
        description="Show a cluster's status, done, failed and remaining tasks, elapsed time "
        "since it started, rate and ETA: once, or with --watch until it ends (a live bar on a "
        "terminal, a line every 5 s in a pipe). Ctrl-C stops watching (the cluster goes on).",
        epilog=EPILOG,
    )
    status.add_argument("cluster", metavar="CLUSTER", help="the cluster's pKey or id")
    status.add_argument("--watch", action="store_true", help="refresh until the cluster ends")
    status.add_argument(
        "--json",
        action="store_true",
        help="print JSON (one object; with --watch one line per refresh) instead of text",
    )
    _add_aws_flags(status)

    init = sub.add_parser(
        "init",
        help="create the table, bucket and (optionally) a queue with a DLQ",
        description="Idempotently create the table (TTL on expiresAt), the bucket (encrypted, "
        "private, 30-day lifecycle) and, with --queue, a queue with a dead-letter queue.",
        epilog=EPILOG,
    )
    init.add_argument("--queue", help="also create this queue with a DLQ")
    init.add_argument("--max-receive-count", type=int, default=3, help="redrive limit (default 3)")
    init.add_argument(
        "--visibility-timeout",
        type=int,
        default=360,
        help="visibility timeout in seconds; keep it above Config.lease_seconds (default 360)",
    )
    _add_aws_flags(init)

    dashboard = sub.add_parser(
        "dashboard",
        help="serve a web page of recent clusters, their progress, failures and queues",
        description="Serve the operations dashboard: recent clusters (from the table's index "
        "gsi1, which `sqs-cluster init` adds), each cluster's progress, failed tasks and queue "
        "depths, updated live. Bound to 127.0.0.1 unless --host says otherwise; cancel and "
        "redrive buttons only with --allow-actions.",
        epilog=EPILOG,
    )
    dashboard.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    dashboard.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any)")
    dashboard.add_argument(
        "--allow-actions",
        action="store_true",
        help="show cancel and redrive buttons (each behind a confirmation and the page's token)",
    )
    _add_aws_flags(dashboard)
    return parser


def _config(args: argparse.Namespace) -> Any:
    from .._config import Config

    flags = {
        "table": args.table,
        "bucket": args.bucket,
        "endpoint_url": args.endpoint_url,
        "region": args.region,
    }
    return Config.from_env(**{k: v for k, v in flags.items() if v})


def load_handler(path: str, field_name: str = "handler") -> Any:
    """Import ``module:function``; a clear error naming ``field_name`` when it is not there."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise SQSClusterError(f"{field_name}: expected module:function, got {path!r}")
    sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SQSClusterError(
            f"{field_name}: cannot import module {module_name!r}: {exc}"
        ) from None
    handler = getattr(module, attr, None)
    if not callable(handler):
        raise SQSClusterError(f"{field_name}: {module_name!r} has no callable {attr!r}")
    return handler


def _worker_handlers(args: argparse.Namespace) -> tuple[Any, Any]:
    """(HANDLER, None), or with ``--dead-letters`` (None, the cluster callback or None)."""
    if not args.dead_letters:
        if args.on_cluster_complete:
            raise SQSClusterError(
                "--on-cluster-complete: only with --dead-letters; HANDLER passes its own "
                "callback to safe_process_batch"
            )
        if not args.handler:
            raise SQSClusterError("HANDLER: required (module:function), unless --dead-letters")
        return load_handler(args.handler), None
    if args.handler:
        raise SQSClusterError(
            f"HANDLER: not used with --dead-letters, got {args.handler!r}; the worker settles "
            "dead letters itself (pass a cluster callback as --on-cluster-complete)"
        )
    callback = args.on_cluster_complete
    return None, load_handler(callback, "--on-cluster-complete") if callback else None


def _retry(args: argparse.Namespace) -> Any:
    """The worker's Backoff from --retry-base and --retry-max, or None without them."""
    from .._errors import ValidationError
    from .._messages.retry import Backoff

    given = {"base_seconds": args.retry_base, "max_seconds": args.retry_max}
    if all(v is None for v in given.values()):
        return None
    flags = {"retry.base_seconds": "--retry-base", "retry.max_seconds": "--retry-max"}
    try:
        return Backoff(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        message = str(exc).removeprefix(f"{exc.field}: ").replace("base_seconds", "--retry-base")
        raise SQSClusterError(f"{flags.get(exc.field, exc.field)}: {message}") from None


async def _worker(args: argparse.Namespace) -> int:
    from .._client.client import MessageClient
    from .worker import Worker, WorkerOptions

    handler, callback = _worker_handlers(args)
    options = WorkerOptions(
        batch_size=args.batch_size,
        concurrency=args.concurrency,
        wait_seconds=args.wait_seconds,
        visibility_timeout=args.visibility_timeout,
        max_empty_polls=args.max_empty_polls,
        retry=_retry(args),
        on_startup=load_handler(args.on_startup, "--on-startup") if args.on_startup else None,
        on_shutdown=load_handler(args.on_shutdown, "--on-shutdown") if args.on_shutdown else None,
    )
    async with MessageClient(_config(args)) as client:
        if handler is None:  # --dead-letters

            async def handler(event: Any, context: Any) -> Any:
                return await client.process_dead_letters(event, on_cluster_complete=callback)

        worker = Worker(client, args.queue_url, handler, options)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, worker.stop)
        stats = await worker.run()
    logging.getLogger("sqs_cluster.worker").info(
        "stopped: %d batches, %d received, %d succeeded, %d failed, %d released, "
        "%d long polls cancelled",
        stats.batches,
        stats.received,
        stats.succeeded,
        stats.failed,
        stats.released,
        stats.receives_cancelled,
    )
    return 0


async def _status(args: argparse.Namespace) -> int:
    from .._client.client import MessageClient
    from .._errors import RecordNotFoundError
    from .._records.model import KEY_PREFIX
    from .status import Display, snapshot, summary_line, watch_cluster

    key = args.cluster if args.cluster.startswith(KEY_PREFIX) else KEY_PREFIX + args.cluster
    config = _config(args)
    display = Display.choose(as_json=args.json) if args.watch or args.json else Display("plain")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with MessageClient(config) as client:
        try:
            cluster, interrupted = await watch_cluster(
                client, key, display=display, watch=args.watch, stop=stop
            )
        except RecordNotFoundError:
            where = config.endpoint_url or f"region {config.region or '(default)'}"
            raise SQSClusterError(
                f"CLUSTER: no cluster {key.removeprefix(KEY_PREFIX)!r} in table "
                f"{config.table!r} at {where}; check the id and SQS_CLUSTER_TABLE"
            ) from None
    if args.watch:
        display.say(summary_line(snapshot(cluster), interrupted=interrupted))
    if interrupted:
        return 130
    return 0 if cluster.status.value != "ERROR" else 2


async def _init(args: argparse.Namespace) -> int:
    from .._aws.provision import ensure_resources

    res = await ensure_resources(
        _config(args),
        queue_name=args.queue,
        max_receive_count=args.max_receive_count,
        visibility_timeout=args.visibility_timeout,
    )
    print(f"table:  {res.table}\nbucket: {res.bucket or '-'}")
    if res.queue_url:
        print(f"queue:  {res.queue_url}\ndlq:    {res.dlq_url}")
    return 0


async def _dashboard(args: argparse.Namespace) -> int:
    from .._client.client import MessageClient
    from .._dashboard.server import serve

    if not 0 <= args.port <= 65535:
        raise SQSClusterError(f"--port: must be 0-65535, got {args.port}")

    def ready(url: str) -> None:
        actions = "on" if args.allow_actions else "off (--allow-actions)"
        print(f"dashboard: {url}  (actions {actions}; Ctrl-C to stop)", flush=True)

    async with MessageClient(_config(args)) as client:
        await serve(
            client, host=args.host, port=args.port, allow_actions=args.allow_actions, ready=ready
        )
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from .demo import run_demo

        if args.tasks < 1:
            raise SQSClusterError("--tasks: must be at least 1")
        result = run_demo(
            args.tasks, workers=args.workers, endpoint_url=args.endpoint_url, use_env=args.use_env
        )
        if result.interrupted:
            return 130
        return 0 if result.aggregate == result.expected and result.callback_runs == 1 else 1
    if args.command == "local":
        from .local import run_local

        return run_local(port=args.port, host=args.host, visibility_timeout=args.visibility_timeout)
    commands = {"worker": _worker, "status": _status, "init": _init, "dashboard": _dashboard}
    return asyncio.run(commands[args.command](args))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sqs-cluster`` console script."""
    args = _parser().parse_args(argv)
    warnings.formatwarning = _warning_line
    level = getattr(args, "log_level", "INFO")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if args.command == "demo":  # the progress bar and the summary tell the story
        logging.getLogger("sqs_cluster").setLevel(logging.ERROR)
    logging.getLogger("botocore").setLevel(logging.WARNING)
    logging.getLogger("aiobotocore").setLevel(logging.WARNING)
    try:
        return _run(args)
    except KeyboardInterrupt:
        return 130
    except ImportError as exc:  # an optional extra is missing
        print(
            f"sqs-cluster: error: {exc}; install the extras: pip install 'sqs-cluster[local]'",
            file=sys.stderr,
        )
        return 1
    except Exception as exc:  # AWS and input errors: one clear line, no traceback
        print(f"sqs-cluster: error: {_one_line(exc)}", file=sys.stderr)
        return 1


HINTS = {
    "NoRegionError": "region: no AWS region is set; pass --region or set AWS_REGION",
    "NoCredentialsError": "no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID "
    "and AWS_SECRET_ACCESS_KEY (a local endpoint takes any values, e.g. "
    "AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local; `sqs-cluster local` prints them)",
    "EndpointConnectionError": "cannot reach the AWS endpoint ({exc}); check --endpoint-url "
    "or SQS_CLUSTER_ENDPOINT_URL, and that the server runs (`sqs-cluster local`)",
}
"""botocore errors a new user meets first, by class name, and what to do about them."""


def _warning_line(message: Any, category: Any, *_: Any, **__: Any) -> str:
    return f"sqs-cluster: warning: {message}\n"


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, SQSClusterError):
        return str(exc)
    hint = HINTS.get(type(exc).__name__)
    if hint is not None:
        return hint.format(exc=exc)
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"


if __name__ == "__main__":
    sys.exit(main())
