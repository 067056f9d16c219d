"""The public API stays put, the docs use only public names, and the architecture page is true.

Removing or renaming an exported name, a client method or a parameter breaks callers, so the
names are written out here: such a change fails a test, while adding names does not. No test
in this file needs a server.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import sqs_cluster
import sqs_cluster.sync
from sqs_cluster import Config

from .docblocks import DOCS, FENCE, code_blocks

ROOT = DOCS.parent
PACKAGE = ROOT / "src" / "sqs_cluster"

# -- exported names --------------------------------------------------------------------------

CORE_NAMES = (
    "Backoff",
    "BatchFailedError",
    "BatchItemFailure",
    "CallbackState",
    "Claim",
    "ClaimOutcome",
    "ClusterCallback",
    "ClusterRecord",
    "ClusterSendError",
    "Config",
    "ConfigError",
    "ConflictError",
    "ENV_VARS",
    "ErrorEntry",
    "FailureHook",
    "Handler",
    "IdempotencyConflictError",
    "LambdaContext",
    "MalformedEventError",
    "Message",
    "MessageClient",
    "MessageInProgressError",
    "MessageRecord",
    "PartialBatchResponse",
    "PartialSendError",
    "RedriveError",
    "QueueArn",
    "ReceivedMessage",
    "RecordKey",
    "RecordNotFoundError",
    "RecordType",
    "ResourceMissingError",
    "Resources",
    "RetryAfter",
    "SQSClusterError",
    "SentKeys",
    "Status",
    "StatusCode",
    "SuccessHook",
    "UnsentMessage",
    "ValidationError",
    "Worker",
    "WorkerOptions",
    "WorkerStats",
    "__version__",
    "ensure_resources",
    "parse_record",
    "run_worker",
)
SYNC_NAMES = CORE_NAMES  # the blocking facade exports the same names
LOCAL_NAMES = ("LocalAWS", "LocalAWSError", "LocalResources")
TESTING_NAMES = (
    "Access",
    "ENV_VAR",
    "FAULT_SCOPE",
    "FaultInjector",
    "FaultKind",
    "IAM_ACTIONS",
    "InjectedFault",
    "OperationRecorder",
    "REQUEST_KINDS",
    "clients_of",
    "fault_services",
    "iam_match",
    "install_from_env",
    "required_access",
)


@pytest.mark.parametrize(
    ("module", "names"),
    [
        ("sqs_cluster", CORE_NAMES),
        ("sqs_cluster.sync", SYNC_NAMES),
        ("sqs_cluster.local", LOCAL_NAMES),
        ("sqs_cluster.testing", TESTING_NAMES),
    ],
)
def test_exported_names_are_still_exported(module: str, names: tuple[str, ...]) -> None:
    imported = importlib.import_module(module)
    exported = set(imported.__all__)
    assert [n for n in names if n not in exported] == [], f"{module}.__all__ lost names"
    assert [n for n in names if not hasattr(imported, n)] == [], f"{module} lacks names"


# -- both MessageClients ---------------------------------------------------------------------

METHODS = {
    "__init__": "config=, *, session=, clients=",
    "add_request_hook": "hook",
    "change_visibility": "queue_url, receipt_handles, timeout",
    "claim": "record",
    "create_message_cluster": (
        "queue_url, tasks, *, globals=, meta=, omit_globals=, cluster_id=, progress=, "
        "tolerated_failures=, message_group_id=, on_complete="
    ),
    "delete_messages": "messages",
    "get_message_cluster": "key, consistent_read=",
    "get_message_cluster_globals": "key",
    "get_message_record": "key, consistent_read=, *, load_body=",
    "get_message_records": "keys",
    "is_complete": "record",
    "is_last_receive": "record",
    "iter_tasks": "cluster, status=",
    "iter_results": "key",
    "resolve_sqs_record": "record",
    "wait_for_message_cluster": "key, timeout=, *, poll_seconds=, progress=",
    "log_failure": "message, exc",
    "mark_complete": "record, result=",
    "mark_failed": "record, error",
    "max_receive_count": "queue_url",
    "on_cluster_complete": "key, callback",
    "process_dead_letters": "event, *, on_cluster_complete=, concurrency=",
    "queue_visibility_timeout": "queue_url",
    "read_sqs_record": "record",
    "receive_messages": "queue_url, *, max_messages=, wait_seconds=, visibility_timeout=",
    "resend_unsent": "error, *, progress=",
    "safe_process_batch": (
        "event, handler, *, track=, concurrency=, delete_succeeded=, on_cluster_complete=, "
        "context=, retry=, deadline_margin_seconds=, raise_on_entire_batch_failure=, "
        "on_success=, on_failure="
    ),
    "send_message": "queue_url, body, *, meta=, idempotency_key=, **sqs_params",
    "send_message_batch": "queue_url, entries, *, meta=, progress=",
    "update_cluster_globals": "key, value_or_fn",
    "update_message_cluster": "key, changes_or_fn",
    "update_message_cluster_globals": "key, value_or_fn",
    "update_message_record": "key, changes_or_fn",
}
"""Parameters after ``self``, as in a signature; ``name=`` has a default."""

ASYNC_LIFECYCLE = {"__aenter__": "", "__aexit__": "*exc", "aclose": ""}
SYNC_LIFECYCLE = {"__enter__": "", "__exit__": "*exc", "close": ""}
PROPERTIES = ("request_counts",)
ATTRIBUTES = ("config",)
NOT_COROUTINES = (
    "__init__",
    "add_request_hook",
    "iter_tasks",
    "iter_results",
    "log_failure",
    "read_sqs_record",
)
"""Methods of the async client that are plain ``def``; every other one is ``async def``."""

CLIENTS: dict[str, tuple[type[Any], dict[str, str]]] = {
    "async": (sqs_cluster.MessageClient, {**METHODS, **ASYNC_LIFECYCLE}),
    "sync": (sqs_cluster.sync.MessageClient, {**METHODS, **SYNC_LIFECYCLE}),
}


Kind = inspect._ParameterKind


def _parse(spec: str) -> list[tuple[str, Kind, bool]]:
    """``"a, b=, *, c=, **kw"`` as (name, kind, has default) per parameter."""
    params: list[tuple[str, Kind, bool]] = []
    kind: Kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    for token in filter(None, (t.strip() for t in spec.split(","))):
        if token == "*":
            kind = inspect.Parameter.KEYWORD_ONLY
        elif token.startswith("**"):
            params.append((token[2:], inspect.Parameter.VAR_KEYWORD, False))
        elif token.startswith("*"):
            params.append((token[1:], inspect.Parameter.VAR_POSITIONAL, False))
            kind = inspect.Parameter.KEYWORD_ONLY
        else:
            params.append((token.rstrip("="), kind, token.endswith("=")))
    return params


def _incompatibilities(fn: Callable[..., Any], spec: str) -> list[str]:
    """How a call written against ``spec`` would break on ``fn`` (empty: it would not)."""
    actual = list(inspect.signature(fn).parameters.values())[1:]  # without self
    expected = _parse(spec)
    problems = []
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    want_positional = [p for p in expected if p[1] in positional]
    have_positional = [p for p in actual if p.kind in positional]
    if [p.name for p in have_positional[: len(want_positional)]] != [
        name for name, _, _ in want_positional
    ]:
        problems.append(f"positional parameters are {[p.name for p in have_positional]}")
    by_name = {p.name: p for p in actual}
    for name, kind, has_default in expected:
        if kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            if not any(p.kind is kind for p in actual):
                problems.append(f"no {kind.description} parameter")
            continue
        param = by_name.get(name)
        if param is None:
            problems.append(f"no parameter {name!r}")
        elif param.kind not in (
            inspect.Parameter.KEYWORD_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            problems.append(f"{name!r} can no longer be passed by keyword")
        elif has_default and param.default is inspect.Parameter.empty:
            problems.append(f"{name!r} lost its default")
    known = {name for name, _, _ in expected}
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    problems += [
        f"new required parameter {p.name!r}"
        for p in actual
        if p.name not in known and p.default is inspect.Parameter.empty and p.kind not in variadic
    ]
    return problems


@pytest.mark.parametrize("flavour", CLIENTS)
def test_client_methods_keep_their_parameters(flavour: str) -> None:
    cls, methods = CLIENTS[flavour]
    problems = {}
    for name, spec in methods.items():
        fn = getattr(cls, name, None)
        if not callable(fn):
            problems[name] = ["missing"]
        elif found := _incompatibilities(fn, spec):
            problems[name] = found
    assert problems == {}, f"{cls.__module__}.{cls.__qualname__}"


def test_async_client_methods_stay_async_and_sync_ones_stay_blocking() -> None:
    async_cls = sqs_cluster.MessageClient
    for name in {**METHODS, **ASYNC_LIFECYCLE}:
        fn = getattr(async_cls, name)
        assert inspect.iscoroutinefunction(fn) is (name not in NOT_COROUTINES), name
    sync_cls = sqs_cluster.sync.MessageClient
    for name in {**METHODS, **SYNC_LIFECYCLE}:
        fn = getattr(sync_cls, name)
        assert not inspect.iscoroutinefunction(fn), name
        assert not inspect.isasyncgenfunction(fn), name


@pytest.mark.parametrize("flavour", CLIENTS)
def test_client_properties_and_attributes(flavour: str) -> None:
    cls, _ = CLIENTS[flavour]
    for name in PROPERTIES:
        assert isinstance(inspect.getattr_static(cls, name), property), name
    config = Config(table="records", bucket="globals", region="us-east-1")
    client = cls(config)  # builds nothing that talks to AWS: no server needed
    try:
        for name in ATTRIBUTES:
            assert getattr(client, name) is config, name
        assert dict(client.request_counts) == {}
    finally:
        if isinstance(client, sqs_cluster.sync.MessageClient):
            client.close()


# -- docs use public names only --------------------------------------------------------------

PRIVATE_IMPORT = re.compile(r"\b(?:from|import)\s+sqs_cluster(?:\.\w+)*\._\w*")


def _private_imports(source: str, python: bool) -> list[str]:
    """Imports of an underscore module of sqs_cluster, or of an underscore name from one."""
    if python:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            pass
        else:
            found = []
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    modules, names = [node.module], [a.name for a in node.names]
                elif isinstance(node, ast.Import):
                    modules, names = [a.name for a in node.names], []
                else:
                    continue
                for module in modules:
                    parts = module.split(".")
                    private = any(p.startswith("_") for p in parts)
                    private_name = any(n.startswith("_") and not n.startswith("__") for n in names)
                    if parts[0] == "sqs_cluster" and (private or private_name):
                        found.append(ast.unparse(node))
            return found
    return PRIVATE_IMPORT.findall(source)


def _doc_sources() -> Iterator[tuple[str, str, bool]]:
    """(where, source, is Python) for every example file and every docs code block."""
    for path in sorted((DOCS / "examples").iterdir()):
        if path.is_file() and path.suffix != ".pyc":
            yield str(path.relative_to(ROOT)), path.read_text(), path.suffix == ".py"
    for page in sorted(DOCS.rglob("*.md")):
        for n, (_, lang, code) in enumerate(code_blocks(page), start=1):
            yield f"{page.relative_to(ROOT)} block {n}", code, lang in {"python", "py", "pycon"}


def test_docs_import_only_public_names() -> None:
    offenders = {
        where: found
        for where, source, python in _doc_sources()
        if (found := _private_imports(source, python))
    }
    assert offenders == {}, "docs must import public names (sqs_cluster.__all__ and friends)"


def test_the_private_import_check_catches_both_forms() -> None:
    assert _private_imports("from sqs_cluster._aws.provision import ensure_resources", True)
    assert _private_imports("import sqs_cluster._records.codec as codec", True)
    assert _private_imports("from sqs_cluster.local import _child_env", True)
    assert _private_imports("python -c 'from sqs_cluster._cli.main import main'", False)
    assert not _private_imports("from sqs_cluster import Resources, ensure_resources", True)
    assert not _private_imports("from sqs_cluster import __version__", True)


# -- docs/architecture.md names what exists --------------------------------------------------

ARCHITECTURE = DOCS / "architecture.md"
CODE_SPAN = re.compile(r"`([^`\n]+)`")
DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
REPO_PATH = re.compile(r"(?:src|scripts|tests|docs)/[\w./-]*")


def _resolve(dotted: str) -> object:
    """The object a dotted path names, importing submodules on the way."""
    parts = dotted.split(".")
    found: object = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], start=2):
        name = ".".join(parts[:i])
        if inspect.ismodule(found) and not hasattr(found, part) and _is_module(name):
            importlib.import_module(name)  # a submodule not imported yet
        found = getattr(found, part)
    return found


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def _named_on_page() -> tuple[set[str], set[str]]:
    """(dotted paths under sqs_cluster, repository paths) written in the page's code spans."""
    text = FENCE.sub("", ARCHITECTURE.read_text())  # the diagram is not checked by name
    dotted, paths = set(), set()
    for span in CODE_SPAN.findall(text):
        span = span.removesuffix("()")
        if REPO_PATH.fullmatch(span):
            paths.add(span)
            continue
        if not DOTTED.fullmatch(span):
            continue
        first = span.split(".")[0]
        if first == "sqs_cluster":
            dotted.add(span)
        elif _is_module(f"sqs_cluster.{first}") or hasattr(sqs_cluster, first):
            dotted.add(f"sqs_cluster.{span}")
        elif first.startswith("_"):
            dotted.add(f"sqs_cluster.{span}")  # an internal name that must resolve
    return dotted, paths


