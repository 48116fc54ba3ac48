"""The config file, the API token lookup and `ds-connector check-config`, on real files."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import structlog
from click.testing import CliRunner

from connector import config as config_module
from connector.cli import cli
from connector.commands.check_config import summary as check
from connector.config import (
    DEFAULT_URL,
    Config,
    DatabaseConfig,
    DemarcheConfig,
    DsConfig,
    LogConfig,
    SyncConfig,
    load_config,
    parse_config,
)
from connector.credentials import ApiToken, load_token
from connector.errors import EX_CONFIG, ConfigError, CredentialError

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "config.example.toml"
SECRET = "c2VjcmV0LXV1aWQ7c3VwZXItc2VjcmV0LXZhbHVl"
MINIMAL = "[[demarches]]\nnumber = 42\n"


@pytest.fixture(autouse=True)
def no_ambient_token(monkeypatch):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.delenv("DS_API_TOKEN", raising=False)


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def problems_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path / "config.toml", text))
    return caught.value.problems


def cfg(tmp_path: Path, text: str = MINIMAL) -> Config:
    return load_config(write(tmp_path / "config.toml", text))


# --- the example and the defaults -------------------------------------------------------------------


def test_example_config_loads_and_checks_with_a_token(tmp_path, monkeypatch):
    config = load_config(EXAMPLE)
    assert config.ds.url == DEFAULT_URL
    assert [d.number for d in config.demarches] == [12345, 12346]
    assert config.demarches[0].label and config.demarches[1].label is None
    assert config.database.path == REPO / "state" / "ds-connector.sqlite"

    write(tmp_path / "creds" / "ds-api-token", SECRET + "\n", 0o400)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "creds"))
    summary = check(EXAMPLE)
    assert str(EXAMPLE) in summary and DEFAULT_URL in summary and "12345" in summary
    assert "credentials directory" in summary
    assert SECRET not in summary


def test_example_documents_every_key(tmp_path):
    """Every config field appears in the example, and the commented-out keys are real ones."""
    text = EXAMPLE.read_text(encoding="utf-8")
    documented = set(re.findall(r"^#?(\w+) = ", text, flags=re.M))
    documented |= set(re.findall(r"^#?\[demarches\.(\w+)\]", text, flags=re.M))  # sub-tables
    fields = {f.name for cls in (DsConfig, DatabaseConfig, SyncConfig, LogConfig, DemarcheConfig)
              for f in dataclasses.fields(cls)}
    assert fields <= documented, fields - documented
    # Uncommented, the optional keys still load (token_file stays relative to the config file).
    uncommented = re.sub(r"^#(\w+ = )", r"\1", text, flags=re.M)
    config = load_config(write(tmp_path / "config.toml", uncommented))
    assert config.ds.token_file == tmp_path / "ds-api-token"
    assert config.ds.instructeur_email and config.sync.download_dir == tmp_path / "state" / "files"


def test_minimal_config_gets_the_documented_defaults(tmp_path):
    config = cfg(tmp_path)
    assert config.path == tmp_path / "config.toml"
    assert config.ds == DsConfig()
    assert config.ds.requests_per_minute == 300 and config.ds.read_timeout_seconds == 65
    assert config.database.path == tmp_path / "state" / "ds-connector.sqlite"
    assert config.state_dir == tmp_path / "state"
    assert config.sync == SyncConfig(download_dir=tmp_path / "state" / "files")
    assert (config.sync.page_size, config.sync.attachments) == (100, "messages")
    assert config.log == LogConfig() and config.log.json is None
    assert config.demarches == (DemarcheConfig(42),)


def test_relative_paths_resolve_against_the_config_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config_dir = tmp_path / "etc"
    config = load_config(write(config_dir / "c.toml", MINIMAL + (
        '[database]\npath = "db/mirror.sqlite"\n'
        '[ds]\ntoken_file = "secret/tok"\n'
        '[sync]\ndownload_dir = "/srv/files"\n'
    )))
    assert config.database.path == config_dir / "db" / "mirror.sqlite"
    assert config.state_dir == config_dir / "db"
    assert config.ds.token_file == config_dir / "secret" / "tok"
    assert config.sync.download_dir == Path("/srv/files")


def test_download_dir_follows_the_state_directory(tmp_path):
    config = cfg(tmp_path, MINIMAL + '[database]\npath = "/var/lib/ds-connector/ds.sqlite"\n')
    assert config.sync.download_dir == Path("/var/lib/ds-connector/files")


def test_every_value_can_be_set(tmp_path):
    config = cfg(tmp_path, """
