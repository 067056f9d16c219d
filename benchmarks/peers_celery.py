"""Benchmark (not a test): a Celery chord against a message cluster, side by side.

Both run against one embedded local AWS (``LocalAWS``: moto's server, every write atomic as
on AWS), each with its worker in a child process, each on a fresh queue made the same way
(``ensure_resources``: visibility timeout ``--visibility-timeout``, a DLQ after 3 receives):

* ``celery chord``: ``chord(header)(callback)`` with ``--tasks`` header tasks, published by this
  process through kombu's SQS transport (``broker_url="sqs://..."``) and run by ``celery worker``
  (``--pool threads --concurrency N``), results and the chord counter in Celery's DynamoDB
  result backend (``result_backend="dynamodb://..."``). The callback receives every result.
* ``sqs-cluster``: ``create_message_cluster`` with ``--tasks`` tasks from this process, drained
  by ``sqs_cluster.Worker`` (``N`` pollers) whose handler calls ``safe_process_batch`` with an
  ``on_cluster_complete`` callback.

Three scenarios, each side in turn: clean; duplicates, where the server stores a second copy of
every ``--dup-every``-th task message it is asked to send (as SQS may deliver a message twice);
and duplicates with one slow task (the fifth from the end sleeps ``--slow-s``). Tasks and
callbacks append a line to a file, so counting them costs no AWS request.

Requests are counted by the server: it runs with a small WSGI wrapper around the local AWS
application that counts each request by service and operation (the benchmark's own monitoring
requests are left out). The clock starts before the fan-out and stops at the time the callback
writes in its line. Requests are counted from the fan-out until the callback has run and no
task has run for 1.5 s; those made afterwards until the queue is empty are reported apart.

    .venv/bin/pip install -e ".[peers]"   # pycurl builds against libcurl4-openssl-dev if no wheel
    .venv/bin/python benchmarks/peers_celery.py --tasks 1000 --concurrency 8 --dup-every 10
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

from _common import (
    REGION,
    RESULTS,
    HostLoad,
    console,
    per_task,
    process_cpu_seconds,
    progress_bar,
    result_header,
    setup_env,
    write_json,
)

from sqs_cluster import Config, MessageClient, ensure_resources
from sqs_cluster.local import LocalAWS

HERE = Path(__file__).resolve()
COUNTS_PATH = "/_peers/counts"
DUPLICATE_PATH = "/_peers/duplicate"
MONITOR_AGENT = "peers-monitor"
QUIET_SECONDS = 1.5  # no task line for this long, and an empty queue: the run has settled
NO_CALLBACK_SECONDS = 20.0  # settled this long without a callback line: it is not coming
INSTALL_HINT = (
    'install the peers extra: .venv/bin/pip install -e ".[peers]" '
    "(celery[sqs] brings kombu, boto3 and pycurl; pycurl is built from source where no wheel "
    "fits, which needs: sudo apt-get install -y libcurl4-openssl-dev libssl-dev)"
)
SERVICES = {"AmazonSQS.": "sqs.", "DynamoDB_20120810.": "dynamodb."}
TargetApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


# -- the counting server (runs in the server's process) --------------------------------------


class CountingApp:
    """WSGI wrapper: counts requests by operation and stores extra copies of chosen messages.

    ``GET /_peers/counts`` answers the counts so far. ``POST /_peers/duplicate`` with
    ``{"queue": name, "every": k}`` makes every k-th message sent to that queue (SendMessage or
    an entry of SendMessageBatch) be stored twice: the request is handled, then a copy of the
    message is sent with the same body and attributes (not counted). ``every`` 0 stops it.
    """

    def __init__(self, app: TargetApp) -> None:
        self._app = app
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.queue = ""
        self.every = 0
        self.seen = 0
        self.copies = 0

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if path == COUNTS_PATH:
            with self._lock:
                body = {"counts": dict(self.counts), "copies": self.copies}
            return _json_answer(start_response, body)
        if path == DUPLICATE_PATH:
            request = _read_json(environ)
            with self._lock:
                self.queue, self.every = str(request["queue"]), int(request["every"])
                self.seen = 0
            return _json_answer(start_response, {"ok": True})
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        if MONITOR_AGENT not in str(environ.get("HTTP_USER_AGENT", "")):
            with self._lock:
                self.counts[_operation(environ, target)] += 1
        if self.every and target in ("AmazonSQS.SendMessage", "AmazonSQS.SendMessageBatch"):
            return self._send_with_copies(environ, start_response, target)
        return self._app(environ, start_response)

    def _send_with_copies(
        self, environ: dict[str, Any], start_response: Callable[..., Any], target: str
    ) -> list[bytes]:
        raw = _read_body(environ)
        request = json.loads(raw or b"{}")
        copies: list[dict[str, Any]] = []
        if str(request.get("QueueUrl", "")).rstrip("/").endswith("/" + self.queue):
            entries = request.get("Entries", []) if target.endswith("Batch") else [request]
            with self._lock:
                for entry in entries:
                    self.seen += 1
                    if self.seen % self.every == 0:
                        copies.append(entry)
                self.copies += len(copies)
        answer = _drain(self._app, _with_body(environ, raw), start_response)
        for entry in copies:
            copy = {k: v for k, v in entry.items() if k not in ("Id", "QueueUrl")}
            copy["QueueUrl"] = request["QueueUrl"]
            single = {**environ, "HTTP_X_AMZ_TARGET": "AmazonSQS.SendMessage"}
            _drain(self._app, _with_body(single, json.dumps(copy).encode()), lambda *a: None)
        return answer


def _operation(environ: dict[str, Any], target: str) -> str:
    for prefix, service in SERVICES.items():
        if target.startswith(prefix):
            return service + target[len(prefix) :]
    from sqs_cluster.local.server import signing_service

    return f"{signing_service(environ) or 'unknown'}.{environ.get('REQUEST_METHOD', '?')}"


def _read_body(environ: dict[str, Any]) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return bytes(environ["wsgi.input"].read(length)) if length else b""


def _read_json(environ: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(_read_body(environ) or b"{}")
    return data


def _with_body(environ: dict[str, Any], body: bytes) -> dict[str, Any]:
    return {**environ, "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))}


def _drain(app: TargetApp, environ: dict[str, Any], start_response: Callable[..., Any]) -> list:
    body = app(environ, start_response)
    try:
        return list(body)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()


def _json_answer(start_response: Callable[..., Any], body: Any) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    )
    return [data]


def serve(argv: list[str]) -> int:
    """The local AWS server process, its application wrapped in a CountingApp."""
    from sqs_cluster.local import server

    build = server._build_app
    server._build_app = lambda: CountingApp(build())
    return server.main(argv)


class CountingLocalAWS(LocalAWS):
    """``LocalAWS`` whose server counts requests (the same server, started through ``serve``)."""

    def _command(self) -> list[str]:
        command = [sys.executable, str(HERE), "_serve", "--host", self.host]
        return [*command, "--port", "0", "--exit-on-stdin-eof"]

    def _control(self, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.endpoint_url}{path}", data=data)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=30) as response:
            return json.loads(response.read())

    def counts(self) -> Counter[str]:
        """Requests counted so far, by ``service.Operation``."""
        return Counter(self._control(COUNTS_PATH)["counts"])

    def copies(self) -> int:
        """Extra message copies stored so far."""
        return int(self._control(COUNTS_PATH)["copies"])

    def duplicate(self, queue: str, every: int) -> None:
        """Store a second copy of every ``every``-th message sent to ``queue`` (0: none)."""
        self._control(DUPLICATE_PATH, {"queue": queue, "every": every})


# -- the event file (tasks and callbacks write to it; no AWS request) -------------------------


class EventLog:
    """Append-only lines, one ``os.write`` each (atomic for short lines across threads)."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, *fields: object) -> None:
        """Append one line of space-separated fields."""
        os.write(self._fd, (" ".join(str(f) for f in fields) + "\n").encode())


