"""The hooks every sync entry point (``sync``, ``daemon``, ``demo``) passes to :func:`run_sync`.

The engine knows nothing of forms or deadlines (imports flow downward); the commands layer composes
what runs inside each page's transaction here, once, so every entry point runs the same.
"""

from __future__ import annotations

from connector.config import Config
from connector.sync import SyncHooks


class CompositeHooks(SyncHooks):
    """Several hooks, called in order (each already runs in the engine's savepoint)."""

    def __init__(self, *hooks: object):
        self.hooks = hooks

    def _each(self, name: str, *args: object) -> None:
        for h in self.hooks:
            if (method := getattr(h, name, None)) is not None:
                method(*args)

    def descriptor_saved(self, db, demarche):  # type: ignore[no-untyped-def]
        self._each("descriptor_saved", db, demarche)

    def dossiers_changed(self, db, demarche, numbers):  # type: ignore[no-untyped-def]
        self._each("dossiers_changed", db, demarche, numbers)

    def demarche_done(self, db, demarche, report):  # type: ignore[no-untyped-def]
        self._each("demarche_done", db, demarche, report)


def sync_hooks(config: Config) -> SyncHooks:
    """The hooks of a sync with this config."""
    from connector.followup.hooks import FollowupHooks

    return CompositeHooks(FollowupHooks(config))


async def after_sync(config: Config, report: object) -> None:
    """What runs after each successful sync, outside the sync's transactions (the daemon after every
    run; ``sync`` after its one run): the convention statuses with DS's clock, and the enabled actions."""
    from connector.commands.actions import after_sync_actions

    await after_sync_actions(config)
