"""The layout's rules, checked on the source (no server): where AWS is called, where a failed
condition is handled, what the base errors import, and what each subpackage says it owns.
See docs/architecture.md."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "sqs_cluster"

AWS_CALLERS = {
    "_aws",  # clients, conditional writes, raw queue operations, preflight, provisioning
    "_records/store.py",  # record reads, unconditional updates, partition queries
    "_messages/sending.py",  # the write-then-send pipeline (BatchWriteItem, SendMessage[Batch])
    "_clusters/globals.py",  # the globals object in S3
    "_messages/payloads.py",  # offloaded message bodies in S3
    "_clusters/sources.py",  # tasks read from an S3 object
}
"""Where the library's own code may call an AWS client; everything else asks these."""

SERVICES = {"ddb", "sqs", "s3"}


def library_modules() -> list[Path]:
    """The hand-written library modules: not the generated facade, the local server or the
    test helpers and pytest plugin (they speak to AWS for tests, not for the library)."""
    skipped = {"sync", "local", "testing", "pytest_plugin.py"}
    return sorted(
        p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0] not in skipped
    )


def aws_calls(tree: ast.AST) -> list[str]:
    """``x.ddb.put_item(...)``-shaped calls: a method called on an attribute named after a
    service client."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Attribute) and owner.attr in SERVICES:
                found.append(f"{owner.attr}.{node.func.attr}")
    return found


def allowed(path: Path, allowlist: set[str]) -> bool:
    relative = path.relative_to(PACKAGE).as_posix()
    return any(relative == entry or relative.startswith(entry + "/") for entry in allowlist)


def test_only_the_aws_layer_and_its_speakers_call_aws() -> None:
    offenders = {
        path.relative_to(PACKAGE).as_posix(): calls
        for path in library_modules()
        if not allowed(path, AWS_CALLERS)
        and (calls := aws_calls(ast.parse(path.read_text(encoding="utf-8"))))
    }
    assert not offenders, f"AWS called outside {sorted(AWS_CALLERS)}: {offenders}"


def test_the_check_itself_sees_a_direct_call() -> None:
    tree = ast.parse("async def f(aws):\n    await aws.ddb.update_item(Key={})\n")
    assert aws_calls(tree) == ["ddb.update_item"]


def test_failed_conditions_are_handled_in_one_place() -> None:
    helper = "_aws/conditional.py"
    users = [
        path.relative_to(PACKAGE).as_posix()
        for path in library_modules()
        if "ConditionalCheckFailed" in path.read_text(encoding="utf-8")
    ]
    assert users == [helper], "a failed condition handled outside the conditional-write helper"


def test_base_errors_import_nothing_from_the_package() -> None:
    tree = ast.parse((PACKAGE / "_errors.py").read_text(encoding="utf-8"))
    internal = [
        node.module or "."
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.level or "sqs_cluster" in (node.module or ""))
    ]
    assert internal == []


@pytest.mark.parametrize(
    "package", sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists())
)
def test_each_subpackage_says_what_it_owns(package: str) -> None:
    docstring = ast.get_docstring(ast.parse((PACKAGE / package / "__init__.py").read_text()))
    assert docstring, f"{package}/__init__.py has no docstring"
    assert docstring.splitlines()[0].strip(), f"{package}: the first line must say what it owns"


def test_the_top_level_stays_small() -> None:
    entries = [p.name for p in PACKAGE.iterdir() if p.name not in {"__pycache__", "py.typed"}]
    # 17th: _dashboard, the optional web front end; 18th: _observe, metrics and traces
    assert len(entries) <= 18, sorted(entries)
