"""The database shape, declared once: tables (with their purpose), indexes and views.

``TABLES`` is migration 1 (``db.py`` creates them in this order); a later change to a table is a new
migration in ``db.py``, never an edit of an applied one. Indexes and views are re-applied on every
open, idempotently. ``describe_tables()`` feeds the README's table of tables.

Conventions: DS dates are stored as DS sends them (ISO 8601 with the Paris offset, to the second);
the connector's own timestamps (``*_at`` columns it sets: ``synced_at``, ``recorded_at``...) are UTC.
JSON columns hold compact JSON. Booleans are 0/1.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Table:
    name: str
    purpose: str
    key: str
    ddl: str


def _champ_table_sql(name: str) -> str:
    """champs and annotations share one shape: the dossier's public and private champs."""
    return """
        CREATE TABLE {name} (
            dossier_number INTEGER NOT NULL REFERENCES dossiers(number) ON DELETE CASCADE,
            champ_id TEXT NOT NULL,
            descriptor_id TEXT,
            parent_id TEXT,
            row_id TEXT,
            row_index INTEGER,
            position INTEGER NOT NULL,
            label TEXT,
            type TEXT NOT NULL,
            string_value TEXT,
            value,
            raw TEXT,
            updated_at TEXT,
            PRIMARY KEY (dossier_number, champ_id)
        )""".format(name=name)

def champ_table_rebuild_sql(name: str) -> list[str]:
    """Migration 0005: ``champs``/``annotations`` keyed by ``(dossier_number, champ_id, row_index)``
    instead of ``(dossier_number, champ_id)``.

    Why: DS (and recorded answers of its forks) give the children of a repetition the SAME champ id
    in every row (the id names the champ's descriptor, the row tells the rows apart). Keyed by the id
    alone, the second row of such a dossier broke the page with an IntegrityError. Dropping the
    repeats would lose every row but the first, so each row's champs are kept: a champ is named by
    its id and its row (``row_index``: NULL outside a repetition, -1 in the key)."""
    new = f"{name}_0005"
    return [
        _champ_table_sql(new).replace("            PRIMARY KEY (dossier_number, champ_id)\n", "")
        .replace("updated_at TEXT,\n", "updated_at TEXT\n"),
        f"INSERT INTO {new} SELECT * FROM {name}",
        f"DROP TABLE {name}",
        f"ALTER TABLE {new} RENAME TO {name}",
        f"CREATE UNIQUE INDEX {name}_key ON {name}(dossier_number, champ_id, ifnull(row_index, -1))",
    ]


# Migration 0006: columns of ``files`` for downloads that fail (checksum, size, an HTTP error, an URL
# that stays expired, a virus found): tried again with a backoff across runs, then given up.
FILE_FAILURE_COLUMNS = (
    "attempts INTEGER NOT NULL DEFAULT 0",  # failed download attempts of this file
    "failed_reason TEXT",  # the last failure, NULL once downloaded
    "next_try_at TEXT",  # UTC: not tried again before (the backoff)
    "given_up_at TEXT",  # UTC: tries exhausted (or never downloadable): not tried again
)


