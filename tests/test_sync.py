"""The blocking facade ``sqs_cluster.sync``: parity, lifecycle, concurrency, warmth, generator.

The behaviour tests of the other modules also run through the facade (the ``client`` fixture
is parametrised over both APIs); these tests cover what only the facade has.
"""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import gc
import hashlib
import importlib.util
import inspect
import itertools
import re
import shutil
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from typing_extensions import assert_type

import sqs_cluster
from sqs_cluster import ENV_VARS, Config, SQSClusterError, Status, sync

from .conftest import Queue, receive_event

ROOT = Path(__file__).resolve().parent.parent
GENERATOR = ROOT / "scripts" / "gen_sync.py"
LIFECYCLE = {"__aenter__": "__enter__", "__aexit__": "__exit__", "aclose": "close"}
PORTAL_THREAD = "sqs-cluster-MessageClient-"
HAND_WRITTEN = "_callbacks.py"  # the one module of sync/ that is not generated


# -- parity: every async entry point has a blocking twin -----------------------------------------


def has_async_methods(cls: type) -> bool:
    return any(
        inspect.iscoroutinefunction(v) for n, v in inspect.getmembers(cls) if not n.startswith("_")
    )


def twin_pairs() -> Iterator[tuple[str, Any, Any]]:
    """(name, async object, sync object) for every name of the public API."""
    for name in sqs_cluster.__all__:
        yield name, getattr(sqs_cluster, name), getattr(sync, name)


def parameters(fn: Callable[..., Any]) -> list[tuple[str, Any, Any]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


def public_members(cls: type) -> dict[str, Any]:
    members = {n: inspect.getattr_static(cls, n) for n in dir(cls) if not n.startswith("_")}
    members.update({n: getattr(cls, n) for n in LIFECYCLE if hasattr(cls, n)})
    return members


def test_every_public_async_entry_point_has_a_blocking_twin() -> None:
    for name, async_obj, sync_obj in twin_pairs():
        if inspect.iscoroutinefunction(async_obj):
            assert not inspect.iscoroutinefunction(sync_obj), name
            assert parameters(sync_obj) == parameters(async_obj), name
        elif isinstance(async_obj, type) and has_async_methods(async_obj):
            assert sync_obj is not async_obj, f"{name} has no blocking twin"
            assert_class_twin(name, async_obj, sync_obj)


def assert_class_twin(name: str, async_cls: type, sync_cls: type) -> None:
    if not dataclasses.is_dataclass(async_cls):  # users construct it (not a returned value)
        init, async_init = vars(sync_cls)["__init__"], vars(async_cls)["__init__"]
        assert parameters(init) == parameters(async_init), f"{name}.__init__"
    fields = getattr(async_cls, "__dataclass_fields__", {})
    for field_name in fields:
        assert hasattr(sync_cls, field_name), f"{name}.{field_name} is not forwarded"
    for member, value in public_members(async_cls).items():
        if member in fields:
            continue
        twin_name = LIFECYCLE.get(member, member)
        twin = inspect.getattr_static(sync_cls, twin_name, None)
        where = f"{name}.{member}"
        assert twin is not None, f"{where} has no blocking twin {twin_name}"
        if isinstance(value, property):
            assert isinstance(twin, property), where
            continue
        assert inspect.isfunction(twin) and not inspect.iscoroutinefunction(twin), where
        assert parameters(twin) == parameters(value), where


def test_the_facade_has_no_async_in_sight() -> None:
    for name in sync.__all__:
        obj = getattr(sync, name)
        assert not inspect.iscoroutinefunction(obj), name
        if isinstance(obj, type):
            assert not has_async_methods(obj), name


def test_generated_files_say_do_not_edit() -> None:
    paths = {path.name: path for path in (ROOT / "src" / "sqs_cluster" / "sync").glob("*.py")}
    assert not paths.pop(HAND_WRITTEN).read_text().startswith("# Generated")
    assert paths
    for path in paths.values():
        assert path.read_text().startswith("# Generated — do not edit"), path.name


def alias_docstrings(path: Path) -> dict[str, str]:
    """The docstrings written under the module-level assignments of ``path``."""
    body = ast.parse(path.read_text()).body
    return {
        target.id: inspect.cleandoc(after.value.value)
        for stmt, after in itertools.pairwise(body)
        if isinstance(stmt, ast.Assign) and isinstance(after, ast.Expr)
        if isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)
        for target in stmt.targets
        if isinstance(target, ast.Name)
    }


