"""Benchmark (not a test): DynamoDB write units per message by body size, before and after.

Each version (``--old-rev``, ``git archive``d into a temporary folder, and the working tree)
runs in a child process against one embedded local AWS: ``--messages`` messages of 1 KB,
100 KB and 1 MB bodies are sent with ``send_message``, received and processed with
``safe_process_batch``. Write units are estimated the way DynamoDB bills them: every write
of a record costs one unit per started KB of the item (two in a transaction), the item's
size taken from the record as it is at the end (its body dominates it).

    .venv/bin/python benchmarks/large_messages.py --messages 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
import uuid
from pathlib import Path
from typing import Any

from _common import REGION, RESULTS, console, result_header, setup_env, write_json
from fanin import ROOT, child, old_source

OLD_REV = "f7daf25"
"""The last commit before large messages: a 256 KiB cap, and every record copies its body."""
SIZES = {"1 KB": 1_000, "100 KB": 100_000, "1 MB": 1_000_000}


def item_bytes(item: dict[str, Any]) -> int:
    """DynamoDB's size of an item: names plus values (strings and numbers as text)."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        for kind, inner in value.items():
            if kind in {"S", "N"}:
                size += len(str(inner).encode())
            elif kind == "L":
                size += sum(item_bytes({"": v}) for v in inner)
            elif kind == "M":
                size += item_bytes(inner)
            else:
                size += 1
    return size


async def measure(endpoint: str, messages: int) -> dict[str, Any]:
    """The child: send, receive and process ``messages`` of each size; count the writes."""
    import boto3

    from sqs_cluster import Config, MessageClient, ensure_resources
    from sqs_cluster._messages.lambda_shape import lambda_event

    name = f"lm-{uuid.uuid4().hex[:10]}"
    config = Config(table=name, bucket=name, region=REGION, endpoint_url=endpoint)
    await ensure_resources(config)
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name=REGION)
    ddb = boto3.client("dynamodb", endpoint_url=endpoint, region_name=REGION)
    rows: dict[str, Any] = {}
    for label, size in SIZES.items():
        queue = sqs.create_queue(QueueName=f"{name}-{size}")["QueueUrl"]
        async with MessageClient(config) as client:
            writes: dict[str, int] = {}

            def count(params: Any, model: Any, writes: dict[str, int] = writes, **_: Any) -> None:
                operation = model.name
                if operation == "TransactWriteItems":  # one write per action
                    n = len(params.get("TransactItems", []))
                elif operation == "BatchWriteItem":
                    n = sum(len(v) for v in params.get("RequestItems", {}).values())
                else:
                    n = 1 if operation in {"PutItem", "UpdateItem", "DeleteItem"} else 0
                if n:
                    writes[operation] = writes.get(operation, 0) + n

            client._aws.ddb.meta.events.register("before-parameter-build.dynamodb", count)
            keys = []
            try:
                for _ in range(messages):
                    keys.append(await client.send_message(queue, "a" * size))
            except Exception as exc:  # the old version refuses 1 MB
                rows[label] = {"sent": False, "error": f"{type(exc).__name__}: {exc}"[:200]}
                continue
            got = sqs.receive_message(
                QueueUrl=queue, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                AttributeNames=["All"],
            )["Messages"]  # fmt: skip
            event = lambda_event(got, queue_url=queue, region=REGION)
            failures = await client.safe_process_batch(event, lambda m: None)
            items = [
                ddb.get_item(TableName=name, Key={"pKey": {"S": k.p_key}, "rKey": {"S": k.r_key}})[
                    "Item"
                ]
                for k in keys
            ]
        kb = max(math.ceil(item_bytes(i) / 1024) for i in items)
        units = sum(n * kb * (2 if op == "TransactWriteItems" else 1) for op, n in writes.items())
        rows[label] = {
            "sent": True,
            "processed": len(got) - len(failures["batchItemFailures"]),
            "record_kb": kb,
            "writes_per_message": {op: n / messages for op, n in sorted(writes.items())},
            "write_units_per_message": round(units / messages, 1),
        }
    return rows


def main() -> None:
    """Both versions side by side on one server; print the table, save JSON."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=5, help="messages per size (max 10)")
    parser.add_argument("--old-rev", default=OLD_REV, help="the earlier version's commit")
    parser.add_argument("--json", help="result path (default results/large-messages.json)")
    parser.add_argument("--child", nargs=2, metavar=("ENDPOINT", "MESSAGES"), help="internal")
    args = parser.parse_args()
    if args.child:
        rows = asyncio.run(measure(args.child[0], int(args.child[1])))
        print(json.dumps(rows))
        return
    if not 1 <= args.messages <= 10:
        parser.error("--messages must be from 1 to 10")
    setup_env()
    started = time.time()
    from sqs_cluster.local import LocalAWS

    with LocalAWS() as aws, old_source(args.old_rev) as old:
        argv = [aws.endpoint_url, str(args.messages)]
        results = [
            child("before", old, argv, __file__),
            child("after", ROOT / "src", argv, __file__),
        ]
    out = console()
    for label in SIZES:
        cells = []
        for r in results:
            row = r[label]
            cells.append(
                f"{r['variant']}: {row['write_units_per_message']} WCU/message "
                f"(record {row['record_kb']} KB)"
                if row["sent"]
                else f"{r['variant']}: refused"
            )
        out.print(f"{label:>7}  " + " | ".join(cells))
    path = Path(args.json) if args.json else RESULTS / "large-messages.json"
    header = result_header("large_messages", started)
    write_json(path, {**header, "messages": args.messages, "old_rev": args.old_rev,
                      "results": results})  # fmt: skip
    out.print(f"results written to {path}")


if __name__ == "__main__":
    main()
