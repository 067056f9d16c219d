"""A fake AWS endpoint for benchmarks: valid SQS, DynamoDB and S3 answers after a fixed delay.

It does no work (nothing is stored), so what a benchmark measures against it is the client:
its CPU per task and how it uses concurrency when every request takes ``--delay-ms`` (20 ms is
typical of a real region), well beyond what moto can serve. Answered operations:

* SQS (JSON protocol, ``X-Amz-Target: AmazonSQS.<Op>``): GetQueueAttributes, GetQueueUrl,
  CreateQueue, SendMessage, SendMessageBatch (every entry ``Successful``, with a MessageId and
  the MD5 digests SQS computes), ReceiveMessage (empty), DeleteMessageBatch,
  ChangeMessageVisibilityBatch (all successful), anything else ``{}``.
* DynamoDB (JSON 1.0, ``X-Amz-Target: DynamoDB_20120810.<Op>``): PutItem, UpdateItem,
  DeleteItem, TransactWriteItems (``{}``), BatchWriteItem (no UnprocessedItems), GetItem (no
  item), BatchGetItem, Query (empty), DescribeTable (ACTIVE).
* S3 (REST): PUT returns an ETag (the body's MD5), HEAD 200, GET 404 NoSuchKey.

``GET /_latency/stats`` (answered at once) returns request counts by operation and messages
accepted by queue URL. Started by ``LatencyServer`` (a child process) or from the command line:

    .venv/bin/python benchmarks/latency_server.py --delay-ms 20 --port 8765
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import struct
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from types import TracebackType
from typing import Any

from aiohttp import web

READY = "latency-server listening on "
SQS_PREFIX = "AmazonSQS."
DDB_PREFIX = "DynamoDB_20120810."
QUEUE_DEFAULTS = {
    "MaximumMessageSize": "262144",
    "VisibilityTimeout": "30",
    "MessageRetentionPeriod": "345600",
    "DelaySeconds": "0",
    "ReceiveMessageWaitTimeSeconds": "0",
    "ApproximateNumberOfMessages": "0",
    "ApproximateNumberOfMessagesNotVisible": "0",
    "ApproximateNumberOfMessagesDelayed": "0",
}


def md5_hex(data: bytes) -> str:
    """Hex MD5, as SQS reports ``MD5OfMessageBody``."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def md5_of_attributes(attributes: dict[str, Any]) -> str:
    """SQS's ``MD5OfMessageAttributes``: length-prefixed name, type, transport byte, value."""
    out = bytearray()
    for name in sorted(attributes):
        attr = attributes[name]
        data_type = str(attr["DataType"])
        for part in (name, data_type):
            raw = part.encode()
            out += struct.pack(">I", len(raw)) + raw
        if "BinaryValue" in attr:
            value = attr["BinaryValue"]
            raw = base64.b64decode(value) if isinstance(value, str) else bytes(value)
            out += b"\x02"
        else:
            raw = str(attr["StringValue"]).encode()
            out += b"\x01"
        out += struct.pack(">I", len(raw)) + raw
    return md5_hex(bytes(out))