def test_the_blocking_callback_types_say_they_take_a_plain_function() -> None:
    docs = alias_docstrings(ROOT / "src" / "sqs_cluster" / "sync" / HAND_WRITTEN)
    assert sync.Handler is sync._callbacks.Handler
    assert sync.ClusterCallback is sync._callbacks.ClusterCallback
    assert sync.SuccessHook is sync._callbacks.SuccessHook
    assert sync.FailureHook is sync._callbacks.FailureHook
    for name in ("Handler", "ClusterCallback", "SuccessHook", "FailureHook"):
        assert "sync or async" not in docs[name], name
        assert "a plain function" in docs[name], name


def test_view_properties_carry_the_async_docstrings() -> None:
    for name in ("ClusterRecord", "ReceivedMessage", "Worker", "MessageClient"):
        async_cls, sync_cls = getattr(sqs_cluster, name), getattr(sync, name)
        properties = [n for n, v in vars(async_cls).items() if isinstance(v, property)]
        assert properties or name == "Worker", name
        for member in properties:
            twin, original = getattr(sync_cls, member), getattr(async_cls, member)
            assert isinstance(twin, property), f"{name}.{member}"
            assert inspect.getdoc(twin) == inspect.getdoc(original), f"{name}.{member}"


# -- lifecycle ------------------------------------------------------------------------------------


def portal_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(PORTAL_THREAD)]


def wait_for_threads(
    baseline: set[threading.Thread], timeout: float = 5.0
) -> set[threading.Thread]:
    """Threads beyond ``baseline`` once they had ``timeout`` seconds to finish."""
    deadline = time.monotonic() + timeout
    while (extra := set(threading.enumerate()) - baseline) and time.monotonic() < deadline:
        time.sleep(0.02)
    return extra


async def running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def test_close_leaves_no_thread_loop_or_client_behind(base_config: Config, queue: Queue) -> None:
    baseline = set(threading.enumerate())
    client = sync.MessageClient(base_config)
    assert set(threading.enumerate()) == baseline  # constructing starts nothing
    key = client.send_message(queue.url, "x")
    assert client.get_message_record(key).key == key
    assert len(portal_threads()) == 1
    loop = client._call(running_loop)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        client.close()
        client.close()  # idempotent
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert portal_threads() == []
    assert loop.is_closed()
    assert wait_for_threads(baseline) == set()
    with pytest.raises(SQSClusterError, match="closed"):
        client.get_message_record(key)


def test_with_block_opens_eagerly_and_closes(base_config: Config) -> None:
    with sync.MessageClient(base_config) as client:
        assert len(portal_threads()) == 1
        assert client.config is base_config
    assert portal_threads() == []


def test_a_forgotten_client_is_closed_when_collected(base_config: Config, queue: Queue) -> None:
    baseline = set(threading.enumerate())
    client = sync.MessageClient(base_config)
    client.send_message(queue.url, "x")
    del client
    gc.collect()
    assert wait_for_threads(baseline) == set()


async def test_blocking_calls_work_inside_a_running_event_loop(
    base_config: Config, queue: Queue
) -> None:
    asyncio.get_running_loop()  # this test's own loop is running right here
    resources = sync.ensure_resources(base_config)
    assert resources.table == base_config.table
    with sync.MessageClient(base_config) as client:
        key = client.send_message(queue.url, {"from": "a coroutine"})
        assert client.get_message_record(key, consistent_read=True).status is Status.PRE_FLIGHT


