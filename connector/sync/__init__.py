"""Mirroring DS démarches into SQLite: fetchers of pages (``pages``), the per-démarche engine
(``engine``), the reconciliation pass (``reconcile``) and attachment downloads (``attachments``)."""

from connector.sync.engine import DemarcheReport, Stopped, SyncHooks, SyncReport, run_sync

__all__ = ["DemarcheReport", "Stopped", "SyncHooks", "SyncReport", "run_sync"]
