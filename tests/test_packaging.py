"""PACKAGING: the wheel carries the GraphQL files, and an installed copy loads them.

Marked ``slow`` (~7 s: a real wheel build) and needs PyPI, where pip fetches the build requirements.
The slowest, ``test_wheel_in_a_fresh_venv_...`` (~20 s more), installs the wheel as a sysadmin does (a
fresh venv, ``pip install <wheel>``, dependencies from the package index), imports every module the
wheel ships and runs ``ds-connector demo`` to its end. They run in the suite (``.ci/run`` is plain
``pytest -q``): a plain install once shipped without ``connector.sync``.

The operations and the schema are read with importlib.resources from the installed package, never
from the source tree: this builds a real wheel, installs it into a bare directory, and loads every
operation there in a subprocess that cannot see the repository.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
QUERY_FILES = sorted(p.name for p in (REPO / "queries").glob("*.graphql"))

pytestmark = pytest.mark.slow

# Runs in the installed copy. Prints where everything came from, as JSON.
PROBE = """
import json, sys
from importlib import resources
from connector.ds import operations
from connector import schema

sources = {n: operations.source(n) for n in operations.names()}
loaded = {
    "names": operations.names(),
    "operation_names": {n: operations.operation_name(n) for n in operations.names()},
    "sdl_chars": len(schema.sdl()),
    "schema_types": len(schema.schema().type_map),
    "queries_dir": str(resources.files("connector.queries")),
    "schema_dir": str(resources.files("connector.schema")),
    "modules": sorted({m.__file__ for m in list(sys.modules.values()) if getattr(m, "__file__", None)}),
    "sys_path": sys.path,
    "empty_sources": [n for n, s in sources.items() if not s.strip()],
}
print(json.dumps(loaded))
"""


def _run(*cmd: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert result.returncode == 0, f"{' '.join(cmd)}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # Build from a copy so the in-tree build/ and *.egg-info never land in the shared checkout.
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    for name in ("connector", "queries"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    # With build isolation, as any real build: setuptools 65 in the venv cannot build a wheel
    # without the `wheel` package (bdist_wheel joined setuptools in 70.1), so pip fetches the
    # build requirements from PyPI, as `pip install -e .` already did to set up the venv.
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(src))
    (built,) = out.glob("ds_connector-*.whl")
    return built


def test_wheel_contains_queries_and_schema(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert QUERY_FILES and "fragments.graphql" in QUERY_FILES
    missing = [f"connector/queries/{f}" for f in QUERY_FILES if f"connector/queries/{f}" not in names]
    assert missing == []
    assert "connector/queries/__init__.py" in names
    assert "connector/schema/ds.graphql" in names


def test_installed_wheel_loads_every_operation_without_the_repo(wheel, tmp_path):
    target = tmp_path / "site"
    _run(sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel))
    # -S: no site processing, so the editable install's .pth finder (pointing at the repo) never
    # loads; the venv's site-packages only supplies dependencies. -P: no cwd on sys.path.
    deps = sysconfig.get_paths()["purelib"]
    env = {"PYTHONPATH": f"{target}:{deps}", "PYTHONNOUSERSITE": "1", "PATH": "/usr/bin:/bin"}
    result = _run(sys.executable, "-S", "-P", "-c", PROBE, cwd=tmp_path, env=env)
    loaded = json.loads(result.stdout)

    expected = sorted(f[: -len(".graphql")] for f in QUERY_FILES if f != "fragments.graphql")
    assert loaded["names"] == expected
    assert all(loaded["operation_names"].values())
    assert loaded["empty_sources"] == []
    assert loaded["sdl_chars"] == len((REPO / "connector/schema/ds.graphql").read_text(encoding="utf-8"))
    assert loaded["schema_types"] > 100
    assert Path(loaded["queries_dir"]) == target / "connector" / "queries"
    assert Path(loaded["schema_dir"]) == target / "connector" / "schema"
    connector_files = [f for f in loaded["modules"] if "/connector/" in f]
    assert connector_files and all(f.startswith(str(target)) for f in connector_files)
    assert not [p for p in loaded["sys_path"] if p.startswith(str(REPO)) and not p.startswith(deps)]
    assert not [f for f in loaded["modules"] if f.startswith(str(REPO)) and not f.startswith(deps)]


# Runs in the fresh venv: imports every module listed on argv, reports where each came from.
IMPORT_ALL = """
import importlib, json, sys, traceback
found, failed = {}, {}
for name in sys.argv[1:]:
    try:
        found[name] = importlib.import_module(name).__file__
    except BaseException:
        failed[name] = traceback.format_exc(limit=3)
print(json.dumps({"found": found, "failed": failed, "sys_path": sys.path}))
"""


def _wheel_modules(wheel: Path) -> list[str]:
    """Every Python module the wheel ships, from its file list (not from the source tree)."""
    modules = []
    for name in zipfile.ZipFile(wheel).namelist():
        if name.startswith("connector/") and name.endswith(".py"):
            parts = name[: -len(".py")].split("/")
            if parts[-1] == "__init__":
                parts.pop()
            modules.append(".".join(parts))
    return sorted(modules)


@pytest.fixture(scope="module")
def fresh_venv(wheel, tmp_path_factory) -> Path:
    """A new venv (no pip of its own: the running pip installs into it) with the wheel and its deps."""
    venv = tmp_path_factory.mktemp("opt") / "ds-connector"
    _run(sys.executable, "-m", "venv", "--without-pip", str(venv))
    _run(sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q", str(wheel),
         timeout=600)
    return venv


def _clean_env() -> dict[str, str]:
    """The environment minus anything that could point Python at the repository or its venv."""
    drop = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "DS_API_TOKEN", "CREDENTIALS_DIRECTORY"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PATH"] = "/usr/bin:/bin"
    env["PYTHONNOUSERSITE"] = "1"
    return env


def test_wheel_in_a_fresh_venv_imports_every_module_and_runs_the_demo(wheel, fresh_venv, tmp_path):
    modules = _wheel_modules(wheel)
    for expected in ("connector.sync.engine", "connector.store.save", "connector.commands.demo",
                     "connector.simulator.app", "connector.queries", "connector.__main__"):
        assert expected in modules
    python = fresh_venv / "bin" / "python"
    site = _run(str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                cwd=tmp_path, env=_clean_env()).stdout.strip()
    assert site.startswith(str(fresh_venv))
    # connector.__main__ runs the CLI when imported: it is run as `python -m connector` instead.
    result = _run(str(python), "-P", "-c", IMPORT_ALL, *[m for m in modules if m != "connector.__main__"],
                  cwd=tmp_path, env=_clean_env())
    loaded = json.loads(result.stdout)
    assert loaded["failed"] == {}
    assert sorted(loaded["found"]) == [m for m in modules if m != "connector.__main__"]
    assert all(f.startswith(site + "/connector/") for f in loaded["found"].values())
    assert not [p for p in loaded["sys_path"] if p.startswith(str(REPO))]
    version = _run(str(python), "-P", "-m", "connector", "--version", cwd=tmp_path, env=_clean_env())
    assert version.stdout.startswith("ds-connector, version ")

    state = tmp_path / "state"
    demo = subprocess.run([str(fresh_venv / "bin" / "ds-connector"), "demo", "--state-dir", str(state)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path, env=_clean_env())
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "Traceback" not in demo.stderr
    assert "1. Full sync: sync ok: 3 démarches" in demo.stdout
    assert "4. Nothing new: sync ok:" in demo.stdout
    assert (state / "ds-connector.sqlite").stat().st_size > 0
