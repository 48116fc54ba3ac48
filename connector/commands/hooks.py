"""The hooks every sync entry point (``sync``, ``daemon``, ``demo``) passes to :func:`run_sync`.

The engine knows nothing of forms or deadlines (imports flow downward); the commands layer composes
what runs inside each page's transaction here, once, so every entry point runs the same.
"""

from __future__ import annotations

from typing import Any

from connector.config import Config
from connector.logs import get_logger
from connector.sync import SyncHooks

log = get_logger(__name__)


class CompositeHooks(SyncHooks):
    """Calls each hook in order (forms first: the deadlines read the forms' rows; the renewal last: it
    reads both). For ``descriptor_saved`` and ``demarche_done`` each hook's call runs in a savepoint of
    its own: one that raises loses its own writes only, is logged (``sync.hook_failed`` with the hook),
    and the next hooks still run. ``dossiers_changed`` lets a failure through to the door, which
    quarantines the dossier it failed on."""

    def __init__(self, hooks: list[Any]):
        self.hooks = list(hooks)

    def _each(self, method: str, db: Any, *args: Any, savepoint: bool = True) -> None:
        for hook in self.hooks:
            try:
                if savepoint:
                    with db.atomic():
                        getattr(hook, method)(db, *args)
                else:
                    getattr(hook, method)(db, *args)
            except Exception as exc:  # noqa: BLE001 - a hook never stops the mirror nor the other hooks
                log.exception("sync.hook_failed", hook=f"{type(hook).__name__}.{method}",
                              error=f"{type(exc).__name__}: {exc}")

    def descriptor_saved(self, db: Any, demarche: int) -> None:
        self._each("descriptor_saved", db, demarche)

    def dossiers_changed(self, db: Any, demarche: int, numbers: list[int]) -> None:
        """Not guarded: these run through the door (``connector.store.door.enter``), where a hook
        that raises gets its dossier quarantined with the error (rows and hooks' writes rolled back
        together) instead of leaving the dossier's forms and deadlines stale."""
        for hook in self.hooks:
            hook.dossiers_changed(db, demarche, numbers)

    def demarche_done(self, db: Any, demarche: int, report: Any) -> None:
        self._each("demarche_done", db, demarche, report, savepoint=False)


def sync_hooks(config: Config) -> SyncHooks:
    """The hooks of a sync with this config."""
    from connector.followup.hooks import FollowupHooks
    from connector.followup.renewal_refresh import RenewalHooks
    from connector.forms.hooks import FormsHooks

    return CompositeHooks([FormsHooks(config), FollowupHooks(config), RenewalHooks(config)])
