"""The hooks every sync entry point (``sync``, ``daemon``, ``demo``) passes to :func:`run_sync`.

The engine knows nothing of forms or deadlines (imports flow downward); the commands layer composes
what runs inside each page's transaction here, once, so every entry point runs the same.
"""

from __future__ import annotations

from typing import Any

from connector.config import Config
from connector.followup.hooks import FollowupHooks
from connector.followup.renewal_refresh import RenewalHooks
from connector.forms.hooks import FormsHooks
from connector.sync import SyncHooks


class CompositeHooks(SyncHooks):
    """Calls each hook in order (forms first: the deadlines read the forms' rows; the renewal last: it
    reads both). Nothing is wrapped here, so no call is guarded twice: the engine guards
    ``descriptor_saved`` once (a savepoint and a log line, ``sync.hook_failed``: a failure skips the
    hooks after it, whose work reads the failed one's rows); ``demarche_done`` raising is the
    démarche's bug (reported failed, the others go on); ``dossiers_changed`` runs through the door
    (``connector.store.door.enter``), where a hook that raises gets its dossier quarantined with the
    error (rows and hooks' writes rolled back together) instead of leaving its forms and deadlines
    stale."""

    def __init__(self, hooks: list[Any]):
        self.hooks = list(hooks)

    def descriptor_saved(self, db: Any, demarche: int) -> None:
        for hook in self.hooks:
            hook.descriptor_saved(db, demarche)

    def dossiers_changed(self, db: Any, demarche: int, numbers: list[int]) -> None:
        for hook in self.hooks:
            hook.dossiers_changed(db, demarche, numbers)

    def demarche_done(self, db: Any, demarche: int, report: Any) -> None:
        for hook in self.hooks:
            hook.demarche_done(db, demarche, report)


def sync_hooks(config: Config) -> SyncHooks:
    """The hooks of a sync with this config."""
    return CompositeHooks([FormsHooks(config), FollowupHooks(config), RenewalHooks(config)])