def read_events(path: Path) -> list[list[str]]:
    """The lines written so far, split into fields."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    return [line.split() for line in text.splitlines() if line.strip()]


# -- Celery (imported only here) -------------------------------------------------------------


def require_celery() -> dict[str, str]:
    """Import celery, kombu's SQS transport and pycurl, or exit with what to install."""
    from importlib import metadata

    try:
        import celery  # noqa: F401
        import kombu.transport.SQS  # noqa: F401
        import pycurl  # noqa: F401
    except ImportError as exc:
        message = f"peers_celery needs Celery with SQS support ({exc}); {INSTALL_HINT}"
        raise SystemExit(message) from None
    return {dist: metadata.version(dist) for dist in ("celery", "kombu", "pycurl")}


def make_celery_app(endpoint: str, queue_name: str, queue_url: str, table: str) -> Any:
    """A Celery app on the local server: kombu's SQS broker, Celery's DynamoDB result backend."""
    from celery import Celery

    hostport = endpoint.split("://", 1)[1]
    app = Celery("peers")
    app.conf.update(
        broker_url=f"sqs://testing:testing@{hostport}",
        broker_transport_options={
            "region": REGION,
            "is_secure": False,  # the endpoint is http://<broker host>:<port>
            "predefined_queues": {
                queue_name: {
                    "url": queue_url,
                    "access_key_id": "testing",
                    "secret_access_key": "testing",
                }
            },
            "wait_time_seconds": 1,
            "polling_interval": 0,
        },
        broker_connection_retry_on_startup=True,
        # A local host as the "region" makes the backend use http://<host>:<port>.
        result_backend=f"dynamodb://testing:testing@{hostport}/{table}",
        task_default_queue=queue_name,
        task_serializer="json",
        result_serializer="json",
        worker_enable_remote_control=False,
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
    )
    return app


