"""Helpers for the web view's tests: a mirror with forms, conventions and actions built the real way
(the simulator, a sync and the follow-up), an account, and ``ds-connector serve``'s application
running in its own thread on a free loopback port."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path
from typing import Any


from conftest import ServedApp, SimulatorHandle
from followup_env import followup_config, sync_and_act

from connector.config import Config, load_config
from connector.simulator.seed import seed_world
from connector.web.app import create_app
from connector.web.auth import AuthFiles, Throttle, ensure_secret, set_user

USER, PASSWORD = "camille", "un mot de passe assez long"
CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1366,768")


def build_mirror(directory: Path, *, seed: int = 7, dossiers: int = 120) -> tuple[Config, SimulatorHandle]:
    """Every démarche of a seeded world synced, the Occitanie deadline on (reminders sent by the
    follow-up), one account; then the API token file is deleted: the web view must not need it."""
    sim = SimulatorHandle(seed_world(seed=seed, dossiers=dossiers), rate_limit=0)
    config = followup_config(directory, sim, reminders=True, only_occitanie=False)
    sync_and_act(config)
    for _ in range(30):  # days go by until the follow-up has sent reminders: the journal is not empty
        if rows(config, "SELECT count(*) FROM actions WHERE state = 'sent'")[0][0]:
            break
        sim.control("advance", seconds=86400)
        sync_and_act(config)
    (directory / "ds-api-token").unlink()
    files = AuthFiles.beside(config.path, environ={})
    ensure_secret(files.secret)
    set_user(files.users, USER, PASSWORD)
    return config, sim


def rows(config: Config, sql: str, params: list | tuple = ()) -> list[sqlite3.Row]:
    with closing(sqlite3.connect(config.database.path)) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute(sql, params).fetchall()


def with_web_section(config: Config, text: str) -> Config:
    """The same config with a ``[web]`` section."""
    path = config.path
    body = path.read_text(encoding="utf-8")
    if "[web]" not in body:
        body = body.replace("[database]", f"[web]\n{text}\n\n[database]", 1)
    path.write_text(body, encoding="utf-8")
    return load_config(path)


class WebServer(ServedApp):
    """``create_app(config)`` served on 127.0.0.1:<free port> from a thread with its own loop."""

    def __init__(self, config: Config, throttle: Throttle | None = None):
        super().__init__(create_app(config, AuthFiles.beside(config.path, environ={}), throttle), "the web view")
        self.url = f"http://127.0.0.1:{self.port}"


def chromium(download_dir: Path | None = None) -> Any:
    """Debian's chromium, headless, through Debian's chromedriver (Selenium Manager downloads nothing)."""
    os.environ["SE_OFFLINE"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument("--user-data-dir=" + tempfile.mkdtemp(prefix="chromium-profile-"))
    if download_dir is not None:
        options.add_experimental_option("prefs", {"download.default_directory": str(download_dir),
                                                  "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    if download_dir is not None:
        driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)})
    return driver