[ds]
url = "http://127.0.0.1:8484/api/v2/graphql"
connect_timeout_seconds = 2.5
read_timeout_seconds = 5
requests_per_minute = 400
instructeur_email = "instructeur@ac-exemple.fr"
[sync]
interval_minutes = 60
page_size = 1
overlap_minutes = 0
reconcile_at = 04:15:00
attachments = "ALL"
[log]
level = "DEBUG"
format = "json"
[[demarches]]
number = 7
label = "Toulouse"
""")
    assert config.ds == DsConfig("http://127.0.0.1:8484/api/v2/graphql", 2.5, 5.0, 400, None,
                                 "instructeur@ac-exemple.fr")
    assert (config.sync.interval_minutes, config.sync.page_size, config.sync.overlap_minutes) == (60, 1, 0)
    assert config.sync.reconcile_at == dt.time(4, 15) and config.sync.attachments == "all"
    assert (config.log.level, config.log.json) == ("debug", True)
    assert config.demarches == (DemarcheConfig(7, "Toulouse"),)


def test_parse_config_is_pure(tmp_path):
    config = parse_config({"demarches": [{"number": 1}]}, Path("/base"), "inline")
    assert config.database.path == Path("/base/state/ds-connector.sqlite")
    assert config.path == Path("inline")
    with pytest.raises(ConfigError, match="invalid configuration in inline"):
        parse_config({}, Path("/base"), "inline")


# --- problems ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ('[ds]\ntokn_file = "x"\n', "[ds] tokn_file: unknown key (did you mean 'token_file'?)"),
    ("[databse]\n", "(top level) databse: unknown key (did you mean 'database'?)"),
    ("[ds]\npage_size = 50\n", "[ds] page_size: unknown key here; it belongs in [sync]"),
    ("[sync]\ncolour = 1\n", "[sync] colour: unknown key (known: "),
    ("[sync]\npage_size = true\n", "[sync] page_size: expected an integer, got a boolean"),
    ("[sync]\npage_size = 50.0\n", "[sync] page_size: expected an integer, got a number"),
    ('[sync]\ninterval_minutes = "10"\n', "[sync] interval_minutes: expected an integer, got a string"),
    ("[sync]\npage_size = 101\n", "101 is out of range, must be 1 to 100 (DS serves at most 100"),
    ("[sync]\npage_size = 0\n", "[sync] page_size: 0 is out of range"),
    ("[sync]\noverlap_minutes = -1\n", "[sync] overlap_minutes: -1 is out of range"),
    ("[ds]\nrequests_per_minute = 401\n", "must be 1 to 400 (DS refuses more than 400 requests per minute"),
    ("[ds]\nread_timeout_seconds = 0\n", "[ds] read_timeout_seconds: 0 is out of range"),
    ("[ds]\nread_timeout_seconds = inf\n", "[ds] read_timeout_seconds: inf is out of range"),
    ("[ds]\nconnect_timeout_seconds = false\n", "expected a number of seconds, got a boolean"),
    ('[ds]\ninstructeur_email = "nobody"\n', "[ds] instructeur_email: not an e-mail address"),
    ('[sync]\nattachments = "some"\n', "[sync] attachments: 'some' is not one of none, messages, all"),
    ('[sync]\nreconcile_at = "25:00"\n', '[sync] reconcile_at: expected a time of day such as "03:30"'),
    ('[log]\nformat = "xml"\n', "[log] format: 'xml' is not one of auto, json, console"),
    ('[database]\npath = ""\n', "[database] path: must not be empty"),
    ("[database]\npath = 3\n", "[database] path: expected a string, got an integer"),
    ("ds = 3\n", "[ds]: expected a table, got an integer"),
])
def test_each_problem_is_reported(tmp_path, text, expected):
    problems = problems_of(tmp_path, text + MINIMAL)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize("text, expected", [
    ("", "[[demarches]]: no démarche configured"),
    ("demarches = []\n", "[[demarches]]: no démarche configured"),
    ("[demarches]\nnumber = 1\n", "[[demarches]]: expected an array of tables, got a table"),
    ("[[demarches]]\nnumber = 1\n[[demarches]]\nnumber = 1\n",
     "[[demarches]] #2 number: démarche 1 is already configured in [[demarches]] #1"),
    ('[[demarches]]\nlabel = "x"\n', "[[demarches]] #1 number: missing"),
    ("[[demarches]]\nnumber = 0\n", "[[demarches]] #1 number: 0 is out of range"),
    ("[[demarches]]\nnumber = 2147483648\n", "[[demarches]] #1 number: 2147483648 is out of range"),
    ('[[demarches]]\nnumber = "12"\n', "[[demarches]] #1 number: expected an integer, got a string"),
    ("[[demarches]]\nnumber = 1\nlabel = 2\n", "[[demarches]] #1 label: expected a string"),
    ("[[demarches]]\nnumber = 1\nnumbre = 2\n", "[[demarches]] #1 numbre: unknown key (did you mean 'number'?)"),
])
def test_demarche_problems(tmp_path, text, expected):
    problems = problems_of(tmp_path, text)
    assert any(expected in p for p in problems), problems


def test_every_problem_is_reported_at_once(tmp_path):
    problems = problems_of(tmp_path, """
