"""docs/guides/powertools.md's option table against the installed Powertools: every name it
gives is an option of that version, every option of that version is in it, and the version it
states is the one installed (and pinned by the dev extra)."""

from __future__ import annotations

import inspect
import re
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

batch = pytest.importorskip("aws_lambda_powertools.utilities.batch")
idempotency = pytest.importorskip("aws_lambda_powertools.utilities.idempotency")

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "guides" / "powertools.md"
ROW = re.compile(r"^\| `(?P<owner>\w+)` \| (?:`(?P<option>\w+)`|\((?P<what>[^)]*)\)) \| (.+) \|$")

COMPLETE = {  # owners whose every parameter must have a row
    "BatchProcessor": "__init__",
    "SqsFifoPartialProcessor": "__init__",
    "process_partial_response": None,
    "IdempotencyConfig": "__init__",
    "DynamoDBPersistenceLayer": "__init__",
    "idempotent_function": None,
}
NOT_OPTIONS = {"self", "function", "kwargs"}
READ_FROM_CODE = {"lambda_context"}
"""Options no signature shows: a record handler that declares ``lambda_context`` gets it."""


def rows() -> list[tuple[str, str | None]]:
    found = []
    for line in PAGE.read_text().splitlines():
        match = ROW.match(line)
        if match:
            found.append((match["owner"], match["option"]))
    return found


def owner_named(name: str) -> Any:
    for module in (batch, idempotency):
        if hasattr(module, name):
            return getattr(module, name)
    raise AssertionError(f"{name} is not in Powertools' batch or idempotency utility")


def parameters(owner: Any, method: str | None) -> set[str]:
    target = getattr(owner, method) if method else owner
    return set(inspect.signature(target).parameters) - NOT_OPTIONS


def is_option(owner: Any, option: str) -> bool:
    """A parameter, an attribute (method, enum member), or a keyword the owner's code reads
    (``lambda_context``, which a record handler may declare)."""
    if hasattr(owner, option) or option in inspect.signature(owner).parameters:
        return True
    if option not in READ_FROM_CODE:
        return False
    classes = owner.__mro__ if isinstance(owner, type) else (owner,)
    return any(
        re.search(rf"\b{option}\b", inspect.getsource(c))
        for c in classes
        if getattr(c, "__module__", "").startswith("aws_lambda_powertools")
    )


def test_every_option_in_the_table_exists_in_the_installed_version() -> None:
    table = rows()
    assert len(table) > 40, "the table was not found"
    for owner_name, option in table:
        owner = owner_named(owner_name)
        if option is not None:
            assert is_option(owner, option), f"{owner_name}: no option {option!r}"


def test_every_option_of_the_installed_version_is_in_the_table() -> None:
    listed = set(rows())
    for owner_name, method in COMPLETE.items():
        for option in parameters(owner_named(owner_name), method):
            assert (owner_name, option) in listed, f"{owner_name}({option}=) has no row"
    for member in owner_named("EventType").__members__:
        assert ("EventType", member) in listed, f"EventType.{member} has no row"


def test_the_page_states_the_installed_and_pinned_version() -> None:
    installed = version("aws-lambda-powertools")
    assert f"aws-lambda-powertools {installed}**" in PAGE.read_text()
    assert f'"aws-lambda-powertools=={installed}"' in (ROOT / "pyproject.toml").read_text()