def celery_worker(argv: list[str]) -> int:
    """The ``celery worker`` process: the header task and the callback write to the event file."""
    parser = argparse.ArgumentParser(prog="peers_celery.py _celery_worker")
    for name in ("--endpoint", "--queue-name", "--queue-url", "--table", "--events"):
        parser.add_argument(name, required=True)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--pool", default="threads")
    parser.add_argument("--slow-item", type=int, default=-1)
    parser.add_argument("--slow-s", type=float, default=0.0)
    args = parser.parse_args(argv)
    require_celery()
    from celery.signals import worker_ready

    app = make_celery_app(args.endpoint, args.queue_name, args.queue_url, args.table)
    log = EventLog(args.events)

    @app.task(name="peers.work")
    def work(item: int) -> int:
        if item == args.slow_item:
            time.sleep(args.slow_s)
        log.write("task", item, os.getpid())
        return item * 2

    @app.task(name="peers.collect")
    def collect(results: list[int]) -> int:
        log.write("callback", len(results), sum(results), f"{time.time():.6f}")
        return len(results)

    @worker_ready.connect
    def ready(**_: Any) -> None:
        log.write("ready", os.getpid())

    app.worker_main(
        [
            "worker",
            f"--pool={args.pool}",
            f"--concurrency={args.concurrency}",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
            "--loglevel=WARNING",
            f"--queues={args.queue_name}",
        ]
    )
    return 0


def publish_chord(app: Any, tasks: int) -> Any:
    """Publish ``chord(header)(callback)``; returns the callback's AsyncResult."""
    from celery import chord

    header = [app.signature("peers.work", args=(i,)) for i in range(tasks)]
    return chord(header)(app.signature("peers.collect"))


def warm_celery(app: Any, queue_name: str) -> None:
    """Connect the producer and the result backend before the clock starts."""
    _ = app.backend.client  # describes (or creates) the backend's table
    with app.producer_or_acquire() as producer:
        producer.connection.ensure_connection()
        producer.channel.sqs(queue_name)


# -- sqs-cluster worker process ---------------------------------------------------------------


def cluster_worker(argv: list[str]) -> int:
    """The sqs-cluster worker process: a Worker whose handler calls ``safe_process_batch``."""
    parser = argparse.ArgumentParser(prog="peers_celery.py _cluster_worker")
    for name in ("--endpoint", "--table", "--bucket", "--queue-url", "--events"):
        parser.add_argument(name, required=True)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--slow-item", type=int, default=-1)
    parser.add_argument("--slow-s", type=float, default=0.0)
    args = parser.parse_args(argv)
    setup_env()
    asyncio.run(_cluster_worker(args))
    return 0


