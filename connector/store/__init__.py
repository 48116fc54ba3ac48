"""The SQLite mirror: open it, save DS pages into it, keep sync bookmarks and runs.

The engine's unit of work is one page and its bookmark in one transaction::

    with db.atomic():
        counts = save_dossiers(db, demarche_number, nodes)
        set_bookmark(db, demarche_number, "dossiers", after_cursor=end, cursor_since=since,
                     max_seen=max_date)
    for path in counts.removed_files:  # after the commit
        path.unlink(missing_ok=True)

Page savers (``save_*``, ``set_bookmark``, ``finish_stream``) must run inside ``db.atomic()``;
``confirm_vanished``, ``quarantine``, ``clear_quarantine``, ``clear_unnamed_quarantine``, runs and
file records are their own unit of work (a savepoint when called inside one). Tables:
``shape.TABLES`` / ``describe_tables()``.
"""

from connector.store.db import open_db, open_db_readonly
from connector.store.deletions import (
    clear_pending,
    clear_quarantine,
    clear_unnamed_quarantine,
    confirm_vanished,
    quarantine,
    save_deleted,
    save_pending_deleted,
)
from connector.store.files import (
    files_to_download,
    record_file_download,
    record_file_downloads,
    record_file_failures,
)
from connector.store.runs import RUN_STATUSES, finish_run, start_run
from connector.store.save import SaveCounts, dossier_problem, save_demarche, save_dossiers, split_dossiers
from connector.store.shape import describe_tables
from connector.store.state import STREAMS, Bookmark, finish_stream, get_bookmark, set_bookmark
from connector.store.values import SYSTEM_EMAILS, classify_sender

__all__ = [
    "RUN_STATUSES",
    "STREAMS",
    "SYSTEM_EMAILS",
    "Bookmark",
    "SaveCounts",
    "classify_sender",
    "clear_pending",
    "clear_quarantine",
    "clear_unnamed_quarantine",
    "confirm_vanished",
    "describe_tables",
    "dossier_problem",
    "files_to_download",
    "finish_run",
    "finish_stream",
    "get_bookmark",
    "open_db",
    "open_db_readonly",
    "quarantine",
    "record_file_download",
    "record_file_downloads",
    "record_file_failures",
    "save_deleted",
    "save_demarche",
    "save_dossiers",
    "save_pending_deleted",
    "set_bookmark",
    "split_dossiers",
    "start_run",
]
