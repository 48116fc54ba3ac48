"""``ds-connector serve`` over plain HTTP (no browser): headers, cookies' flags, CSRF, the trusted proxy
header, the login throttle and its log, the accounts file, lists, read-only access while a writer
holds the database, and the command itself."""

from __future__ import annotations

import csv
import html
import http.client
import io
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from datetime import date, datetime
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from structlog.testing import capture_logs

from daemonenv import child_env
from webenv import PASSWORD, USER, WebServer, build_mirror, rows, with_web_section

from connector.errors import ConfigError
from connector.status import gather
from connector.web import auth
from connector.web.app import CSP


class Client:
    """A cookie-keeping HTTP client that follows no redirect and sends Secure cookies over http to
    127.0.0.1, as browsers do for a loopback address."""

    def __init__(self, url: str, headers: dict[str, str] | None = None):
        self.host, self.port = url.removeprefix("http://").split(":")
        self.cookies: dict[str, str] = {}
        self.headers = headers or {}

    def request(self, method: str, path: str, form: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, http.client.HTTPMessage, str]:
        conn = http.client.HTTPConnection(self.host, int(self.port), timeout=30)
        sent = {**self.headers, **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        text = response.read().decode("utf-8", "replace")
        if response.headers.get("Content-Type", "").startswith("text/html"):
            text = html.unescape(text)
        for header in response.headers.get_all("Set-Cookie") or []:
            cookie = SimpleCookie(header)
            for name, morsel in cookie.items():
                if morsel["max-age"] == "0" or (morsel["expires"] and "1970" in morsel["expires"]):
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        conn.close()
        return response.status, response.headers, text

    def get(self, path: str, **kw):
        return self.request("GET", path, **kw)

    def login_form(self) -> str:
        status, _, text = self.get("/login")
        assert status == 200
        return re.search(r'name="csrf" value="([^"]+)"', text)[1]

    def login(self, user: str = USER, password: str = PASSWORD,
              next_: str = "/") -> tuple[int, http.client.HTTPMessage, str]:
        csrf = self.login_form()
        return self.request("POST", "/login", form={"csrf": csrf, "user": user, "password": password, "next": next_})


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    config, sim = build_mirror(tmp_path_factory.mktemp("web") / "site")
    server = WebServer(config)
    yield config, server
    server.stop()
    sim.stop()


def occitanie_number(config) -> int:
    return rows(config, "SELECT demarche_number FROM conventions LIMIT 1")[0][0]


def test_security_headers_and_cookie_flags(site):
    config, server = site
    client = Client(server.url)
    status, headers, _ = client.get("/login")
    assert status == 200
    assert headers["Content-Security-Policy"] == CSP
    assert "default-src 'self'" in CSP and "frame-ancestors 'none'" in CSP and "unsafe-inline" not in CSP
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-store"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert "aiohttp" not in headers.get("Server", "")
    pre = headers.get_all("Set-Cookie")[0]
    assert "HttpOnly" in pre and "Secure" in pre and "SameSite=Strict" in pre

    status, headers, _ = client.login()
    assert status == 303 and headers["Location"] == "/"
    session = next(h for h in headers.get_all("Set-Cookie") if h.startswith("dsc_session="))
    flags = {f.strip().split("=")[0].lower() for f in session.split(";")[1:]}
    assert {"httponly", "secure", "samesite", "path", "max-age"} <= flags, session
    assert "SameSite=Strict" in session

    for path in ("/", f"/demarches/{occitanie_number(config)}", "/exports", "/healthz"):
        status, headers, _ = client.get(path)
        assert status == 200, path
        assert headers["Cache-Control"] == "no-store" and headers["Content-Security-Policy"] == CSP, path
    status, headers, text = client.get("/static/style.css")
    assert status == 200 and headers["Cache-Control"].startswith("public") and "font-family" in text
    # No inline script or style anywhere: the CSP would block them.
    for path in ("/", f"/demarches/{occitanie_number(config)}", "/login"):
        _, _, text = client.get(path)
        assert "<script" not in text and "style=" not in text and "<style" not in text


def test_health_needs_no_login_and_says_nothing_personal(site):
    _, server = site
    status, headers, text = Client(server.url).get("/healthz")
    assert (status, text) == (200, "ok\n")
    assert headers["Cache-Control"] == "no-store"


def test_login_needs_the_forms_csrf_token_and_logout_too(site):
    _, server = site
    client = Client(server.url)
    client.login_form()
    status, _, text = client.request("POST", "/login", form={"user": USER, "password": PASSWORD, "csrf": "forged"})
    assert status == 400 and "dsc_session" not in client.cookies
    fresh = Client(server.url)  # a token from another visitor's form is refused as well
    status, _, _ = fresh.request("POST", "/login", form={"user": USER, "password": PASSWORD,
                                                          "csrf": client.login_form()})
    assert status == 400 and "dsc_session" not in fresh.cookies

    assert client.login()[0] == 303
    status, _, _ = client.request("POST", "/logout", form={"csrf": "forged"})
    assert status == 400 and client.get("/")[0] == 200  # still logged in
    _, _, page = client.get("/")
    token = re.search(r'name="csrf" value="([^"]+)"', page)[1]
    status, headers, _ = client.request("POST", "/logout", form={"csrf": token})
    assert status == 303 and headers["Location"] == "/login"
    status, headers, _ = client.get("/")
    assert status == 302 and headers["Location"].startswith("/login")


def test_a_forged_or_tampered_session_cookie_is_refused(site):
    _, server = site
    client = Client(server.url)
    client.login()
    value = client.cookies["dsc_session"]
    body, mac = value.split(".")
    other = auth._b64(json.dumps({"u": "admin", "exp": 4102444800, "c": "x", "how": "password"}).encode())
    for forged in (f"{other}.{mac}", body + "." + mac[:-2] + "AA", "garbage"):
        intruder = Client(server.url)
        intruder.cookies["dsc_session"] = forged
        status, headers, _ = intruder.get("/")
        assert status == 302 and headers["Location"].startswith("/login"), forged


def test_login_redirects_only_inside_the_site(site):
    _, server = site
    for target, expected in (("/exports", "/exports"), ("//evil.example/x", "/"), ("https://evil.example/", "/"),
                             ("/\\evil.example", "/")):
        status, headers, _ = Client(server.url).login(next_=target)
        assert status == 303 and headers["Location"] == expected, target
    status, _, text = Client(server.url).login(password="not it", next_="/exports")
    assert status == 401 and 'name="next" value="/exports"' in text  # kept for the next try


def test_five_wrong_passwords_lock_the_pair_and_are_logged_without_the_password(site):
    config, _ = site
    clock = [1000.0]
    throttle = auth.Throttle(clock=lambda: clock[0])
    server = WebServer(config, throttle)
    try:
        client = Client(server.url)
        with capture_logs() as logs:
            for attempt in range(1, 6):
                status, _, text = client.login(password=f"wrong password {attempt}")
                assert status == 401 and "Identifiant ou mot de passe incorrect" in text
            assert "nouvel essai possible dans 30 s" in text  # the fifth failure locks for 30 s
            status, _, text = client.login()  # the right password, too early
            assert status == 429 and "Trop d'échecs" in text and "dsc_session" not in client.cookies
            other_user = Client(server.url).login(user="dominique", password="x" * 12)
            assert other_user[0] == 401  # another pair is not locked
            clock[0] += 31
            status, _, text = client.login(password="wrong again")
            assert status == 401 and "dans 60 s" in text  # the lock doubles
            clock[0] += 61
            assert client.login()[0] == 303 and "dsc_session" in client.cookies
        failed = [e for e in logs if e["event"] == "web.login.failed"]
        assert [e["failures"] for e in failed if e["user"] == USER] == [1, 2, 3, 4, 5, 6]
        assert [e["locked_seconds"] for e in failed if e["user"] == USER][-2:] == [30.0, 60.0]
        assert any(e["event"] == "web.login.throttled" for e in logs)
        assert all(e["address"] == "127.0.0.1" for e in failed)
        assert "wrong password" not in repr(logs) and PASSWORD not in repr(logs)
    finally:
        server.stop()


def test_throttle_doubles_caps_and_forgets_on_success():
    clock = [0.0]
    throttle = auth.Throttle(clock=lambda: clock[0])
    locks = [throttle.failed("u", "a")[1] for _ in range(12)]
    assert locks[:4] == [0, 0, 0, 0] and locks[4:8] == [30, 60, 120, 240] and locks[-1] == auth.LOCK_MAX_SECONDS
    assert throttle.wait("u", "a") == auth.LOCK_MAX_SECONDS and throttle.wait("u", "b") == 0
    throttle.succeeded("u", "a")
    assert throttle.wait("u", "a") == 0 and throttle.failed("u", "a") == (1, 0.0)


def test_the_user_header_is_believed_only_from_a_trusted_proxy(site, tmp_path):
    config, server = site
    plain = Client(server.url, headers={"X-Remote-User": "mallory"})
    with capture_logs() as logs:
        status, headers, _ = plain.get("/")
    assert status == 302 and headers["Location"].startswith("/login")
    assert any(e["event"] == "web.user_header_ignored" for e in logs)

    trusting = with_web_section(config, 'trusted_proxies = ["127.0.0.1"]\nuser_header = "X-Forwarded-User"')
    proxied = WebServer(trusting)
    try:
        status, _, text = Client(proxied.url, headers={"X-Forwarded-User": "dominique"}).get("/")
        assert status == 200 and "dominique" in text
        status, _, _ = Client(proxied.url, headers={"X-Remote-User": "dominique"}).get("/")
        assert status == 302  # another header than the configured one
    finally:
        proxied.stop()
        config.path.write_text(re.sub(r"\[web\].*?\n\n", "", config.path.read_text(), flags=re.S))


def test_accounts_file_is_private_and_hashes_are_salted(tmp_path):
    users = tmp_path / "web-users"
    assert auth.set_user(users, "camille", "first password") is True
    assert auth.set_user(users, "dominique", "second password") is True
    assert auth.set_user(users, "camille", "changed password") is False
    assert users.stat().st_mode & 0o777 == 0o600
    stored = auth.read_users(users)
    assert set(stored) == {"camille", "dominique"}
    assert "password" not in users.read_text()
    assert auth.check_login(stored, "camille", "changed password")
    assert not auth.check_login(stored, "camille", "first password")
    assert not auth.check_login(stored, "nobody", "changed password")
    again = auth.hash_password("same")
    assert again != auth.hash_password("same") and auth.verify_password("same", again)
    users.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        auth.read_users(users)
    secret = tmp_path / "web-secret"
    auth.ensure_secret(secret)
    first = secret.read_text()
    auth.ensure_secret(secret)
    assert secret.read_text() == first and secret.stat().st_mode & 0o777 == 0o600
    with pytest.raises(Exception, match="invalid user name"):
        auth.set_user(users, "no spaces allowed", "x" * 12)


def test_lists_filter_sort_search_and_paginate(site):
    config, server = site
    number = occitanie_number(config)
    client = Client(server.url)
    client.login()
    awaiting = rows(config, "SELECT count(*) FROM conventions WHERE status = 'awaiting'")[0][0]
    _, _, text = client.get(f"/demarches/{number}/conventions?status=awaiting")
    assert f">{awaiting} ligne" in text
    assert text.count("<td><a href=\"/dossiers/") == awaiting
    dossier = rows(config, "SELECT dossier_number FROM conventions WHERE status = 'awaiting' LIMIT 1")[0][0]
    _, _, text = client.get(f"/demarches/{number}/conventions?q={dossier}")
    assert ">1 ligne" in text and f'href="/dossiers/{dossier}"' in text

    schools = rows(config, "SELECT count(*) FROM ecoles")[0][0]
    assert schools > 100, "the mirror needs more than one page of schools"
    seen: list[str] = []
    demarches = [r[0] for r in rows(config, "SELECT number FROM demarches")]
    for demarche in demarches:
        page = 1
        while True:
            status, _, text = client.get(f"/demarches/{demarche}/ecoles?sort=uai&page={page}")
            assert status == 200
            body = text.split("<tbody>")[1].split("</tbody>")[0]
            seen += re.findall(r"<tr>(.*?)</tr>", body, flags=re.S)
            if 'rel="next"' not in text:
                break
            page += 1
    assert len([r for r in seen if "Aucune ligne" not in r]) == schools

    _, _, text = client.get(f"/demarches/{number}/ecoles?sort=uai&dir=desc")
    uais = [u for u in re.findall(r"<td>([0-9]{7}[A-Z])</td>", text)]
    assert uais == sorted(uais, reverse=True) and uais
    status, _, _ = client.get(f"/demarches/{number}/nonsense")
    assert status == 404
    status, _, text = client.get(f"/demarches/{number}/actions?state=sent&sort=bogus&page=-4")
    assert status == 200 and "Relance" in text


def test_days_left_and_due_count_at_ds_clock_as_status_does(site):
    """The conventions list's days left and its "due" filters count from DS's clock's Paris day (the
    simulator's, which differs from this machine's), so that they list what status's figures count."""
    config, server = site
    number = occitanie_number(config)
    # The mirror was made by sync + actions without the run service's report: record DS's clock as a run
    # does (here the latest DS modification time of the mirror: DS's clock when it was written).
    with closing(sqlite3.connect(config.database.path)) as conn, conn:
        [(clock,)] = conn.execute("SELECT max(date_derniere_modification) FROM dossiers").fetchall()
        conn.execute("UPDATE sync_runs SET ds_clock = ? WHERE id = (SELECT max(id) FROM sync_runs)", [clock])
    paris = ZoneInfo("Europe/Paris")
    ds_day = datetime.fromisoformat(clock).astimezone(paris).date()
    assert ds_day != datetime.now(paris).date()  # else this test could not tell the two clocks apart
    deadlines = {n: date.fromisoformat(d) for n, d in rows(
        config, "SELECT dossier_number, deadline FROM conventions WHERE status = 'awaiting' AND deadline IS NOT NULL")}
    client = Client(server.url)
    client.login()
    _, _, text = client.get(f"/demarches/{number}/conventions?status=awaiting")
    shown = {int(n): int(days) for n, days in re.findall(
        r'<a href="/dossiers/(\d+)">.*?<td class="num(?: late)?">(-?\d+)</td>', text, flags=re.S)}
    assert shown and {n: (deadlines[n] - ds_day).days for n in shown} == shown
    figures = next(d for d in gather(config)["demarches"] if d["number"] == number)["conventions"]
    for due, figure in (("15", "due_within_15_days"), ("past", "overdue")):
        _, _, text = client.get(f"/demarches/{number}/conventions?due={due}")
        assert re.search(r'id="count">(\d+) ligne', text)[1] == str(figures[figure]), due


def test_campaign_page_answers_while_a_writer_holds_the_database(site):
    config, server = site
    client = Client(server.url)
    client.login()
    number = occitanie_number(config)
    before = Path(config.database.path).stat().st_mtime_ns
    with closing(sqlite3.connect(config.database.path, timeout=1)) as writer:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE dossiers SET synced_at = synced_at")
        status, _, text = client.get(f"/demarches/{number}")
        assert status == 200 and 'data-status="dossiers.total"' in text
        writer.rollback()
    assert Path(config.database.path).stat().st_mtime_ns == before  # nothing written by the pages


def test_export_is_the_export_commands_csv(site):
    config, server = site
    client = Client(server.url)
    client.login()
    number = occitanie_number(config)
    status, headers, text = client.get(f"/exports/ecoles.csv?demarche={number}")
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    assert f'filename="ecoles-{number}.csv"' in headers["Content-Disposition"]
    command = subprocess.run([sys.executable, "-m", "connector", "export", "ecoles", "--demarche", str(number),
                              "--config", str(config.path)], capture_output=True, env=child_env())
    assert command.returncode == 0, command.stderr
    assert text == command.stdout.decode("utf-8")
    table = list(csv.reader(io.StringIO(text.removeprefix("\ufeff")), delimiter=";"))
    assert table[0][:3] == ["demarche", "dossier", "etat"] and len(table) > 1
    assert Client(server.url).get("/exports/ecoles.csv")[0] == 302  # not without a login


def test_serve_command_add_user_health_and_sigterm(site, tmp_path):
    config, _ = site
    env = child_env()
    base = [sys.executable, "-m", "connector", "serve", "--config", str(config.path)]
    short = subprocess.run(base + ["--add-user", "sasha"], input="short\nshort\n", capture_output=True, text=True,
                           env=env, start_new_session=True)
    assert short.returncode == 1 and "too short" in short.stderr and "Traceback" not in short.stderr
    differ = subprocess.run(base + ["--add-user", "sasha"], input="a long password\nanother one!!\n",
                            capture_output=True, text=True, env=env, start_new_session=True)
    assert differ.returncode == 1 and "differ" in differ.stderr
    added = subprocess.run(base + ["--add-user", "sasha"], input="a long password\na long password\n",
                           capture_output=True, text=True, env=env, start_new_session=True)
    assert added.returncode == 0, added.stderr
    assert "sasha" in auth.read_users(config.path.parent / "web-users")
    assert "a long password" not in added.stdout + added.stderr

    server = subprocess.Popen(base + ["--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env)
    try:
        line = server.stdout.readline()
        url = json.loads(line)["url"].rstrip("/")
        assert url.startswith("http://127.0.0.1:")
        assert Client(url).get("/healthz")[:1] == (200,)
        assert Client(url).login(user="sasha", password="a long password")[0] == 303
    finally:
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    assert "Traceback" not in err


def test_serve_without_a_secret_key_is_a_clear_config_error(tmp_path, site):
    config, _ = site
    lonely = tmp_path / "config.toml"
    lonely.write_text(config.path.read_text().replace('path = "ds-connector.sqlite"',
                                                      f'path = "{config.database.path}"'))
    result = subprocess.run([sys.executable, "-m", "connector", "serve", "--config", str(lonely)],
                            capture_output=True, text=True, env=child_env(), timeout=60)
    assert result.returncode == 78 and "no secret key" in result.stderr and "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "web-secret")


def test_web_config_section_lists_every_problem(tmp_path):
    import tomllib

    from connector.config import parse_config

    bad = ('[web]\ntrusted_proxies = ["nope", "::1"]\nuser_header = "a b"\nsecure_cookies = "yes"\nport = 0\n'
           'bogus = 1\n[[demarches]]\nnumber = 1\n')
    with pytest.raises(ConfigError) as caught:
        parse_config(tomllib.loads(bad), tmp_path, "bad.toml")
    problems = caught.value.problems
    assert "[web] trusted_proxies: 'nope' is not an IP address" in problems
    assert "[web] user_header: 'a b' is not an HTTP header name" in problems
    assert "[web] secure_cookies: expected true or false, got a string" in problems
    assert any(p.startswith("[web] port: 0 is out of range") for p in problems)
    assert any(p.startswith("[web] bogus: unknown key") for p in problems)
    good = parse_config(tomllib.loads('[web]\ntrusted_proxies = ["127.0.0.1", "::1"]\n[[demarches]]\nnumber = 1\n'),
                        tmp_path, "good.toml")
    assert good.web.trusted_proxies == ("127.0.0.1", "::1") and good.web.port == 8001 and good.web.secure_cookies