def test_clients_stay_warm_between_calls(base_config: Config, queue: Queue) -> None:
    with sync.MessageClient(base_config) as client:
        key = client.send_message(queue.url, "x")
        client.get_message_record(key)
        ddb, loop = client._core._aws.ddb, client._call(running_loop)
        client.get_message_record(key)
        assert client._core._aws.ddb is ddb  # the same aiobotocore client, pool and all
        assert client._call(running_loop) is loop


# -- callbacks: plain functions in worker threads, with blocking getters -------------------------


def test_ten_slow_sync_handlers_run_concurrently(
    base_config: Config, queue: Queue, sqs: Any
) -> None:
    together = threading.Barrier(10, timeout=10)  # breaks unless all ten run at the same time
    lock = threading.Lock()
    active = {"now": 0, "max": 0}
    seen: list[tuple[str, Status]] = []

    def handler(message: sync.ReceivedMessage[Any]) -> None:
        with lock:
            active["now"] += 1
            active["max"] = max(active["max"], active["now"])
        together.wait()
        record = message.get_message_record(consistent_read=True)  # blocks in this thread
        time.sleep(0.2)
        with lock:
            active["now"] -= 1
            seen.append((threading.current_thread().name, record.status))

    with sync.MessageClient(base_config) as client:
        client.send_message_batch(queue.url, list(range(10)))
        event = receive_event(sqs, queue.url, max_messages=10)
        assert client.safe_process_batch(event, handler) == {"batchItemFailures": []}
    assert active["max"] == 10
    assert len(seen) == 10 and {status for _, status in seen} == {Status.IN_PROGRESS}
    assert not any(name.startswith(PORTAL_THREAD) for name, _ in seen)


def test_sync_cluster_callback_gets_a_view_and_blocking_globals(
    base_config: Config, queue: Queue, sqs: Any
) -> None:
    calls: list[tuple[sync.ClusterRecord[Any, Any], Any]] = []

    def on_complete(cluster: sync.ClusterRecord[Any, Any], get_globals: Callable[[], Any]) -> None:
        calls.append((cluster, get_globals()))

    with sync.MessageClient(base_config) as client:
        key = client.create_message_cluster(queue.url, [1, 2], globals={"g": 1}, meta={"m": 2})
        event = receive_event(sqs, queue.url, max_messages=2)
        tasks = [client.read_sqs_record(r) for r in event["Records"]]
        assert all(isinstance(t, sync.ReceivedMessage) and t.client is client for t in tasks)
        assert tasks[0].get_globals() == {"g": 1}
        response = client.safe_process_batch(event, lambda m: None, on_cluster_complete=on_complete)
        assert response == {"batchItemFailures": []}
        ((cluster, globals_value),) = calls
        assert isinstance(cluster, sync.ClusterRecord) and cluster.completed == 2
        assert globals_value == {"g": 1}
        check_generics_survive(client.get_message_cluster(key, consistent_read=True), tasks[0])


def check_generics_survive(
    cluster: sync.ClusterRecord[dict[str, int], dict[str, int]],
    message: sync.ReceivedMessage[dict[str, Any]],
) -> None:
    """Type parameters flow through the facade (mypy checks this function; it runs too)."""
    assert_type(cluster.meta, dict[str, int] | None)
    assert_type(cluster.get_globals(), dict[str, int])
    assert_type(message.body, dict[str, Any])
    tasks = list(cluster.iter_tasks())
    assert [t.task_index for t in tasks] == [0, 1]
    assert cluster.meta == {"m": 2} and message.body["task"] == message.task


def test_a_blocking_call_on_the_facade_loop_fails_clearly(
    base_config: Config, queue: Queue, sqs: Any
) -> None:
    with sync.MessageClient(base_config) as client:

        async def handler(message: Any) -> None:  # async: runs on the facade's own loop
            client.get_message_record(message.key)

        client.send_message(queue.url, "x")
        event = receive_event(sqs, queue.url)
        response = client.safe_process_batch(event, handler)
        assert len(response["batchItemFailures"]) == 1
        record = client.read_sqs_record(event["Records"][0]).get_message_record(True)
        assert "facade's own event loop" in record.errors[-1].message


