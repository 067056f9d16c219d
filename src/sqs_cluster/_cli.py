"""The ``sqs-cluster`` command line: ``init`` and ``demo``. Errors are one line, exit code 1."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from ._errors import SQSClusterError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sqs-cluster",
        description="Tracked SQS messages and message clusters on SQS, DynamoDB and S3.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="run the demo against an embedded local AWS (or --endpoint-url)",
        description="Send tracked messages, process them with safe_process_batch (one fails "
        "once and is retried), and print what happened. Starts an embedded local AWS unless "
        "--endpoint-url is given.",
    )
    demo.add_argument("--messages", type=int, default=20, help="messages to send (default 20)")
    demo.add_argument("--endpoint-url", default=None, help="use this AWS endpoint instead")
    init = sub.add_parser(
        "init",
        help="create the table, bucket and (optionally) a queue with a DLQ",
        description="Idempotently create the resources named by SQS_CLUSTER_* variables or flags.",
    )
    init.add_argument("--table", help="DynamoDB table (default: $SQS_CLUSTER_TABLE)")
    init.add_argument("--bucket", help="S3 bucket for globals (default: $SQS_CLUSTER_BUCKET)")
    init.add_argument("--queue", help="also create this queue with a DLQ")
    init.add_argument("--max-receive-count", type=int, default=3, help="redrive limit (default 3)")
    init.add_argument(
        "--visibility-timeout",
        type=int,
        default=360,
        help="visibility timeout in seconds; keep it above Config.lease_seconds (default 360)",
    )
    init.add_argument("--endpoint-url", default=None, help="AWS endpoint (e.g. a local one)")
    init.add_argument("--region", default=None, help="AWS region")
    return parser


def _init(args: argparse.Namespace) -> int:
    from ._config import Config
    from ._provision import ensure_resources

    overrides = {
        k: v
        for k, v in {
            "table": args.table,
            "bucket": args.bucket,
            "endpoint_url": args.endpoint_url,
            "region": args.region,
        }.items()
        if v
    }
    config = Config.from_env(**overrides)
    res = asyncio.run(
        ensure_resources(
            config,
            queue_name=args.queue,
            max_receive_count=args.max_receive_count,
            visibility_timeout=args.visibility_timeout,
        )
    )
    print(f"table:  {res.table}\nbucket: {res.bucket or '-'}")
    if res.queue_url:
        print(f"queue:  {res.queue_url}\ndlq:    {res.dlq_url}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sqs-cluster`` console script."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            from ._demo import run_demo

            if args.messages < 1:
                raise SQSClusterError("--messages: must be at least 1")
            run_demo(messages=args.messages, endpoint_url=args.endpoint_url)
            return 0
        return _init(args)
    except KeyboardInterrupt:
        return 130
    except (SQSClusterError, OSError) as exc:
        print(f"sqs-cluster: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # botocore errors: one clear line, no traceback
        print(f"sqs-cluster: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
