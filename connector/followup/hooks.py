"""The follow-up's sync hook: keep ``conventions`` current inside each page's transaction.

DS's clock is not known inside a page: the newest DS timestamp of the mirror stands in for it (a
lower bound); the statuses that depend on the time (awaiting → overdue) are refreshed with DS's real
clock after each sync (the run service's follow-up, ``connector.service``).

The follow-up profile of a démarche is resolved once per hook (one sync) and kept until its
descriptor is saved again: it is read from the champ descriptors alone, which only the descriptor's
save changes."""

from __future__ import annotations

from datetime import datetime, timezone

import sqlite_utils

from connector.config import Config
from connector.followup import conventions, deadlines
from connector.followup.profile import FollowupProfile, resolve
from connector.store import followup as store


class FollowupHooks:
    """Duck-typed ``connector.sync.SyncHooks`` (composed in ``connector/commands/hooks.py``)."""

    def __init__(self, config: Config):
        self.config = config
        self.by_number = {d.number: d for d in config.demarches}
        self._profiles: dict[int, FollowupProfile | None] = {}

    def profile(self, db: sqlite_utils.Database, demarche: int) -> FollowupProfile | None:
        """The démarche's follow-up profile, resolved on first use and kept until its descriptor changes."""
        if demarche not in self._profiles:
            self._profiles[demarche] = resolve(db, demarche, self.by_number[demarche])
        return self._profiles[demarche]

    def descriptor_saved(self, db: sqlite_utils.Database, demarche: int) -> None:
        """The descriptor changed: the profile is resolved again when dossiers change."""
        self._profiles.pop(demarche, None)

    def demarche_done(self, db: sqlite_utils.Database, demarche: int, report: object) -> None:
        """Nothing: statuses that depend on DS's clock are refreshed after the sync (``connector.service``)."""

    def dossiers_changed(self, db: sqlite_utils.Database, demarche: int, numbers: list[int]) -> None:
        dcfg = self.by_number.get(demarche)
        if dcfg is None or not numbers:
            return
        profile = self.profile(db, demarche)
        if profile is None or not profile.convention_deadline:
            return
        now = deadlines.parse_ds(store.newest_ds_time(db)) or datetime.now(timezone.utc)
        conventions.refresh(db, dcfg.deadline, demarche, profile, now, list(numbers))
