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
