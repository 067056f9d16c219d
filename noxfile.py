"""Developer sessions: ``nox -s tests``, ``nox -s lint``, ``nox -s bench``, ``nox -s demo``."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite against the embedded local AWS."""
    session.install("-e", ".[dev]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint + format check), mypy --strict, and the generated sync facade is current."""
    session.install("-e", ".[dev]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy", "--strict")
    session.run("python", "scripts/gen_sync.py", "--check")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks (not tests): fan-out against the raw aiobotocore floor."""
    session.install("-e", ".[dev]")
    session.run("python", "benchmarks/fanout.py", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """The demo against the embedded local AWS."""
    session.install("-e", ".[dev]")
    session.run("sqs-cluster", "demo", *session.posargs)