async def _cluster_worker(args: argparse.Namespace) -> None:
    from sqs_cluster import ClusterRecord, Worker, WorkerOptions

    config = Config(
        table=args.table,
        bucket=args.bucket,
        region=REGION,
        endpoint_url=args.endpoint,
        max_concurrency=32,
    )
    log = EventLog(args.events)
    async with MessageClient(config) as client:

        async def work(message: Any) -> int:
            item = int(message.task["item"])
            if item == args.slow_item:
                await asyncio.sleep(args.slow_s)
            log.write("task", item, os.getpid())
            return item * 2

        async def on_complete(cluster: ClusterRecord[Any, Any], get_globals: Any) -> None:
            log.write("callback", cluster.completed, "-", f"{time.time():.6f}")

        async def handler(event: dict[str, Any], context: Any) -> Any:
            return await client.safe_process_batch(event, work, on_cluster_complete=on_complete)

        options = WorkerOptions(batch_size=10, concurrency=args.concurrency, wait_seconds=1)
        worker = Worker(client, args.queue_url, handler, options)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, worker.stop)
        log.write("ready", os.getpid())
        await worker.run()


# -- the parent: one run of one side ----------------------------------------------------------


class Child:
    """A worker child process, its stderr in a file; stopped by PID (terminate, then kill)."""

    def __init__(self, argv: list[str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE), *argv],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=HERE.parent,
        )

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.proc.pid

    def alive(self) -> bool:
        """Whether it has not exited."""
        return self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM, wait 15 s, then SIGKILL. Idempotent."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def output_tail(self, size: int = 4000) -> str:
        """The end of what it wrote."""
        return self.log_path.read_text(errors="replace")[-size:]


def monitor_client(endpoint: str) -> Any:
    """A boto3 SQS client whose requests the server does not count."""
    import boto3
    from botocore.config import Config as BotoConfig

    return boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name=REGION,
        config=BotoConfig(user_agent_extra=MONITOR_AGENT),
    )


def queue_depth(sqs: Any, queue_url: str) -> int:
    """Visible plus in-flight messages."""
    attrs = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


