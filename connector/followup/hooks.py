"""The follow-up's sync hook: keep ``conventions`` current inside each page's transaction.

DS's clock is not known inside a page: the newest DS timestamp of the mirror stands in for it (a
lower bound); the statuses that depend on the time (awaiting → overdue) are refreshed with DS's real
clock after each sync (``commands.actions.after_sync_actions``)."""

from __future__ import annotations

from datetime import datetime, timezone

import sqlite_utils

from connector.config import Config
from connector.followup import conventions, deadlines
from connector.followup.profile import resolve
from connector.store import followup as store


class FollowupHooks:
    """Duck-typed ``connector.sync.SyncHooks`` (composed in ``connector/commands/hooks.py``)."""

    def __init__(self, config: Config):
        self.config = config
        self.by_number = {d.number: d for d in config.demarches}

    def descriptor_saved(self, db: sqlite_utils.Database, demarche: int) -> None:
        """Nothing: the profile is resolved from the descriptor when dossiers change."""

    def demarche_done(self, db: sqlite_utils.Database, demarche: int, report: object) -> None:
        """Nothing: statuses that depend on DS's clock are refreshed after the sync (after_sync)."""

    def dossiers_changed(self, db: sqlite_utils.Database, demarche: int, numbers: list[int]) -> None:
        dcfg = self.by_number.get(demarche)
        if dcfg is None or not numbers:
            return
        profile = resolve(db, demarche, dcfg)
        if profile is None or not profile.convention_deadline:
            return
        now = deadlines.parse_ds(store.newest_ds_time(db)) or datetime.now(timezone.utc)
        conventions.refresh(db, dcfg.deadline, demarche, profile, now, list(numbers))
