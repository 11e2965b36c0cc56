"""Every `arena` command and group, found by walking the real command tree: help works, bad options are refused.

Generic on purpose: commands that other areas register are covered as soon as they exist.
"""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from server.cli import app

runner = CliRunner()


def command_paths(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    # Typer vendors its own copy of Click, so groups are recognised by their `commands`, not by class.
    found = [(path, command)]
    if hasattr(command, "commands"):
        for name, sub in sorted(command.commands.items()):
            found.extend(command_paths(sub, (*path, name)))
    return found


COMMANDS = command_paths(typer.main.get_command(app))
IDS = [" ".join(path) or "arena" for path, _ in COMMANDS]


def test_the_tree_has_the_data_commands():
    assert {("data",), ("data", "demo"), ("data", "prepare")} <= {path for path, _ in COMMANDS}


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_help(path, command):
    result = runner.invoke(app, [*path, "--help"], prog_name="arena")
    assert result.exit_code == 0, result.output
    assert f"Usage: {' '.join(('arena', *path))}" in " ".join(result.output.split())
    assert command.help or command.short_help, f"`arena {' '.join(path)}` has no help text: add a docstring"


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_unknown_option_is_a_usage_error(path, command):
    result = runner.invoke(app, [*path, "--no-such-option"], prog_name="arena")
    assert result.exit_code == 2, result.output
    assert "Usage:" in result.output
    assert "No such option" in result.output
    assert "Traceback" not in result.output


def test_version():
    result = runner.invoke(app, ["--version"], prog_name="arena")
    assert result.exit_code == 0 and result.output.startswith("fid-arena ")
