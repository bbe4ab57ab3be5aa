"""Developer sessions: ``nox`` runs tests, lint, typecheck and docs; ``nox -s bench`` the
benchmarks."""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck", "docs"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = False

LINTERS = ["ruff>=0.6"]


@nox.session
def tests(session: nox.Session) -> None:
    """pytest; every async test runs on trio and on asyncio."""
    session.install("-e", ".[trio,test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install(*LINTERS)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package and the tests."""
    session.install("-e", ".[trio,test]", "mypy>=1.10", "nox")
    session.run("mypy", "--strict", "realtime_pubsub", "tests", "benchmarks", "noxfile.py")


@nox.session
def docs(session: nox.Session) -> None:
    """Sphinx, warnings as errors."""
    session.install("-e", ".[trio,docs]", "pytest")
    session.run("sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html")


@nox.session
def soak(session: nox.Session) -> None:
    """60 s of publishing with faults every few seconds, on each backend (not in the default
    run). Pass ``-- --seconds N`` to change the length."""
    session.install("-e", ".[trio,test]")
    for backend in ("asyncio", "trio"):
        session.run("python", "-m", "tests.soak", "--backend", backend, *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmarks: ours on trio and asyncio, the official client, the floor. Pass
    ``-- --quick`` for the one-minute version; ``-- --write-docs`` to update the docs page
    (its tables, and its charts, drawn with matplotlib: this session alone installs it)."""
    session.install("-e", ".[trio]", "matplotlib>=3.8")
    # The official client needs websockets 13 (it uses the legacy API that 14 replaced):
    # it gets a virtualenv of its own.
    official = Path(session.virtualenv.location) / "official"
    python = official / "bin" / "python"
    if not python.exists():
        session.run("python", "-m", "venv", str(official))
        session.run(
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "realtime-pubsub-client==1.0.0",
            "websockets==13.1",
            external=True,
        )
    session.run(
        "python", "-m", "benchmarks.run", "--official-python", str(python), *session.posargs
    )
