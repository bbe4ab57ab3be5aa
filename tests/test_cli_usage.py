"""How ``realtime-pubsub`` reads its command line, run for real in subprocesses: options
mean the same before the command and after it, ``--help`` shows every default, and a
value that cannot be right is bad usage (status 2, one line) before anything runs."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from realtime_pubsub._cli_options import build_parser

COMMAND = [sys.executable, "-m", "realtime_pubsub"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    # A URL, so that the commands that need one get as far as the value under test.
    env = {**os.environ, "REALTIME_PUBSUB_URL": "ws://127.0.0.1:1/apps/a?access_token=t"}
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize(
    "args",
    [("--backend", "trio", "demo"), ("demo", "--backend", "trio")],
    ids=["before", "after"],
)
def test_backend_applies_before_or_after_the_command(args: tuple[str, ...]) -> None:
    result = run(*args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("realtime-pubsub demo on trio:")


def test_token_does_not_take_a_backend() -> None:
    result = run("token", "--backend", "trio")
    assert result.returncode == 2
    assert "unrecognized arguments: --backend trio" in result.stderr


def _options(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.Action]]:
    """Every option of every command, with the name of its command."""
    found = [(parser.prog, a) for a in parser._actions if a.option_strings]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in dict.fromkeys(action.choices.values()):
                found.extend(_options(command))
    return found


def test_help_shows_every_default() -> None:
    missing = []
    for command, action in _options(build_parser()):
        default = action.default
        if default in (None, False, [], argparse.SUPPRESS):
            continue
        if "help" in action.dest or "version" in action.dest:
            continue
        formatter = build_parser()._get_formatter()
        text = formatter._expand_help(action) if action.help else ""
        if "default" not in text:
            missing.append(f"{command} {action.option_strings[0]}")
    assert missing == []


def test_help_shows_the_connect_timeout_and_ack_timeout_defaults() -> None:
    result = run("publish", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "seconds per connection attempt (default: 10.0)" in text
    assert "seconds to wait for the gateway's ack (default: 1.0)" in text
    assert "have failed; 0 never gives up (default: 3)" in text


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("token", "--ttl", "0"), "argument --ttl: must be a positive number of seconds"),
        (("token", "--ttl", "-60"), "argument --ttl: must be a positive number of seconds"),
        (("token", "--ttl", "soon"), "argument --ttl: not a number: 'soon'"),
        (("token", "--algorithm", "RS256"), "--algorithm RS256 signs with --private-key FILE"),
        (("token", "--secret", "s", "--algorithm", "ES256"), "ES256 signs with --private-key"),
        (("token", "--private-key", "k.pem", "--algorithm", "HS256"), "HS256 signs with --secret"),
        (("gateway", "--port", "70000"), "argument --port: must be a port number"),
        (("gateway", "--max-message-size", "0"), "argument --max-message-size: must be a"),
        (("listen", ""), "argument PATTERN: pattern must be a non-empty string"),
        (("listen", "chat..x"), "argument PATTERN: pattern 'chat..x' has an empty segment"),
        (("listen", "session.started"), "is a lifecycle event, not a message pattern"),
        (("listen", "chat.*", "--subscribe", ""), "argument --subscribe: topic must be"),
        (("publish", "", "hi"), "argument TOPIC: topic must be a non-empty string"),
        (("publish", "t", "hi", "--ack-timeout", "0"), "argument --ack-timeout: must be"),
        (("send", "hi", "--reply-timeout", "nan"), "argument --reply-timeout: not a number"),
        (("listen", "x", "--connect-timeout", "inf"), "argument --connect-timeout: not a"),
    ],
)
def test_values_that_cannot_be_right_are_bad_usage(args: tuple[str, ...], error: str) -> None:
    result = run(*args)
    assert result.returncode == 2, result
    [line] = [line for line in result.stderr.splitlines() if "error:" in line]
    assert error in line
    assert "Traceback" not in result.stderr