TABLES: tuple[Table, ...] = (
    Table(
        "demarches",
        "one row per démarche synced: title, state, dates, active revision, raw descriptor JSON",
        "number",
        """
        CREATE TABLE demarches (
            number INTEGER PRIMARY KEY,
            id TEXT NOT NULL,
            title TEXT,
            description TEXT,
            state TEXT,
            declarative TEXT,
            date_creation TEXT,
            date_publication TEXT,
            date_derniere_modification TEXT,
            date_fermeture TEXT,
            active_revision_id TEXT,
            active_revision_date_publication TEXT,
            raw TEXT NOT NULL,
            synced_at TEXT NOT NULL
        )""",
    ),
    Table(
        "champ_descriptors",
        "the active revision's champ (private=0) and annotation (private=1) descriptors; "
        "repetition columns have parent_id",
        "demarche_number, id",
        """
        CREATE TABLE champ_descriptors (
            demarche_number INTEGER NOT NULL REFERENCES demarches(number) ON DELETE CASCADE,
            id TEXT NOT NULL,
            private INTEGER NOT NULL CHECK (private IN (0, 1)),
            parent_id TEXT,
            position INTEGER NOT NULL,
            type TEXT NOT NULL,
            label TEXT,
            description TEXT,
            required INTEGER,
            options TEXT,
            other_option INTEGER,
            PRIMARY KEY (demarche_number, id)
        )""",
    ),
    Table(
        "groupes_instructeurs",
        "the démarche's groupes instructeurs (closed ones included)",
        "number",
        """
        CREATE TABLE groupes_instructeurs (
            number INTEGER PRIMARY KEY,
            id TEXT NOT NULL,
            demarche_number INTEGER NOT NULL REFERENCES demarches(number) ON DELETE CASCADE,
            label TEXT,
            closed INTEGER NOT NULL DEFAULT 0
        )""",
    ),
    Table(
        "instructeurs",
        "instructeurs met in groupes instructeurs (id for mutations, email for message senders)",
        "id",
        """
        CREATE TABLE instructeurs (
            id TEXT PRIMARY KEY,
            email TEXT NOT NULL
        )""",
    ),
    Table(
        "groupe_instructeur_members",
        "which instructeur belongs to which groupe instructeur",
        "groupe_instructeur_number, instructeur_id",
        """
        CREATE TABLE groupe_instructeur_members (
            groupe_instructeur_number INTEGER NOT NULL
                REFERENCES groupes_instructeurs(number) ON DELETE CASCADE,
            instructeur_id TEXT NOT NULL REFERENCES instructeurs(id),
            PRIMARY KEY (groupe_instructeur_number, instructeur_id)
        )""",
    ),
    Table(
        "labels",
        "the démarche's labels (from the descriptor and from dossiers)",
        "id",
        """
        CREATE TABLE labels (
            id TEXT PRIMARY KEY,
            demarche_number INTEGER NOT NULL,
            name TEXT,
            color TEXT
        )""",
    ),
    Table(
        "dossiers",
        "one row per live dossier: state, every DS date, demandeur, usager, flags, raw JSON "
        "(file URLs removed)",
        "number",
        """
        CREATE TABLE dossiers (
            number INTEGER PRIMARY KEY,
            id TEXT NOT NULL,
            demarche_number INTEGER NOT NULL,
            state TEXT NOT NULL,
            archived INTEGER NOT NULL DEFAULT 0,
            date_depot TEXT,
            date_passage_en_construction TEXT,
            date_passage_en_instruction TEXT,
            date_traitement TEXT,
            date_expiration TEXT,
            date_derniere_modification TEXT NOT NULL,
            date_derniere_modification_champs TEXT,
            date_derniere_modification_annotations TEXT,
            date_suppression_par_usager TEXT,
            date_suppression_par_administration TEXT,
            date_derniere_correction_en_attente TEXT,
            connection_usager TEXT,
            motivation TEXT,
            usager_id TEXT,
            usager_email TEXT,
            demandeur_type TEXT,
            demandeur_siret TEXT,
            demandeur_name TEXT,
            groupe_instructeur_number INTEGER,
            pending_deletion INTEGER NOT NULL DEFAULT 0,
            pending_deletion_date TEXT,
            quarantined INTEGER NOT NULL DEFAULT 0,
            raw TEXT NOT NULL,
            synced_at TEXT NOT NULL
        )""",
    ),
    Table(
        "dossier_labels",
        "labels set on each dossier",
        "dossier_number, label_id",
        """
        CREATE TABLE dossier_labels (
            dossier_number INTEGER NOT NULL REFERENCES dossiers(number) ON DELETE CASCADE,
            label_id TEXT NOT NULL REFERENCES labels(id),
            PRIMARY KEY (dossier_number, label_id)
        )""",
    ),
    Table(
        "champs",
        "one row per champ of a dossier, repetition rows included (row_id, row_index, parent_id); "
        "type = __typename, value typed (JSON for structured values), raw JSON for unknown types",
        "dossier_number, champ_id, row_index (a repetition's rows repeat their champs' ids)",
        _champ_table_sql("champs"),
    ),
    Table(
        "annotations",
        "the same as champs, for the dossier's private annotations",
        "dossier_number, champ_id, row_index",
        _champ_table_sql("annotations"),
    ),
    Table(
        "messages",
        "the dossier's messagerie; sender (system, instructeur, usager) derived from the e-mail",
        "id",
        """
        CREATE TABLE messages (
            id TEXT PRIMARY KEY,
            dossier_number INTEGER NOT NULL REFERENCES dossiers(number) ON DELETE CASCADE,
            email TEXT,
            sender TEXT NOT NULL CHECK (sender IN ('system', 'instructeur', 'usager')),
            body TEXT,
            created_at TEXT NOT NULL,
            discarded INTEGER NOT NULL DEFAULT 0,
            discarded_at TEXT
        )""",
    ),
    Table(
        "files",
        "one row per attachment (message, champ or annotation) with its download state; url valid "
        "about 1 h after url_seen_at",
        "file_key",
        """
        CREATE TABLE files (
            file_key TEXT PRIMARY KEY,
            dossier_number INTEGER NOT NULL REFERENCES dossiers(number) ON DELETE CASCADE,
            owner_kind TEXT NOT NULL CHECK (owner_kind IN ('message', 'champ', 'annotation')),
            owner_id TEXT NOT NULL,
            filename TEXT NOT NULL,
            content_type TEXT,
            byte_size INTEGER,
            checksum TEXT,
            created_at TEXT,
            virus_scan TEXT,
            url TEXT,
            url_seen_at TEXT,
            local_path TEXT,
            downloaded_at TEXT,
            checksum_ok INTEGER
        )""",
    ),
    Table(
        "tombstones",
        "purged or vanished dossiers: what remains after their data was deleted (GDPR)",
        "number",
        """
        CREATE TABLE tombstones (
            number INTEGER PRIMARY KEY,
            demarche_number INTEGER NOT NULL,
            deleted_dossier_id TEXT,
            state TEXT,
            reason TEXT NOT NULL,
            date_suppression TEXT,
            recorded_at TEXT NOT NULL
        )""",
    ),
    Table(
        "pending_deletions",
        "the trash (pendingDeletedDossiers), known dossiers or not; a row goes when the dossier "
        "comes back or is purged",
        "number",
        """
        CREATE TABLE pending_deletions (
            number INTEGER PRIMARY KEY,
            demarche_number INTEGER NOT NULL,
            state TEXT,
            reason TEXT,
            date_suppression TEXT,
            recorded_at TEXT NOT NULL
        )""",
    ),
    Table(
        "quarantine",
        "dossiers (or pages, number NULL) DS could not serve: last error, raw answer, attempts",
        "id",
        """
        CREATE TABLE quarantine (
            id INTEGER PRIMARY KEY,
            demarche_number INTEGER NOT NULL,
            dossier_number INTEGER,
            error TEXT NOT NULL,
            raw TEXT,
            attempts INTEGER NOT NULL DEFAULT 1,
            first_seen_at TEXT NOT NULL,
            last_seen_at TEXT NOT NULL
        )""",
    ),
    Table(
        "sync_state",
        "one bookmark per démarche and stream (dossiers, deleted, pending_deleted, listing), "
        "written in the same transaction as the page's rows",
        "demarche_number, stream",
        """
        CREATE TABLE sync_state (
            demarche_number INTEGER NOT NULL,
            stream TEXT NOT NULL
                CHECK (stream IN ('dossiers', 'deleted', 'pending_deleted', 'listing')),
            updated_since TEXT,
            after_cursor TEXT,
            cursor_since TEXT,
            max_seen TEXT,
            last_success_at TEXT,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (demarche_number, stream)
        )""",
    ),
    Table(
        "sync_runs",
        "one row per sync run: kind, démarches, counts, status",
        "id",
        """
        CREATE TABLE sync_runs (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            demarches TEXT NOT NULL,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            status TEXT NOT NULL,
            requests INTEGER NOT NULL DEFAULT 0,
            pages INTEGER NOT NULL DEFAULT 0,
            dossiers INTEGER NOT NULL DEFAULT 0,
            new INTEGER NOT NULL DEFAULT 0,
            updated INTEGER NOT NULL DEFAULT 0,
            deleted INTEGER NOT NULL DEFAULT 0,
            quarantined INTEGER NOT NULL DEFAULT 0,
            errors INTEGER NOT NULL DEFAULT 0
        )""",
    ),
)