[ds]
url = "ftp://example.org/api"
requests_per_minute = 1000
[sync]
page_size = true
attachments = "everything"
interval = 10
[[demarches]]
number = 3
[[demarches]]
number = 3
""")
    assert len(problems) == 6, problems
    joined = "\n".join(problems)
    for key in ("url", "requests_per_minute", "page_size", "attachments", "interval", "#2 number"):
        assert key in joined


@pytest.mark.parametrize("url", [
    DEFAULT_URL,
    "http://127.0.0.1:8484/api/v2/graphql",
    "http://localhost:8484/api/v2/graphql",
    "http://[::1]:8484/api/v2/graphql",
    "https://www.demarches-simplifiees.fr/api/v2/graphql",
])
def test_good_urls(tmp_path, url):
    assert cfg(tmp_path, MINIMAL + f'[ds]\nurl = "{url}"\n').ds.url == url


@pytest.mark.parametrize("url, expected", [
    ("http://demarche.numerique.gouv.fr/api/v2/graphql", "http is only allowed to a loopback host"),
    ("http://10.0.0.1/api/v2/graphql", "http is only allowed to a loopback host"),
    ("ftp://example.org/api/v2/graphql", "scheme 'ftp' is not allowed: use https"),
    ("https://me:pw@demarche.numerique.gouv.fr/api/v2/graphql", "must not contain credentials"),
    ("https://demarche.numerique.gouv.fr/api/v2/graphql?token=x", "must not contain a query string"),
    ("https://demarche.numerique.gouv.fr/api/v2/graphql#x", "must not contain a query string or a fragment"),
    ("https://demarche.numerique.gouv.fr", "has no path; DS's GraphQL endpoint is /api/v2/graphql"),
    ("https://demarches.numerique.gouv.fr/api/v2/graphql", "redirect that turns the POST into a GET"),
    ("demarche.numerique.gouv.fr/api/v2/graphql", "not an absolute URL"),
    ("https://localhost:99999/api/v2/graphql", "not a valid URL"),
])
def test_bad_urls(tmp_path, url, expected):
    problems = problems_of(tmp_path, MINIMAL + f'[ds]\nurl = "{url}"\n')
    assert len(problems) == 1 and problems[0].startswith("[ds] url: ") and expected in problems[0], problems
    assert "pw" not in problems[0] and "token=x" not in problems[0]


@pytest.mark.parametrize("key", ["token", "api_token", "DS_API_TOKEN", "authorization"])
@pytest.mark.parametrize("section", ["", "[ds]\n"])
def test_a_token_in_the_config_is_refused_and_not_echoed(tmp_path, section, key):
    problems = problems_of(tmp_path, MINIMAL + f'{section}{key} = "{SECRET}"\n')
    assert len(problems) == 1, problems
    assert "never goes in the config file" in problems[0] and "LoadCredential=" in problems[0]
    assert SECRET not in problems[0]


def test_invalid_toml_gives_line_and_column(tmp_path):
    with pytest.raises(ConfigError, match=r"invalid TOML in .*config\.toml: .*\(at line 3, column \d+\)"):
        cfg(tmp_path, '[ds]\nurl = "x"\nrequests_per_minute = = 3\n')


def test_unreadable_config_files(tmp_path):
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)
    (tmp_path / "latin1.toml").write_bytes('label = "écoles"'.encode("latin-1"))
    with pytest.raises(ConfigError, match="is not UTF-8"):
        load_config(tmp_path / "latin1.toml")
    with pytest.raises(ConfigError, match="config file .*missing.toml not found"):
        load_config(tmp_path / "missing.toml")


def test_config_search_order(tmp_path, monkeypatch):
    local, system = tmp_path / "here" / "config.toml", tmp_path / "etc" / "config.toml"
    monkeypatch.setattr(config_module, "SEARCH_PATHS", (local, system))
    with pytest.raises(ConfigError) as caught:
        load_config()
    assert str(local) in str(caught.value) and str(system) in str(caught.value)
    write(system, "[[demarches]]\nnumber = 2\n")
    assert load_config().demarches[0].number == 2
    write(local, "[[demarches]]\nnumber = 1\n")
    assert load_config().demarches[0].number == 1
    write(tmp_path / "other.toml", "[[demarches]]\nnumber = 3\n")
    assert load_config(tmp_path / "other.toml").demarches[0].number == 3


def test_default_search_starts_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "config.toml", MINIMAL)
    assert load_config().path == tmp_path / "config.toml"


# --- the API token ----------------------------------------------------------------------------------


@pytest.fixture
def sources(tmp_path, monkeypatch):
    """Three different tokens, one per source; returns the config naming the token file."""
    write(tmp_path / "creds" / "ds-api-token", "from-credentials\n", 0o400)
    write(tmp_path / "tok", "from-file\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "creds"))
    monkeypatch.setenv("DS_API_TOKEN", "from-env")
    return cfg(tmp_path, MINIMAL + '[ds]\ntoken_file = "tok"\n')


def test_credentials_directory_beats_token_file_beats_environment(tmp_path, sources, monkeypatch):
    token = load_token(sources)
    assert token.reveal() == "from-credentials" and "credentials directory" in token.source

    (tmp_path / "creds" / "ds-api-token").unlink()
    token = load_token(sources)
    assert token.reveal() == "from-file" and token.source == f"token file {tmp_path / 'tok'}"

    token = load_token(dataclasses.replace(sources, ds=DsConfig()))
    assert token.reveal() == "from-env" and "DS_API_TOKEN" in token.source


def test_environ_can_be_passed_explicitly(tmp_path):
    token = load_token(cfg(tmp_path), environ={"DS_API_TOKEN": "explicit"})
    assert token.reveal() == "explicit"


def test_environment_token_logs_a_warning_without_the_value(tmp_path):
    with structlog.testing.capture_logs() as logs:
        token = load_token(cfg(tmp_path), environ={"DS_API_TOKEN": SECRET})
    assert token.reveal() == SECRET
    assert [(e["event"], e["log_level"]) for e in logs] == [("credentials.env_token", "warning")]
    assert SECRET not in repr(logs)


def test_loose_token_file_is_refused_with_the_chmod_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("DS_API_TOKEN", "would-be-fallback")
    config = cfg(tmp_path, MINIMAL + '[ds]\ntoken_file = "tok"\n')
    for mode in (0o640, 0o604, 0o620):
        write(tmp_path / "tok", SECRET, mode)
        with pytest.raises(CredentialError) as caught:
            load_token(config)
        message = str(caught.value)
        assert f"(mode {mode:04o})" in message and f"chmod 600 {tmp_path / 'tok'}" in message
        assert SECRET not in message
    (tmp_path / "tok").chmod(0o400)
    assert load_token(config).reveal() == SECRET


def test_missing_token_file_is_an_error_not_a_fallback(tmp_path, monkeypatch):
    monkeypatch.setenv("DS_API_TOKEN", "would-be-fallback")
    config = cfg(tmp_path, MINIMAL + '[ds]\ntoken_file = "absent"\n')
    with pytest.raises(CredentialError, match=r"token file .*absent \(from \[ds\] token_file\) does not exist"):
        load_token(config)


def test_credentials_directory_without_the_credential_moves_on(tmp_path, monkeypatch):
    (tmp_path / "creds").mkdir()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "creds"))
    write(tmp_path / "tok", "from-file")
    assert load_token(cfg(tmp_path, MINIMAL + '[ds]\ntoken_file = "tok"\n')).reveal() == "from-file"


def test_no_token_anywhere_explains_every_step(tmp_path, monkeypatch):
    (tmp_path / "creds").mkdir()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "creds"))
    with pytest.raises(CredentialError) as caught:
        load_token(cfg(tmp_path))
    error = caught.value
    assert error.exit_code == EX_CONFIG and error.message == "no DS API token found"
    steps = "\n".join(error.problems)
    assert "holds no ds-api-token" in steps and "[ds] token_file is not set" in steps
    assert "$DS_API_TOKEN is not set" in steps and "LoadCredential=ds-api-token:" in steps


@pytest.mark.parametrize("content, expected", [
    ("", "is empty"),
    ("\n", "is empty"),
    (f"{SECRET} trailing", "contains spaces, several lines"),
    (f"{SECRET}\n{SECRET}\n", "contains spaces, several lines"),
    (f"{SECRET}\n\n", "contains spaces, several lines"),
])
def test_bad_token_contents_are_refused_without_the_value(tmp_path, content, expected):
    write(tmp_path / "tok", content)
    with pytest.raises(CredentialError) as caught:
        load_token(cfg(tmp_path, MINIMAL + '[ds]\ntoken_file = "tok"\n'))
    assert expected in str(caught.value) and SECRET not in str(caught.value)


def test_one_trailing_newline_is_stripped(tmp_path):
    for content in (SECRET, SECRET + "\n", SECRET + "\r\n"):
        write(tmp_path / "tok", content)
        assert load_token(cfg(tmp_path, MINIMAL + '[ds]\ntoken_file = "tok"\n')).reveal() == SECRET


def test_token_file_that_is_a_directory(tmp_path):
    (tmp_path / "tok").mkdir()
    with pytest.raises(CredentialError, match="is a directory"):
        load_token(cfg(tmp_path, MINIMAL + '[ds]\ntoken_file = "tok"\n'))


def test_empty_environment_token_is_refused(tmp_path):
    with pytest.raises(CredentialError, match=r"\$DS_API_TOKEN is empty"):
        load_token(cfg(tmp_path), environ={"DS_API_TOKEN": ""})


def test_repr_and_str_hide_the_token():
    token = ApiToken(SECRET, "test")
    shown = [repr(token), str(token), f"{token}", f"{token!r}", repr([token]), repr({"t": token})]
    assert all(SECRET not in s for s in shown)
    assert repr(token) == "ApiToken(***)"
    assert token.reveal() == SECRET


# --- check-config -----------------------------------------------------------------------------------


def test_check_config_cli_success_names_the_source_not_the_token(tmp_path):
    path = write(tmp_path / "config.toml", MINIMAL + '[ds]\ntoken_file = "tok"\n[[demarches]]\nnumber = 7\nlabel = "Poitiers"\n')
    write(tmp_path / "tok", SECRET + "\n")
    result = CliRunner().invoke(cli, ["check-config", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert f"token file {tmp_path / 'tok'}" in result.output
    assert "7  Poitiers" in result.output and "Démarches (2)" in result.output
    assert SECRET not in result.output


def test_check_config_cli_lists_config_and_token_problems_with_exit_78(tmp_path):
    path = write(tmp_path / "bad.toml", f'token = "{SECRET}"\n[sync]\npage_size = 500\n')
    write(tmp_path / "tok", SECRET)
    result = CliRunner().invoke(cli, ["check-config", "--config", str(path)])
    assert result.exit_code == EX_CONFIG
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    for expected in ("invalid configuration in", "(top level) token: the API token never goes",
                     "[sync] page_size: 500 is out of range", "[[demarches]]: no démarche configured",
                     "API token: no DS API token found"):
        assert expected in result.output, result.output
    assert SECRET not in result.output


def test_check_config_cli_token_problem_alone_is_a_credential_error(tmp_path):
    path = write(tmp_path / "config.toml", MINIMAL + '[ds]\ntoken_file = "tok"\n')
    write(tmp_path / "tok", SECRET, 0o644)
    result = CliRunner().invoke(cli, ["check-config", "--config", str(path)])
    assert result.exit_code == EX_CONFIG
    assert "chmod 600" in result.output and SECRET not in result.output
    with pytest.raises(CredentialError):
        check(path)


def test_check_config_real_process_exits_78_without_traceback(tmp_path):
    path = write(tmp_path / "bad.toml", f'[ds]\napi_token = "{SECRET}"\nurl = "http://example.org/api/v2/graphql"\n')
    env = {k: v for k, v in os.environ.items() if k not in ("CREDENTIALS_DIRECTORY", "DS_API_TOKEN")}
    out = subprocess.run([sys.executable, "-m", "connector", "check-config", "--config", str(path)],
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == EX_CONFIG, out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""
    assert "[ds] url: http is only allowed to a loopback host" in out.stderr
    assert "[ds] api_token: the API token never goes in the config file" in out.stderr
    assert SECRET not in out.stderr