def test_architecture_page_names_only_what_exists() -> None:
    dotted, paths = _named_on_page()
    assert len(dotted) > 50, "the page's names were not found"
    missing = []
    for name in sorted(dotted):
        try:
            _resolve(name)
        except (ImportError, AttributeError) as exc:
            missing.append(f"{name}: {exc}")
    missing += [f"{path}: no such path" for path in sorted(paths) if not (ROOT / path).exists()]
    assert not missing, "docs/architecture.md names what does not exist:\n" + "\n".join(missing)


def test_architecture_page_describes_every_subpackage_and_top_module() -> None:
    text = ARCHITECTURE.read_text()
    names = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    names |= {p.stem for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    undescribed = sorted(n for n in names if f"| `{n}` |" not in text)
    assert not undescribed, f"docs/architecture.md has no table row for {undescribed}"


# -- no import cycle -------------------------------------------------------------------------


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere: at the top, in a function, or
    for type checking only (a cycle there still ties the modules together)."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: from the package, one level up per extra dot
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join([*base, node.module] if node.module else base)
                else:
                    source = node.module or ""
                targets.add(source)
                targets.update(f"{source}.{a.name}" for a in node.names)
        graph[module] = {t for t in targets if t in files and t != module}
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``graph`` as a path that ends where it starts, or []."""
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str]:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return []
        for target in sorted(graph[module]):
            if cycle := visit(target, [*path, module]):
                return cycle
        done.add(module)
        return []

    for module in sorted(graph):
        if cycle := visit(module, []):
            return cycle
    return []


def test_no_import_cycle() -> None:
    graph = _import_graph()
    assert "sqs_cluster._messages.tracking" in graph["sqs_cluster._clusters.complete"]
    assert _find_cycle(graph) == [], "import cycle"


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _find_cycle(graph) == ["a", "b", "c", "a"]
