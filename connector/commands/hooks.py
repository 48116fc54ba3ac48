"""The hooks every sync entry point (``sync``, ``daemon``, ``demo``) passes to :func:`run_sync`.

The engine knows nothing of forms or deadlines (imports flow downward); the commands layer composes
what runs inside each page's transaction here, once, so every entry point runs the same.
"""

from __future__ import annotations

from connector.config import Config
from connector.sync import SyncHooks


def sync_hooks(config: Config) -> SyncHooks:
    """The hooks of a sync with this config."""
    return SyncHooks()


async def after_sync(config: Config, report: object) -> None:
    """What runs after each successful sync, outside the sync's transactions (the daemon after every
    run; ``sync`` after its one run): e.g. the actions of the deadlines issue. Nothing yet."""
