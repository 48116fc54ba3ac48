"""The web view in a real browser: Debian's chromium, headless, driven by Selenium through Debian's
chromedriver (``.ci/run`` installs both; Selenium Manager is kept offline and downloads nothing).

Set ``DS_WEB_SCREENSHOTS=DIR`` to keep screenshots (1366 × 768) of the campaign and dossier pages.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from daemonenv import child_env
from webenv import PASSWORD, USER, WebServer, build_mirror, chromium, rows

pytestmark = pytest.mark.skipif(
    not (shutil.which("chromium") and Path("/usr/bin/chromedriver").exists()),
    reason="Debian's chromium and chromium-driver are not installed (.ci/run installs them)")

PERSONAL_COLUMNS = "demandeur_name, usager_email"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    config, sim = build_mirror(tmp_path_factory.mktemp("web") / "site")
    server = WebServer(config)
    yield config, server
    server.stop()
    sim.stop()


@pytest.fixture
def browser(tmp_path):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = chromium(downloads)
    driver.downloads = downloads
    yield driver
    driver.quit()


def log_in(driver, server, user: str = USER, password: str = PASSWORD) -> None:
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    if "/login" not in driver.current_url:
        driver.get(server.url + "/login")
    driver.find_element(By.ID, "user").clear()
    driver.find_element(By.ID, "user").send_keys(user)
    driver.find_element(By.ID, "password").send_keys(password)
    before = driver.find_element(By.TAG_NAME, "html").id
    driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()

    def next_document(d) -> bool:  # the click returns before the answer: the page asked for, or the form again
        try:
            return (d.find_element(By.TAG_NAME, "html").id != before
                    and d.execute_script("return document.readyState") == "complete")
        except WebDriverException:  # caught mid-navigation
            return False

    WebDriverWait(driver, 30, poll_frequency=0.05).until(next_document)


def screenshot(driver, name: str) -> None:
    where = os.environ.get("DS_WEB_SCREENSHOTS")
    if where:
        driver.set_window_size(1366, 768)
        driver.save_screenshot(str(Path(where) / name))


def a_full_dossier(config) -> int:
    """A dossier with schools, an anomaly and a convention received by a message with a file."""
    return rows(config, """
        SELECT c.dossier_number FROM conventions c
        WHERE c.proof_message_id IS NOT NULL AND c.proof_file_key IS NOT NULL
          AND EXISTS (SELECT 1 FROM ecoles e WHERE e.dossier_number = c.dossier_number)
          AND EXISTS (SELECT 1 FROM anomalies a WHERE a.dossier_number = c.dossier_number)
        ORDER BY c.dossier_number LIMIT 1""")[0][0]


def test_without_a_login_every_page_but_health_leads_to_the_login_and_shows_nothing(site, browser):
    from selenium.webdriver.common.by import By

    config, server = site
    number = a_full_dossier(config)
    demarche = rows(config, "SELECT demarche_number FROM dossiers WHERE number = ?", [number])[0][0]
    secrets = {v for r in rows(config, f"SELECT {PERSONAL_COLUMNS} FROM dossiers") for v in r if v}
    secrets |= {r[0] for r in rows(config, "SELECT nom FROM ecoles WHERE nom IS NOT NULL")}
    secrets |= {r[0] for r in rows(config, "SELECT email FROM messages WHERE sender = 'usager'")}
    assert len(secrets) > 50
    pages = ["/", f"/demarches/{demarche}", f"/demarches/{demarche}/conventions", f"/demarches/{demarche}/anomalies",
             f"/demarches/{demarche}/actions", f"/demarches/{demarche}/ecoles", f"/demarches/{demarche}/dossiers",
             f"/dossiers/{number}", "/exports", f"/exports/ecoles.csv?demarche={demarche}"]
    for page in pages:
        browser.get(server.url + page)
        assert browser.current_url.startswith(server.url + "/login?next="), page
        assert browser.find_element(By.TAG_NAME, "h1").text == "Connexion"
        source = browser.page_source
        leaked = [s for s in secrets if s in source]
        assert not leaked, (page, leaked[:3])
    assert not list(browser.downloads.iterdir())  # the export was not served either
    browser.get(server.url + "/healthz")
    assert browser.find_element(By.TAG_NAME, "body").text.strip() == "ok"


def status_json(config) -> dict:
    result = subprocess.run([sys.executable, "-m", "connector", "status", "--json", "--config", str(config.path)],
                            capture_output=True, text=True, env=child_env(), timeout=60)
    return json.loads(result.stdout)


def figure(entry: dict, path: str):
    value = entry
    for part in path.split("."):
        value = value[part]
    return value


def test_campaign_figures_equal_ds_connector_status_json(site, browser):
    from selenium.webdriver.common.by import By

    config, server = site
    browser.get(server.url + "/")
    log_in(browser, server)
    status = status_json(config)
    assert status["database"]["readable"]
    checked = 0
    for entry in status["demarches"]:
        browser.get(f"{server.url}/demarches/{entry['number']}")
        shown = {e.get_attribute("data-status"): e.text
                 for e in browser.find_elements(By.CSS_SELECTOR, "[data-status]")}
        required = {"dossiers.total", "new_24h", "trash", "quarantined", "anomalies.open",
                    *(f"dossiers.by_state.{s}" for s in entry["dossiers"]["by_state"]),
                    *(f"conventions.{k}" for k in ("awaiting", "due_within_15_days", "overdue")),
                    *(f"actions.{k}" for k in ("planned", "sending", "sent", "failed", "unknown", "cancelled"))}
        assert required <= set(shown), required - set(shown)
        for path, text in shown.items():
            assert int("".join(ch for ch in text if ch.isdigit())) == figure(entry, path), (entry["number"], path)
            checked += 1
        if entry["conventions"]["awaiting"]:
            screenshot(browser, "web-campaign.png")
    assert checked > 40
    occitanie = next(e for e in status["demarches"] if e["conventions"]["awaiting"])
    assert occitanie["actions"]["sent"] > 0  # the journal is not empty: the figure means something


def test_dossier_page_shows_schools_anomalies_and_the_conventions_proof(site, browser):
    from selenium.webdriver.common.by import By

    config, server = site
    number = a_full_dossier(config)
    browser.get(f"{server.url}/dossiers/{number}")
    log_in(browser, server)
    assert browser.current_url == f"{server.url}/dossiers/{number}"
    schools = browser.find_element(By.ID, "ecoles").text
    for uai_saisi, valid, nom in rows(config, "SELECT uai_saisi, uai_valide, nom FROM ecoles WHERE dossier_number = ?",
                                      [number]):
        assert (uai_saisi or "") in schools and (nom or "") in schools
    checks = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#ecoles tbody td:nth-child(4)")]
    valid = rows(config, "SELECT uai_valide FROM ecoles WHERE dossier_number = ? ORDER BY position", [number])
    assert checks == ["valide" if r[0] else "invalide" for r in valid]
    anomalies = browser.find_element(By.ID, "anomalies").text
    for (message,) in rows(config, "SELECT message FROM anomalies WHERE dossier_number = ?", [number]):
        assert message in anomalies
    proof = browser.find_element(By.ID, "convention").text
    convention = rows(config, "SELECT c.status, m.body, f.filename FROM conventions c "
                              "JOIN messages m ON m.id = c.proof_message_id "
                              "JOIN files f ON f.file_key = c.proof_file_key WHERE c.dossier_number = ?", [number])[0]
    assert convention["filename"] in proof
    assert convention["body"].splitlines()[0] in proof
    assert "Reçue" in proof
    link = browser.find_element(By.PARTIAL_LINK_TEXT, "Ouvrir le dossier sur Démarches-Simplifiées")
    demarche = rows(config, "SELECT demarche_number FROM dossiers WHERE number = ?", [number])[0][0]
    assert link.get_attribute("href").endswith(f"/procedures/{demarche}/dossiers/{number}")
    assert "Messagerie" in browser.find_element(By.ID, "messagerie").text
    screenshot(browser, "web-dossier.png")


def test_an_export_downloads_and_opens(site, browser):
    from selenium.webdriver.common.by import By

    config, server = site
    browser.get(server.url + "/exports")
    log_in(browser, server)
    demarche = rows(config, "SELECT demarche_number FROM conventions LIMIT 1")[0][0]
    browser.find_element(By.CSS_SELECTOR, f'a[href="/exports/ecoles.csv?demarche={demarche}"]').click()
    target = browser.downloads / f"ecoles-{demarche}.csv"
    for _ in range(300):  # a wait for the download, not a timing assertion
        if target.exists():
            break
        time.sleep(0.1)
    assert target.exists(), list(browser.downloads.iterdir())
    with open(target, encoding="utf-8-sig", newline="") as f:
        table = list(csv.DictReader(f, delimiter=";"))
    expected = rows(config, "SELECT e.uai_saisi FROM ecoles e JOIN dossiers d ON d.number = e.dossier_number "
                            "WHERE d.demarche_number = ? ORDER BY d.number, e.position", [demarche])
    assert [r["uai_saisi"] for r in table] == [r[0] or "" for r in expected]
    assert {r["demarche"] for r in table} == {str(demarche)}


def test_five_wrong_passwords_slow_down_even_the_right_one(site, browser):
    from selenium.webdriver.common.by import By

    config, _ = site
    server = WebServer(config)  # its own throttle: the other tests' logins stay free
    try:
        browser.get(server.url + "/")
        for attempt in range(5):
            log_in(browser, server, password=f"not the password {attempt}")
            alert = browser.find_element(By.CSS_SELECTOR, "[role=alert]").text
            assert "Identifiant ou mot de passe incorrect" in alert
        assert "nouvel essai possible dans 30 s" in alert
        log_in(browser, server)  # the right password, within the lock
        assert "Trop d'échecs de connexion" in browser.find_element(By.CSS_SELECTOR, "[role=alert]").text
        assert "/login" in browser.current_url
        assert not [c for c in browser.get_cookies() if c["name"] == "dsc_session"]
    finally:
        server.stop()


def test_session_cookie_flags_as_the_browser_stores_them(site, browser):
    _, server = site
    browser.get(server.url + "/")
    log_in(browser, server)
    session = next(c for c in browser.get_cookies() if c["name"] == "dsc_session")
    # Chromium keeps Secure cookies over http:// for 127.0.0.1 (a potentially trustworthy origin).
    assert session["secure"] is True and session["httpOnly"] is True and session["sameSite"] == "Strict"
    assert browser.execute_script("return document.cookie") == ""  # HttpOnly: out of scripts' reach