class Fake:
    """The answers, request counts and messages accepted by queue."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.requests: Counter[str] = Counter()
        self.messages: Counter[str] = Counter()

    def sqs(self, op: str, body: dict[str, Any]) -> dict[str, Any]:
        """An SQS JSON-protocol answer."""
        url = str(body.get("QueueUrl", ""))
        if op == "SendMessageBatch":
            entries = body.get("Entries", [])
            self.messages[url] += len(entries)
            return {"Successful": [self._sent(e, Id=e["Id"]) for e in entries], "Failed": []}
        if op == "SendMessage":
            self.messages[url] += 1
            return self._sent(body)
        if op == "GetQueueAttributes":
            names = body.get("AttributeNames", ["All"])
            attrs = dict(QUEUE_DEFAULTS, QueueArn=f"arn:aws:sqs:us-east-1:000000000000:{url}")
            if "All" not in names:
                attrs = {n: attrs.get(n, "0") for n in names}
            return {"Attributes": attrs}
        if op in ("GetQueueUrl", "CreateQueue"):
            return {"QueueUrl": f"http://127.0.0.1/000000000000/{body.get('QueueName', 'q')}"}
        if op == "ReceiveMessage":
            return {"Messages": []}
        if op in ("DeleteMessageBatch", "ChangeMessageVisibilityBatch"):
            return {"Successful": [{"Id": e["Id"]} for e in body.get("Entries", [])], "Failed": []}
        return {}

    @staticmethod
    def _sent(entry: dict[str, Any], **extra: Any) -> dict[str, Any]:
        answer = {
            **extra,
            "MessageId": str(uuid.uuid4()),
            "MD5OfMessageBody": md5_hex(str(entry.get("MessageBody", "")).encode()),
        }
        if entry.get("MessageAttributes"):
            answer["MD5OfMessageAttributes"] = md5_of_attributes(entry["MessageAttributes"])
        return answer

    @staticmethod
    def dynamodb(op: str, body: dict[str, Any]) -> dict[str, Any]:
        """A DynamoDB JSON 1.0 answer."""
        if op == "BatchWriteItem":
            return {"UnprocessedItems": {}}
        if op == "BatchGetItem":
            return {"Responses": {t: [] for t in body.get("RequestItems", {})}}
        if op in ("Query", "Scan"):
            return {"Items": [], "Count": 0, "ScannedCount": 0}
        if op == "DescribeTable":
            name = body.get("TableName", "table")
            keys = [("pKey", "HASH"), ("rKey", "RANGE")]  # the library's key schema
            return {
                "Table": {
                    "TableName": name,
                    "TableStatus": "ACTIVE",
                    "ItemCount": 0,
                    "KeySchema": [{"AttributeName": a, "KeyType": t} for a, t in keys],
                    "AttributeDefinitions": [
                        {"AttributeName": a, "AttributeType": "S"} for a, _ in keys
                    ],
                }
            }
        return {}  # PutItem, UpdateItem, DeleteItem, TransactWriteItems, GetItem (no item)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Route by ``X-Amz-Target`` (SQS, DynamoDB) or treat as S3 REST."""
        raw = await request.read()
        if request.path == "/_latency/stats":
            return web.json_response(
                {"requests": dict(self.requests), "messages": dict(self.messages)}
            )
        target = request.headers.get("X-Amz-Target", "")
        if self.delay:
            await asyncio.sleep(self.delay)
        if target.startswith(SQS_PREFIX):
            op = target[len(SQS_PREFIX) :]
            self.requests[f"sqs.{op}"] += 1
            return _json(self.sqs(op, json.loads(raw or b"{}")), "application/x-amz-json-1.0")
        if target.startswith(DDB_PREFIX):
            op = target[len(DDB_PREFIX) :]
            self.requests[f"dynamodb.{op}"] += 1
            return _json(self.dynamodb(op, json.loads(raw or b"{}")), "application/x-amz-json-1.0")
        self.requests[f"s3.{request.method}"] += 1
        headers = {"x-amz-request-id": uuid.uuid4().hex}
        if request.method == "PUT":
            headers["ETag"] = f'"{md5_hex(raw)}"'
            headers["x-amz-server-side-encryption"] = "AES256"
            return web.Response(status=200, headers=headers)
        if request.method in ("HEAD", "DELETE"):
            return web.Response(status=200 if request.method == "HEAD" else 204, headers=headers)
        body = (
            '<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code>'
            "<Message>The specified key does not exist.</Message></Error>"
        )
        return web.Response(status=404, text=body, content_type="application/xml", headers=headers)


def _json(data: dict[str, Any], content_type: str) -> web.Response:
    return web.Response(
        body=json.dumps(data).encode(),
        headers={"Content-Type": content_type, "x-amzn-RequestId": str(uuid.uuid4())},
    )


async def serve(delay: float, port: int) -> None:
    """Serve until cancelled; print the ready line with the port."""
    fake = Fake(delay)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", fake.handle)  # the router answers Expect: 100
    runner = web.AppRunner(app, handle_signals=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=1024)
    await site.start()
    bound = int(runner.addresses[0][1]) if runner.addresses else port
    print(f"{READY}{bound}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


class LatencyServer:
    """The fake endpoint in a child process; a context manager that stops it by its PID."""

    def __init__(self, delay_ms: float) -> None:
        self.delay_ms = delay_ms
        self._proc: subprocess.Popen[str] | None = None
        self.endpoint = ""

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        return None if self._proc is None else self._proc.pid

    def __enter__(self) -> LatencyServer:
        cmd = [sys.executable, os.path.abspath(__file__), "--delay-ms", str(self.delay_ms)]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line.startswith(READY):
            self.__exit__(None, None, None)
            raise RuntimeError(f"latency server did not start: {line!r}")
        self.endpoint = f"http://127.0.0.1:{int(line[len(READY) :])}"
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            if self._proc.stdout is not None:
                self._proc.stdout.close()
            self._proc = None

    def stats(self) -> dict[str, Any]:
        """Request counts by operation and messages accepted by queue URL."""
        with urllib.request.urlopen(f"{self.endpoint}/_latency/stats", timeout=10) as resp:
            data: dict[str, Any] = json.loads(resp.read())
        return data


def main() -> None:
    """Serve on 127.0.0.1 until interrupted."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--delay-ms", type=float, default=20.0, help="delay before each answer")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args()
    started = time.monotonic()
    try:
        asyncio.run(serve(args.delay_ms / 1000, args.port))
    except KeyboardInterrupt:
        pass
    finally:
        print(f"latency server stopped after {time.monotonic() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
