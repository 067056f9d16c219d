"""Developer sessions: ``nox -s tests``, ``slow``, ``lint``, ``docs``, ``dist``, ``bench``,
``demo``, ``chaos``."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
"""Every Python that ``requires-python`` admits and that is tested (.ci/run reads this list)."""
FULL_SUITE_PYTHON = "3.11"
"""The whole suite runs here; the other Pythons run the server-free and the smoke tests."""
PARALLEL = ["-n", "4"]
"""pytest-xdist workers, each with its own local server: the README's test command's choice."""
SUBSET = ["-m", "unit or smoke", "-n", "2"]
"""What the other Pythons run (as .ci/run does): two workers are enough for so few server tests."""


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The test suite against the embedded local AWS, in parallel: all of it on
    FULL_SUITE_PYTHON, the server-free tests (tests/unit/) and the smoke tests on the others,
    as .ci/run does. ``nox -s tests-3.12 -- ARGS`` runs pytest with ARGS instead."""
    session.install("-e", ".[dev]")
    if session.posargs:
        session.run("pytest", *session.posargs)
    elif session.python == FULL_SUITE_PYTHON:
        session.run("pytest", *PARALLEL)
    else:
        session.run("pytest", *SUBSET)


@nox.session(python=FULL_SUITE_PYTHON)
def slow(session: nox.Session) -> None:
    """The full-size tests left out by default (marked ``slow``): the chaos test (200 tasks),
    a thousand-task cluster, 10,000 messages through the local server."""
    session.install("-e", ".[dev]")
    session.run("pytest", "-m", "slow", *PARALLEL, *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint + format check), mypy --strict, and the generated sync facade is current."""
    session.install("-e", ".[dev]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy", "--strict")
    session.run("python", "scripts/gen_sync.py", "--check")


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site, into site/: ``mkdocs build --strict`` (a broken link fails)."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", *session.posargs)


@nox.session
def dist(session: nox.Session) -> None:
    """Build the wheel and the sdist, then install and import each in a fresh venv."""
    session.install("build")
    session.run("bash", "scripts/check_dist.sh", env={"PYTHON": "python"}, external=True)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks (not tests), then the plot: ``nox -s bench`` is the quick run (< 2 min),
    ``nox -s bench -- --full`` the issue's full sizes (hours); other posargs go to run_all.py."""
    session.install("-e", ".[dev]")
    session.install("matplotlib")
    args = list(session.posargs)
    if "--full" in args:
        args.remove("--full")
    else:
        args.insert(0, "--quick")
    session.run("python", "benchmarks/run_all.py", *args)


@nox.session
def demo(session: nox.Session) -> None:
    """The demo against the embedded local AWS."""
    session.install("-e", ".[dev]")
    session.run("sqs-cluster", "demo", *session.posargs)


@nox.session
def chaos(session: nox.Session) -> None:
    """The chaos test at full size: 2,000 tasks, workers SIGKILLed at random."""
    session.install("-e", ".[dev]")
    session.run("pytest", "tests/test_chaos.py", "-m", "slow", "-s", env={"CHAOS_TASKS": "2000"})