def test_a_classic_handler_runs_under_the_blocking_worker(
    base_config: Config, queue: Queue
) -> None:
    seen: list[int] = []
    with sync.MessageClient(base_config) as client:

        def handle(message: sync.ReceivedMessage[int]) -> None:
            seen.append(message.body)

        def handler(event: dict[str, Any], context: Any) -> sync.PartialBatchResponse:
            assert context.get_remaining_time_in_millis() > 0
            return client.safe_process_batch(event, handle)  # from a worker thread of the loop

        client.send_message_batch(queue.url, list(range(5)))
        options = sync.WorkerOptions(wait_seconds=0, max_empty_polls=1)
        stats = sync.run_worker(queue.url, handler, client=client, options=options)
    assert sorted(seen) == list(range(5))
    assert (stats.received, stats.succeeded, stats.failed) == (5, 5, 0)


def test_a_blocking_worker_can_be_stopped_from_its_handler(
    base_config: Config, queue: Queue
) -> None:
    batches: list[int] = []
    with sync.MessageClient(base_config) as client:

        def handler(event: dict[str, Any], context: Any) -> None:
            batches.append(len(event["Records"]))
            worker.stop()  # from the handler's thread; the worker's state lives on the loop

        client.send_message_batch(queue.url, [1, 2, 3])
        worker = sync.Worker(client, queue.url, handler, sync.WorkerOptions(wait_seconds=1))
        assert worker.client is client
        stats = worker.run()
    assert stats is worker.stats and batches == [stats.succeeded] and stats.batches == 1


# -- the example and the docs ---------------------------------------------------------------------


def load_example(monkeypatch: pytest.MonkeyPatch, config: Config) -> ModuleType:
    for name in ("table", "bucket", "region", "endpoint_url"):
        monkeypatch.setenv(ENV_VARS[name], str(getattr(config, name)))
    spec = importlib.util.spec_from_file_location(
        "classic_handler", ROOT / "examples" / "classic_handler.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_classic_handler_example_stays_warm_across_invocations(
    monkeypatch: pytest.MonkeyPatch, base_config: Config, queue: Queue, sqs: Any
) -> None:
    example = load_example(monkeypatch, base_config)
    client: sync.MessageClient = example.client()
    try:
        warm = []
        for invocation in range(2):
            orders = [{"id": f"{invocation}-{i}", "quantity": i} for i in range(3)]
            client.send_message_batch(queue.url, orders)
            event = receive_event(sqs, queue.url, max_messages=3)
            response = example.handler(event, None)
            bad = [r["messageId"] for r in event["Records"] if '"quantity":0' in r["body"]]
            assert response == {"batchItemFailures": [{"itemIdentifier": bad[0]}]}
            warm.append((client._core._aws.ddb, client._call(running_loop)))
            assert example.client() is client  # the same client for every invocation
        assert warm[0][0] is warm[1][0] and warm[0][1] is warm[1][1]
    finally:
        client.close()


def doc_blocks() -> list[str]:
    text = (ROOT / "docs" / "sync.md").read_text()
    return re.findall(r"^```python\n(.*?)^```$", text, re.M | re.S)


def test_docs_quote_the_example_verbatim() -> None:
    example = (ROOT / "examples" / "classic_handler.py").read_text()
    assert example in doc_blocks()


def test_docs_script_runs() -> None:
    """As a reader would run it: its own process, its own local AWS."""
    (script,) = [b for b in doc_blocks() if "LocalAWS" in b]
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "100 records, first is PRE FLIGHT"


# -- the generator --------------------------------------------------------------------------------


def run_generator(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(root / "scripts" / "gen_sync.py"), *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=root, timeout=120)


def test_generated_package_is_up_to_date() -> None:
    result = run_generator(ROOT, "--check")
    assert result.returncode == 0, result.stderr


