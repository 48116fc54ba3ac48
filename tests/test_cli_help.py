"""Every command answers --help, and the package runs as `python -m connector`."""

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from connector import __version__
from connector.cli import cli


def _commands(group: click.Group, prefix=()):
    for name, cmd in group.commands.items():
        yield (*prefix, name)
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))


@pytest.mark.parametrize("path", sorted(_commands(cli)), ids=" ".join)
def test_every_command_has_help(path):
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    # a docstring, not an empty help page
    assert len(result.output.split("\n\n")) >= 2


def test_version_matches_package():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_python_dash_m_connector():
    out = subprocess.run([sys.executable, "-m", "connector", "--help"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "simulate" in out.stdout


def _command(path):
    cmd = cli
    for name in path:
        cmd = cmd.commands[name]
    return cmd


def _listing(group_path):
    """The "Commands:" section of a group's --help: {name: the text beside it, lines joined}."""
    output = CliRunner().invoke(cli, [*group_path, "--help"], terminal_width=80).output
    section = output.split("Commands:\n", 1)[1]
    rows, name = {}, None
    for line in section.splitlines():
        if not line.strip() or not line.startswith("  "):
            break
        if line.startswith("  ") and not line.startswith("   "):
            name, _, text = line.strip().partition(" ")
            rows[name] = text.strip()
        else:
            rows[name] += " " + line.strip()
    return rows


@pytest.mark.parametrize("group_path", [(), ("actions",)], ids=lambda p: " ".join(p) or "ds-connector")
def test_the_command_list_shows_whole_sentences(group_path):
    group = _command(group_path)
    rows = _listing(group_path)
    assert set(rows) == {n for n, c in group.commands.items() if not c.hidden}
    for name, text in rows.items():
        first_paragraph = " ".join(group.commands[name].help.split("\n\n")[0].split())
        assert "..." not in text, (name, text)
        assert text.endswith((".", "?")), (name, text)  # never cut mid-sentence
        assert first_paragraph.startswith(text), (name, text)  # its own words, whole


@pytest.mark.parametrize("path", sorted(_commands(cli)), ids=" ".join)
def test_every_command_shows_an_example_that_parses(path):
    result = CliRunner().invoke(cli, [*path, "--help"], terminal_width=200)
    assert "Example:" in result.output, result.output
    example = result.output.split("Example:\n", 1)[1].strip().splitlines()[0].split()
    assert example[: 1 + len(path)] == ["ds-connector", *path], example
    command = _command(path)
    if isinstance(command, click.Group):  # a group's example is one of its commands'
        command, args = command.commands[example[1 + len(path)]], example[2 + len(path):]
    else:
        args = example[1 + len(path):]
    command.make_context(" ".join(path), args)  # raises click.UsageError/BadParameter if it does not parse