def wait_ready(child: Child, events: Path, timeout: float = 60.0) -> None:
    """Wait for the worker's ``ready`` line."""
    deadline = time.monotonic() + timeout
    while not any(e[0] == "ready" for e in read_events(events)):
        if not child.alive():
            raise RuntimeError(f"worker exited during startup:\n{child.output_tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"worker not ready after {timeout:.0f} s:\n{child.output_tail()}")
        time.sleep(0.1)
    time.sleep(1.0)  # let its first receives start


def wait_callback(events: Path, tasks: int, timeout: float, child: Child) -> bool:
    """Wait until the callback has run and no task has run for a while (or it cannot come)."""
    started = time.monotonic()
    last_count, last_change = -1, started
    with progress_bar("  tasks run", tasks) as update:
        while True:
            lines = read_events(events)
            ran = sum(1 for e in lines if e[0] == "task")
            called = any(e[0] == "callback" for e in lines)
            update(min(ran, tasks))
            now = time.monotonic()
            if ran != last_count:
                last_count, last_change = ran, now
            quiet = now - last_change
            if quiet >= QUIET_SECONDS and (called or quiet >= NO_CALLBACK_SECONDS):
                return False
            if now - started > timeout or not child.alive():
                return True
            time.sleep(0.1)


def wait_drained(sqs: Any, queue_url: str, timeout: float) -> float | None:
    """Wait until the queue holds nothing, visible or in flight; returns when (epoch) or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if queue_depth(sqs, queue_url) == 0:
            return time.time()
        time.sleep(0.2)
    return None


def measure(
    aws: CountingLocalAWS,
    child: Child,
    queue_url: str,
    events: Path,
    args: argparse.Namespace,
    fan_out: Callable[[], tuple[float, float]],
) -> dict[str, Any]:
    """Run ``fan_out`` (returns its start, epoch, and duration), then wait for the fan-in."""
    sqs = monitor_client(aws.endpoint_url)
    load = HostLoad()
    load.start()
    cpu0 = (process_cpu_seconds(child.pid), process_cpu_seconds(aws.pid))
    before, copies0 = aws.counts(), aws.copies()
    started, fanout_s = fan_out()
    timeout = 300.0 + args.tasks / 10
    timed_out = wait_callback(events, args.tasks, timeout, child)
    at_callback = aws.counts()
    cpu = _cpu(cpu0, child.pid, aws.pid, load)
    drained = wait_drained(sqs, queue_url, args.visibility_timeout + 60.0)
    at_drained = aws.counts()
    return {
        "started": started,
        "fanout_s": fanout_s,
        "requests": at_callback - before,
        "requests_after": at_drained - at_callback,
        "drained_s": None if drained is None else round(drained - started, 3),
        "copies": aws.copies() - copies0,
        "lines": read_events(events),
        "timed_out": timed_out,
        "cpu": cpu,
    }


def summarise(variant: str, tasks: int, m: dict[str, Any]) -> dict[str, Any]:
    """Wall time, requests per task and what ran, from the counts and the event lines."""
    requests: Counter[str] = m["requests"]
    after: Counter[str] = m["requests_after"]
    lines = m["lines"]
    runs = Counter(int(e[1]) for e in lines if e[0] == "task")
    callbacks = [e for e in lines if e[0] == "callback"]
    wall = float(callbacks[0][3]) - m["started"] if callbacks else None
    return {
        "variant": variant,
        "fanout_s": round(m["fanout_s"], 3),
        "wall_s": round(wall, 3) if wall is not None else None,
        "tasks_per_s": round(tasks / wall, 1) if wall else None,
        "requests_per_task": round(sum(requests.values()) / tasks, 3),
        "requests_per_task_by_op": per_task(requests, tasks),
        "requests": sum(requests.values()),
        "drained_s": m["drained_s"],
        "requests_until_drained": sum(after.values()),
        "requests_until_drained_by_op": dict(after.most_common()),
        "copies": m["copies"],
        "task_runs": sum(runs.values()),
        "distinct_tasks_run": len(runs),
        "tasks_run_twice_or_more": sum(1 for n in runs.values() if n > 1),
        "callback_runs": len(callbacks),
        "callback_saw": [int(e[1]) for e in callbacks],
        "callback_sum_ok": [e[2] == "-" or int(e[2]) == tasks * (tasks - 1) for e in callbacks],
        "timed_out": m["timed_out"],
        "worker_cpu_s": m["cpu"]["worker"],
        "server_cpu_s": m["cpu"]["server"],
        **m["cpu"]["host"],
    }


def run_celery(
    aws: CountingLocalAWS, args: argparse.Namespace, scenario: Scenario, work: Path
) -> Any:
    """One chord: worker up, duplicates set, publish, wait for the callback, stop the worker."""
    endpoint = aws.endpoint_url
    name = f"celery-{uuid.uuid4().hex[:8]}"
    table = f"celery-results-{uuid.uuid4().hex[:8]}"
    config = Config(table=name, region=REGION, endpoint_url=endpoint)
    queue_url = asyncio.run(_make_queue(config, name, args.visibility_timeout))
    app = make_celery_app(endpoint, name, queue_url, table)
    warm_celery(app, name)
    events = work / f"{name}.events"
    child = Child(
        [
            "_celery_worker",
            *("--endpoint", endpoint, "--queue-name", name, "--queue-url", queue_url),
            *("--table", table, "--events", str(events)),
            *("--concurrency", str(args.concurrency), "--pool", args.pool),
            *("--slow-item", str(scenario.slow_item), "--slow-s", str(args.slow_s)),
        ],
        work / f"{name}.log",
    )
    result: list[Any] = []

    def fan_out() -> tuple[float, float]:
        started = time.time()
        result.append(publish_chord(app, args.tasks))
        return started, time.time() - started

    try:
        wait_ready(child, events)
        aws.duplicate(name, scenario.dup_every)
        m = measure(aws, child, queue_url, events, args, fan_out)
        aws.duplicate("", 0)
        row = summarise("celery chord", args.tasks, m)
        row["callback_state"] = _state(result[0])
        row["worker_log"] = _log_summary(child.output_tail(1_000_000))
    finally:
        child.stop()
    return row


def run_cluster(
    aws: CountingLocalAWS, args: argparse.Namespace, scenario: Scenario, work: Path
) -> Any:
    """One cluster: worker up, duplicates set, fan out, wait for the callback, stop the worker."""
    endpoint = aws.endpoint_url
    name = f"cluster-{uuid.uuid4().hex[:8]}"
    config = Config(
        table=name, bucket=name, region=REGION, endpoint_url=endpoint, max_concurrency=32
    )
    queue_url = asyncio.run(_make_queue(config, name, args.visibility_timeout))
    events = work / f"{name}.events"
    child = Child(
        [
            "_cluster_worker",
            *("--endpoint", endpoint, "--table", name, "--bucket", name),
            *("--queue-url", queue_url, "--events", str(events)),
            *("--concurrency", str(args.concurrency)),
            *("--slow-item", str(scenario.slow_item), "--slow-s", str(args.slow_s)),
        ],
        work / f"{name}.log",
    )

    loop = asyncio.new_event_loop()
    client = MessageClient(config)
    items = [{"item": i} for i in range(args.tasks)]

    def fan_out() -> tuple[float, float]:
        started = time.time()
        loop.run_until_complete(client.create_message_cluster(queue_url, items))
        return started, time.time() - started

    try:
        loop.run_until_complete(client.__aenter__())  # the client is open before the clock
        wait_ready(child, events)
        aws.duplicate(name, scenario.dup_every)
        m = measure(aws, child, queue_url, events, args, fan_out)
        aws.duplicate("", 0)
        row = summarise("sqs-cluster", args.tasks, m)
        row["worker_log"] = _log_summary(child.output_tail(1_000_000))
    finally:
        child.stop()
        loop.run_until_complete(client.__aexit__(None, None, None))
        loop.close()
    return row


async def _make_queue(config: Config, name: str, visibility_timeout: int) -> str:
    """A queue with a DLQ (3 receives), made the same way for both sides; the table too."""
    await ensure_resources(config)
    url = (
        await ensure_resources(config, queue_name=name, visibility_timeout=visibility_timeout)
    ).queue_url
    assert url is not None
    return url


def _cpu(
    cpu0: tuple[float | None, float | None], worker: int, server: int | None, load: HostLoad
) -> dict[str, Any]:
    w, s = process_cpu_seconds(worker), process_cpu_seconds(server)
    return {
        "worker": round(w - cpu0[0], 2) if w is not None and cpu0[0] is not None else None,
        "server": round(s - cpu0[1], 2) if s is not None and cpu0[1] is not None else None,
        "host": load.stop(),
    }


def _state(result: Any) -> dict[str, str]:
    """The callback's state as Celery's result backend records it, with a failure's reason."""
    try:
        state = str(result.state)
        reason = repr(result.result)[:400] if state == "FAILURE" else ""
    except Exception as exc:  # report, do not fail the benchmark
        return {"state": "unreadable", "reason": repr(exc)[:400]}
    return {"state": state, "reason": reason}


def _log_summary(text: str) -> dict[str, Any]:
    """How many worker log lines mention each chord-related problem, and the first few."""
    keys = {
        "chord_raised": "' raised: ",
        "counter_too_many": "incremented too many times",
        "traceback": "Traceback",
    }
    summary: dict[str, Any] = {name: text.count(needle) for name, needle in keys.items()}
    lines = text.splitlines()
    errors = [line.strip()[:400] for line in lines if "ERROR" in line]
    summary["first_errors"] = errors[:3]
    warnings = [
        line.strip()[:300] for line in lines if "WARNING" in line and "local-only" not in line
    ]
    summary["first_warnings"] = warnings[:2]
    return summary


# -- main -------------------------------------------------------------------------------------


class Scenario(NamedTuple):
    """One run's conditions: which messages get a second copy, which task is slow."""

    label: str
    dup_every: int  # 0: no copies
    slow_item: int  # -1: none


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    """Clean; with duplicates; with duplicates and one slow task among the last ones.

    The slow task is the fifth from the end, which gets no copy itself (with ``--dup-every``
    10): the copies of the others are what can make a count of deliveries reach the total
    before it has finished.
    """
    dup = f"duplicates every {args.dup_every}"
    late = max(0, args.tasks - 5)
    return [
        Scenario("clean", 0, -1),
        Scenario(dup, args.dup_every, -1),
        Scenario(f"{dup}, task {late} takes {args.slow_s:g} s", args.dup_every, late),
    ]


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every scenario, each side in turn, on one counting server."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="peers-celery-") as tmp, CountingLocalAWS() as aws:
        work = Path(tmp)
        for scenario in scenarios(args):
            for side, runner in (("sqs-cluster", run_cluster), ("celery chord", run_celery)):
                console().print(f"[bold]{side}[/], {scenario.label}")
                row = runner(aws, args, scenario, work)
                row["scenario"] = scenario.label
                rows.append(row)
    return rows


def ok_row(row: dict[str, Any], tasks: int) -> bool:
    """The callback ran exactly once, after every task, with every result."""
    return (
        row["callback_runs"] == 1
        and row["callback_saw"] == [tasks]
        and all(row["callback_sum_ok"])
        and row["distinct_tasks_run"] == tasks
    )


def print_table(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """The rich table of every run."""
    from rich.table import Table

    table = Table(
        title=f"{args.tasks} tasks, {args.concurrency}-way workers, local AWS (moto)",
    )
    columns = ("scenario", "system", "fan-out s", "total s", "req/task", "drained s", "runs")
    for column in (*columns, "callbacks", "callback saw", "ok"):
        table.add_column(column, justify="left" if column in ("scenario", "system") else "right")
    for r in rows:
        table.add_row(
            r["scenario"],
            r["variant"],
            f"{r['fanout_s']:.2f}",
            "-" if r["wall_s"] is None else f"{r['wall_s']:.2f}",
            f"{r['requests_per_task']:.2f}",
            "-" if r["drained_s"] is None else f"{r['drained_s']:.1f}",
            str(r["task_runs"]),
            str(r["callback_runs"]),
            ",".join(str(n) for n in r["callback_saw"]) or "-",
            "yes" if r["ok"] else "NO",
        )
    console().print(table)


def main() -> None:
    """Dispatch the child roles, or run the comparison, print the table, save JSON."""
    roles = {"_serve": serve, "_celery_worker": celery_worker, "_cluster_worker": cluster_worker}
    if len(sys.argv) > 1 and sys.argv[1] in roles:
        raise SystemExit(roles[sys.argv[1]](sys.argv[2:]))
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000, help="header tasks / cluster tasks")
    parser.add_argument("--concurrency", type=int, default=8, help="worker threads / pollers")
    parser.add_argument(
        "--dup-every", type=int, default=10, help="duplicate every N-th task message"
    )
    parser.add_argument(
        "--visibility-timeout",
        type=int,
        default=30,
        help="of both queues: a delivery set aside comes back after it",
    )
    parser.add_argument(
        "--slow-s", type=float, default=10.0, help="how long the slow task of the third run takes"
    )
    parser.add_argument("--pool", default="threads", help="celery worker pool (threads, prefork)")
    parser.add_argument("--json", help="result path (default results/peers-celery-<N>.json)")
    args = parser.parse_args()
    if args.tasks < 1 or args.concurrency < 1 or args.dup_every < 1:
        parser.error("--tasks, --concurrency and --dup-every must be >= 1")
    versions = require_celery()
    setup_env()
    logging.getLogger("celery.backends.dynamodb").setLevel(logging.ERROR)
    started = time.time()
    rows = run(args)
    for row in rows:
        row["ok"] = ok_row(row, args.tasks)
    print_table(rows, args)
    path = Path(args.json) if args.json else RESULTS / f"peers-celery-{args.tasks}.json"
    header = result_header("peers_celery", started)
    header["machine"]["versions"].update(versions)
    write_json(
        path,
        {
            **header,
            "tasks": args.tasks,
            "concurrency": args.concurrency,
            "dup_every": args.dup_every,
            "server": "LocalAWS() with a request-counting WSGI wrapper",
            "runs": rows,
        },
    )
    console().print(f"results written to {path}")


if __name__ == "__main__":
    main()