def copy_tree(tmp_path: Path) -> Path:
    """A copy of the sources and the generator to run it on; returns its ``sync/`` folder."""
    ignore = shutil.ignore_patterns("__pycache__")
    for folder in ("src", "scripts"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path / "src" / "sqs_cluster" / "sync"


def test_check_fails_on_a_damaged_copy_of_the_tree_and_regenerating_repairs_it(
    tmp_path: Path,
) -> None:
    generated = copy_tree(tmp_path)
    add_orphan(generated / "_old.py")
    edit(generated / "_client.py")
    result = run_generator(tmp_path, "--check")
    assert result.returncode == 1
    assert "gen_sync --check: orphan: _old.py" in result.stderr
    assert "gen_sync --check: edited by hand: _client.py" in result.stderr
    assert run_generator(tmp_path).returncode == 0
    result = run_generator(tmp_path, "--check")
    assert result.returncode == 0, result.stderr
    assert not (generated / "_old.py").exists()
    hand_written = ROOT / "src" / "sqs_cluster" / "sync" / HAND_WRITTEN
    assert (generated / HAND_WRITTEN).read_text() == hand_written.read_text()  # left alone


def test_a_field_documented_in_the_async_source_is_documented_in_its_twin(
    tmp_path: Path,
) -> None:
    generated = copy_tree(tmp_path)
    model = tmp_path / "src" / "sqs_cluster" / "_clusters" / "model.py"
    field = "    url: str\n"
    assert field in model.read_text()
    model.write_text(
        model.read_text().replace(field, f'{field}    """The queue of its tasks."""\n')
    )
    result = run_generator(tmp_path)
    assert result.returncode == 0, result.stderr
    tree = ast.parse((generated / "_clusters_model.py").read_text())
    docs = {
        node.name: ast.get_docstring(node)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef)
    }
    assert docs["url"] == "The queue of its tasks."
    assert docs["id"] == "The cluster id (``pKey`` without ``SQSMessage$``)."


def overload_signatures(tree: ast.Module, name: str) -> list[str]:
    """``name``'s ``@overload`` stubs in a module or class source, as ``async? (args) -> ret``."""
    return [
        f"{'async ' if isinstance(node, ast.AsyncFunctionDef) else ''}"
        f"({ast.unparse(node.args)}) -> {ast.unparse(node.returns or ast.Constant(None))}"
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.name == name
        and any(ast.unparse(d) == "overload" for d in node.decorator_list)
    ]


@pytest.mark.parametrize("method", ["update_message_cluster_globals", "update_cluster_globals"])
def test_overloads_are_copied_without_async_and_without_async_callbacks(
    fresh_tree: Path, method: str
) -> None:
    source = ast.parse((ROOT / "src" / "sqs_cluster" / "_client" / "clusters.py").read_text())
    originals = overload_signatures(source, method)
    blocking = overload_signatures(ast.parse((fresh_tree / "_client.py").read_text()), method)
    assert len(originals) == 3 and all(o.startswith("async (") for o in originals)
    expected = [o.removeprefix("async ") for o in originals if "Awaitable" not in o]
    assert blocking == expected
    assert len(blocking) == 2


def test_check_reports_a_stale_overload(tmp_path: Path) -> None:
    generated = copy_tree(tmp_path)
    clusters = tmp_path / "src" / "sqs_cluster" / "_client" / "clusters.py"
    stub = "value_or_fn: Callable[[Value], Value]\n    ) -> Value: ..."
    assert stub in clusters.read_text()
    clusters.write_text(clusters.read_text().replace(stub, stub.replace("-> Value", "-> int"), 1))
    result = run_generator(tmp_path, "--check")
    assert result.returncode == 1
    assert "gen_sync --check: stale (the async API changed): _client.py" in result.stderr
    assert run_generator(tmp_path).returncode == 0
    text = (generated / "_client.py").read_text()
    (changed,) = [
        s
        for s in overload_signatures(ast.parse(text), "update_message_cluster_globals")
        if s.endswith("-> int")
    ]
    assert changed.startswith("(self, key: ClusterKeyLike, value_or_fn: Callable[[Value], Value])")