# Tables added by later migrations (``db.py``, one named migration each), described here too.
LATER_TABLES: tuple[Table, ...] = (
    Table(
        "run_reports",
        "what a sync run's row lacks, recorded after it: each démarche's error, a fatal error, "
        "retries, rate-limited requests (for status)",
        "run_id",
        """
        CREATE TABLE run_reports (
            run_id INTEGER PRIMARY KEY REFERENCES sync_runs(id) ON DELETE CASCADE,
            retries INTEGER NOT NULL DEFAULT 0,
            rate_limited INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            errors TEXT NOT NULL
        )""",
    ),
)

# name -> columns (with an optional WHERE for partial indexes). Applied with CREATE INDEX IF NOT EXISTS.
INDEXES: dict[str, str] = {
    "idx_dossiers_demarche_state": "dossiers(demarche_number, state)",
    "idx_dossiers_demarche_modified": "dossiers(demarche_number, date_derniere_modification)",
    # status's (and the web view's) "new in 24 h" reads this index, not every wide dossier row
    "idx_dossiers_demarche_depot": "dossiers(demarche_number, date_depot)",
    "idx_champs_descriptor": "champs(descriptor_id)",
    "idx_annotations_descriptor": "annotations(descriptor_id)",
    "idx_messages_dossier_created": "messages(dossier_number, created_at)",
    "idx_files_dossier": "files(dossier_number)",
    "idx_files_not_downloaded": "files(dossier_number) WHERE downloaded_at IS NULL",
    "idx_dossier_labels_label": "dossier_labels(label_id)",
    "idx_groupes_demarche": "groupes_instructeurs(demarche_number)",
    "idx_tombstones_demarche": "tombstones(demarche_number)",
    "idx_quarantine_dossier": "quarantine(dossier_number)",
}

# name -> SELECT. Re-created when the stored definition differs.
VIEWS: dict[str, str] = {
    "dossier_counts": """
        SELECT demarche_number, state, count(*) AS dossiers,
               sum(pending_deletion) AS pending_deletion, sum(quarantined) AS quarantined
        FROM dossiers GROUP BY demarche_number, state""",
}


def describe_tables() -> list[tuple[str, str]]:
    """(name, one-line purpose) for every table, in creation order: the README's table of tables."""
    from connector.store import followup, forms, renewal  # later migrations' tables

    return ([(t.name, t.purpose) for t in TABLES + LATER_TABLES] + list(forms.DESCRIBED) + list(followup.DESCRIBED)
            + list(renewal.DESCRIBED))