@pytest.fixture(scope="module")
def gen_sync() -> Iterator[ModuleType]:
    """The generator, imported (it introspects the same tree as this process)."""
    spec = importlib.util.spec_from_file_location("gen_sync", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_sync"] = module  # its dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules["gen_sync"]


@pytest.fixture(scope="module")
def fresh_tree(gen_sync: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder: Path = tmp_path_factory.mktemp("generated") / "sync"
    gen_sync.render_tree(folder)
    return folder


def edit(path: Path) -> None:
    path.write_text(path.read_text().replace("def send_message(", "def send_message_(", 1))


def append(path: Path) -> None:
    path.write_text(path.read_text() + "\nEXTRA = 1\n")


def restamp(path: Path) -> None:
    """What an older API would have generated: the body differs, its digest matches it."""
    header, digest_line, body = path.read_text().split("\n", 2)
    body = body.replace("queue_url: str", "queue: str", 1)
    digest = hashlib.sha256(body.encode()).hexdigest()[:16]
    digest_line = re.sub(r"[0-9a-f]{16}", digest, digest_line, count=1)
    path.write_text(f"{header}\n{digest_line}\n{body}")


def add_orphan(path: Path) -> None:
    path.write_text("x = 1\n")


MUTATIONS: dict[str, tuple[str, Callable[[Path], None]]] = {
    "edited": ("edited by hand: _client.py", lambda d: edit(d / "_client.py")),
    "appended": ("edited by hand: _messages_event.py", lambda d: append(d / "_messages_event.py")),
    "missing": ("missing: _aws_provision.py", lambda d: (d / "_aws_provision.py").unlink()),
    "orphan": ("orphan: _old.py", lambda d: add_orphan(d / "_old.py")),
    "stale": ("stale (the async API changed): _client.py", lambda d: restamp(d / "_client.py")),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_check_names_each_kind_of_damage(
    gen_sync: ModuleType, fresh_tree: Path, tmp_path: Path, mutation: str
) -> None:
    expected, mutate = MUTATIONS[mutation]
    damaged = tmp_path / "sync"
    shutil.copytree(fresh_tree, damaged)
    assert gen_sync.compare(fresh_tree, damaged) == []
    mutate(damaged)
    (problem,) = gen_sync.compare(fresh_tree, damaged)
    assert problem.startswith(expected)


HOOKS = {"SuccessHook": "callback", "FailureHook": "callback"}


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        (
            "HAND_WRITTEN",
            {**HOOKS, "Handler": "callback", "ClusterCallback": "callback", "RecordLike": "alias"}
            | {"N": ""},
            "HAND_WRITTEN['N']",
        ),
        (
            "HAND_WRITTEN",
            {**HOOKS, "Handler": "callback", "RecordLike": "alias"},
            "ClusterCallback needs a twin",
        ),
        (
            "TYPE_RULES",
            {"AsyncIterator": "Iterator", "AsyncIterable": "Iterable", "Xyz": "X"},
            "TYPE_RULES['Xyz']",
        ),
        ("DOC_RULES", {"``async with ": "``with ", "qq": "q"}, "DOC_RULES['qq']"),
        ("LIFECYCLE", ("aclose", "nope"), "LIFECYCLE['nope']"),
        (
            "ATTRIBUTE_TYPES",
            {
                "Worker.queue_url": "str",
                "Worker.handler": "LambdaHandler",
                "Worker.options": "WorkerOptions",
            },
            "Worker.stats has no type",
        ),
        (
            "ATTRIBUTE_TYPES",
            {
                "Worker.queue_url": "str",
                "Worker.handler": "LambdaHandler",
                "Worker.options": "WorkerOptions",
                "Worker.stats": "WorkerStats",
                "Worker.gone": "int",
            },
            "ATTRIBUTE_TYPES['Worker.gone']",
        ),
    ],
    ids=[
        "unused-alias",
        "unwritten-alias",
        "unused-type-rule",
        "unused-doc-rule",
        "unused-lifecycle",
        "untyped",
        "unused-type",
    ],
)
def test_configuration_that_does_not_match_the_api_fails(
    gen_sync: ModuleType, monkeypatch: pytest.MonkeyPatch, setting: str, value: Any, message: str
) -> None:
    monkeypatch.setattr(gen_sync, setting, value)
    with pytest.raises(gen_sync.GenerationError, match=re.escape(message)):
        gen_sync.generate()
