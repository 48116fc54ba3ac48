"""The database's shape, declared once: every table (with its purpose and key), index and view.

Each table is created by one named migration (``store/migrations.py``, which imports this module and
nothing else of the connector but the SQL helpers): ``TABLES`` by ``0001_initial``, ``RUN_REPORTS`` by
``run_reports``, ``FORMS_TABLES`` by ``0002_forms``, ``FOLLOWUP_TABLES`` by ``0003_followup``,
``RENEWAL_TABLES`` by ``0007_renewal``, ``SKIP_TABLES`` and ``GENERATION_TRIGGERS`` by
``0009_followup_plans``; a later change to a table is a new migration, never an edit of an
applied one. The indexes (``ENSURED_INDEXES``), views (``ENSURED_VIEWS``) and triggers
(``GENERATION_TRIGGERS``) are re-applied on every open, idempotently. ``describe_tables()`` feeds the README's table of tables.

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

# Migration 0008: each run keeps DS's clock (the Date header of its latest answer); ``status`` judges
# "overdue" by the last one seen, not by this machine's date.
DS_CLOCK_COLUMN = "ds_clock TEXT"

# --- run_reports: what a run's row lacks -----------------------------------------------------------

# error: what stopped the whole run (bad token...), NULL if none; errors: a JSON object
# {"<démarche>": "<its error>"} of the démarches that failed.
RUN_REPORTS = Table(
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
)


# --- 0002_forms: what the ENT-École forms say (0004 adds ``form_profiles.cross_fingerprint``) ------------

FORMS_TABLES: tuple[Table, ...] = (
    Table(
        "form_profiles",
        "per démarche, the form profile in use (configured or detected) and its role problems",
        "demarche_number",
        """
    CREATE TABLE form_profiles (
        demarche_number INTEGER PRIMARY KEY,
        profile TEXT NOT NULL,
        detected INTEGER NOT NULL DEFAULT 0,
        problems TEXT,
        resolved_at TEXT NOT NULL
    )""",
    ),
    Table(
        "form_roles",
        "which champ descriptor plays which role (active = in the active revision's mapping; "
        "old ones kept for dossiers filed under an old revision)",
        "demarche_number, role, descriptor_id",
        """
    CREATE TABLE form_roles (
        demarche_number INTEGER NOT NULL,
        role TEXT NOT NULL,
        descriptor_id TEXT NOT NULL,
        label TEXT,
        type TEXT,
        active INTEGER NOT NULL DEFAULT 1,
        first_seen_at TEXT NOT NULL,
        last_seen_at TEXT NOT NULL,
        PRIMARY KEY (demarche_number, role, descriptor_id)
    )""",
    ),
    Table(
        "dossier_forms",
        "one row per dossier: what its form says (collectivité, declared count and cost, "
        "schools listed)",
        "dossier_number",
        """
    CREATE TABLE dossier_forms (
        dossier_number INTEGER PRIMARY KEY REFERENCES dossiers(number) ON DELETE CASCADE,
        demarche_number INTEGER NOT NULL,
        profile TEXT,
        siret TEXT,
        collectivite TEXT,
        nombre_ecoles INTEGER,
        nombre_ecoles_saisi TEXT,
        cout REAL,
        cout_saisi TEXT,
        ecoles_listees INTEGER NOT NULL DEFAULT 0,
        problems TEXT,
        evaluated_at TEXT NOT NULL
    )""",
    ),
    Table(
        "ecoles",
        "one row per school per dossier: UAI as typed and normalised, valid flag, name, commune; "
        "rebuilt with the dossier's page",
        "dossier_number, position",
        """
    CREATE TABLE ecoles (
        demarche_number INTEGER NOT NULL,
        dossier_number INTEGER NOT NULL REFERENCES dossiers(number) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        uai_saisi TEXT,
        uai TEXT,
        uai_valide INTEGER NOT NULL DEFAULT 0,
        nom TEXT,
        commune TEXT,
        source TEXT,
        champ TEXT,
        PRIMARY KEY (dossier_number, position)
    )""",
    ),
    Table(
        "anomalies",
        "what is wrong in a dossier (stable code, severity, champ, French message), with first "
        "seen, last seen and resolved at (NULL while open)",
        "id (one open anomaly per dossier_number, code, key)",
        """
    CREATE TABLE anomalies (
        id INTEGER PRIMARY KEY,
        demarche_number INTEGER NOT NULL,
        dossier_number INTEGER NOT NULL REFERENCES dossiers(number) ON DELETE CASCADE,
        code TEXT NOT NULL,
        severity TEXT NOT NULL CHECK (severity IN ('error', 'warning')),
        champ TEXT,
        key TEXT NOT NULL DEFAULT '',
        message TEXT NOT NULL,
        first_seen_at TEXT NOT NULL,
        last_seen_at TEXT NOT NULL,
        resolved_at TEXT
    )""",
    ),
)

# Migration 0002: one open anomaly per dossier, code and key.
ANOMALIES_ONE_OPEN = ("CREATE UNIQUE INDEX idx_anomalies_one_open ON anomalies(dossier_number, code, key) "
                      "WHERE resolved_at IS NULL")
# Migration 0004: what the cross-dossier rules last read, so that a sync that changed none of it does
# not evaluate them again.
CROSS_FINGERPRINT_COLUMN = "cross_fingerprint TEXT"

# --- 0003_followup: conventions and the side-effect journal (0007 rebuilds ``actions``) -------------------

CONVENTION_STATUSES = ("awaiting", "received_on_time", "received_late", "overdue", "to_review",
                       "to_confirm", "not_applicable")
ACTION_STATES = ("planned", "sending", "sent", "failed", "unknown", "cancelled")
ACTION_KINDS = ("reminder", "closure_message", "closure_annotations", "passer_en_instruction", "repasser_en_instruction",
                "classer_sans_suite", "renewal_reminder")

CONVENTIONS_DDL = f"""
    CREATE TABLE conventions (
        dossier_number INTEGER PRIMARY KEY REFERENCES dossiers(number) ON DELETE CASCADE,
        demarche_number INTEGER NOT NULL,
        reference TEXT NOT NULL,
        reference_at TEXT,
        deadline TEXT,
        status TEXT NOT NULL CHECK (status IN ({", ".join(repr(s) for s in CONVENTION_STATUSES)})),
        rule TEXT NOT NULL,
        received_at TEXT,
        proof_message_id TEXT,
        proof_file_key TEXT,
        proof_annotation_id TEXT,
        next_action TEXT,
        next_action_at TEXT,
        updated_at TEXT NOT NULL
    )"""

ACTIONS_DDL = f"""
    CREATE TABLE actions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        demarche_number INTEGER NOT NULL,
        dossier_number INTEGER NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ({", ".join(repr(k) for k in ACTION_KINDS)})),
        step INTEGER NOT NULL DEFAULT 0,
        dedup_key TEXT NOT NULL UNIQUE,
        rule TEXT NOT NULL,
        deadline TEXT,
        operation TEXT NOT NULL,
        payload TEXT NOT NULL,
        instructeur_id TEXT,
        instructeur_email TEXT,
        state TEXT NOT NULL DEFAULT 'planned' CHECK (state IN ({", ".join(repr(s) for s in ACTION_STATES)})),
        attempts INTEGER NOT NULL DEFAULT 0,
        not_before TEXT,
        ds_answer TEXT,
        last_error TEXT,
        remote_id TEXT,
        created_at TEXT NOT NULL,
        sending_at TEXT,
        sending_ds_at TEXT,
        sent_at TEXT,
        updated_at TEXT NOT NULL
    )"""

FOLLOWUP_TABLES: tuple[Table, ...] = (
    Table(
        "conventions",
        "per dossier of a démarche with the signed-convention deadline: reference date, deadline, "
        "status, when and by which message, file or annotation it was received, next action",
        "dossier_number",
        CONVENTIONS_DDL,
    ),
    Table(
        "actions",
        "the side-effect journal: one row per message, annotation or state change on DS, with its "
        "deduplication key, exact payload and state (planned, sending, sent, failed, unknown, cancelled)",
        "id (dedup_key unique)",
        ACTIONS_DDL,
    ),
)

# --- 0007_renewal: the renewal from one school year to the next ---------------------------------------

RENEWAL_STATUSES = ("renouvelee", "en_attente", "non_renouvelee", "fermee", "nouvelle")

RENEWAL_DDL = f"""
    CREATE TABLE renouvellements (
        demarche_number INTEGER NOT NULL,
        uai TEXT NOT NULL,
        previous_demarche_number INTEGER NOT NULL,
        statut TEXT NOT NULL CHECK (statut IN ({", ".join(repr(s) for s in RENEWAL_STATUSES)})),
        ecole TEXT,
        commune TEXT,
        dossier_precedent INTEGER,
        siret_precedent TEXT,
        collectivite_precedente TEXT,
        dossier INTEGER,
        siret TEXT,
        collectivite TEXT,
        changement_titulaire INTEGER NOT NULL DEFAULT 0,
        convention TEXT,
        type TEXT,
        ouverture TEXT,
        motif TEXT,
        calcule_au TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (demarche_number, uai)
    )"""

RENEWAL_TABLES: tuple[Table, ...] = (
    Table(
        "renouvellements",
        "per new campaign and school: renewed, pending, not renewed at the cut-off, closed (last year's "
        "schools) or new; previous and new dossier and SIRET, change of holder, convention status, "
        "opening date, reason of a closure",
        "demarche_number, uai",
        RENEWAL_DDL,
    ),
)
RENEWAL_INDEX = "CREATE INDEX idx_renouvellements_statut ON renouvellements(demarche_number, statut)"

# --- 0009_followup_plans: what lets the after-sync follow-up pass over a démarche where nothing changed --

MIRROR_GENERATIONS_DDL = """
    CREATE TABLE mirror_generations (
        demarche_number INTEGER PRIMARY KEY,
        generation INTEGER NOT NULL DEFAULT 0
    )"""

# DS's clock (``planned_at``, ``until``) in UTC, ISO 8601; ``until`` NULL: unknown, the démarche is always
# planned; "9999-12-31T23:59:59+00:00": nothing changes with time alone.
FOLLOWUP_PLANS_DDL = """
    CREATE TABLE followup_plans (
        demarche_number INTEGER PRIMARY KEY,
        generation INTEGER NOT NULL,
        planned_at TEXT NOT NULL,
        until TEXT,
        config_digest TEXT NOT NULL,
        code_version TEXT NOT NULL,
        recorded_at TEXT NOT NULL
    )"""

SKIP_TABLES: tuple[Table, ...] = (
    Table(
        "mirror_generations",
        "per démarche, a counter bumped (by triggers, in the writing transaction) by every write to its "
        "dossiers, trash, quarantine, tombstones, descriptor and actions journal",
        "demarche_number",
        MIRROR_GENERATIONS_DDL,
    ),
    Table(
        "followup_plans",
        "per démarche with the convention deadline, its last completed follow-up planning: the mirror "
        "generation it read, DS's clock then, until when nothing can change with time alone, the "
        "config's digest and the code version (the after-sync follow-up skips a démarche where all hold)",
        "demarche_number",
        FOLLOWUP_PLANS_DDL,
    ),
)

# (table, the column naming the démarche, the condition on an UPDATE or None): every write to them bumps
# that démarche's generation (a row written again as it was too: when in doubt, the follow-up plans).
GENERATION_SOURCES: tuple[tuple[str, str, str | None], ...] = (
    ("dossiers", "demarche_number", None),  # new, updated (raw: champs, annotations, messages, files), flags, purged
    ("pending_deletions", "demarche_number", None),
    ("quarantine", "demarche_number", None),
    ("tombstones", "demarche_number", None),
    # the descriptor: its champ descriptors, groupes, instructeurs and labels are written from the same JSON
    # (``raw``) in the same transaction; saved again unchanged (daily, ``--full``) it changes nothing
    ("demarches", "number", "OLD.raw IS NOT NEW.raw OR OLD.number IS NOT NEW.number"),
    ("actions", "demarche_number", None),  # the journal: intents, transitions, the operator's retry and cancel
)


def _generation_trigger(table: str, column: str, event: str, when: str | None) -> str:
    row = "OLD" if event == "DELETE" else "NEW"
    condition = f"WHEN {when} " if when and event == "UPDATE" else ""
    return (f"CREATE TRIGGER generation_{table}_{event.lower()} AFTER {event} ON {table} {condition}BEGIN "
            f"INSERT INTO mirror_generations (demarche_number, generation) VALUES ({row}.{column}, 1) "
            "ON CONFLICT (demarche_number) DO UPDATE SET generation = generation + 1; END")


# name -> CREATE TRIGGER. Created by migration 0009 and re-created on every open when missing or different
# (a migration that rebuilds one of these tables drops its triggers).
GENERATION_TRIGGERS: dict[str, str] = {
    f"generation_{table}_{event.lower()}": _generation_trigger(table, column, event, when)
    for table, column, when in GENERATION_SOURCES for event in ("INSERT", "UPDATE", "DELETE")
}

# Every table after migration 1, in the order of the README's table of tables.
LATER_TABLES: tuple[Table, ...] = (RUN_REPORTS, *FORMS_TABLES, *FOLLOWUP_TABLES, *RENEWAL_TABLES, *SKIP_TABLES)


# --- indexes and views, re-applied on every open ---------------------------------------------------------

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

FORMS_INDEXES: dict[str, str] = {
    "idx_ecoles_demarche_uai": "ecoles(demarche_number, uai)",
    "idx_dossier_forms_demarche_siret": "dossier_forms(demarche_number, siret)",
    "idx_anomalies_dossier": "anomalies(dossier_number, code)",
    "idx_anomalies_open": "anomalies(demarche_number, code) WHERE resolved_at IS NULL",
    # status's open anomalies by severity, from the index alone
    "idx_anomalies_open_severity": "anomalies(demarche_number, severity) WHERE resolved_at IS NULL",
}

# Also created by migration 0003 (before the open that ensures the others).
FOLLOWUP_INDEXES: dict[str, str] = {
    "idx_conventions_demarche_status": "conventions(demarche_number, status)",
    "idx_actions_state": "actions(state)",
    "idx_actions_dossier": "actions(dossier_number, step)",
    # covers usager_messages(): the usager's messages of a dossier without reading their bodies
    "idx_messages_usager": "messages(dossier_number, created_at, id, email) WHERE sender = 'usager' AND discarded = 0",
}

# name -> SELECT. Re-created when the stored definition differs.
VIEWS: dict[str, str] = {
    "dossier_counts": """
        SELECT demarche_number, state, count(*) AS dossiers,
               sum(pending_deletion) AS pending_deletion, sum(quarantined) AS quarantined
        FROM dossiers GROUP BY demarche_number, state""",
}

FORMS_VIEWS: dict[str, str] = {
    "dossiers_overview": """
        SELECT d.demarche_number, d.number AS dossier_number, d.state,
               coalesce(f.siret, d.demandeur_siret) AS siret,
               coalesce(f.collectivite, d.demandeur_name) AS collectivite,
               f.ecoles_listees, f.nombre_ecoles, f.cout, f.profile,
               (SELECT count(*) FROM anomalies a WHERE a.dossier_number = d.number
                  AND a.resolved_at IS NULL) AS anomalies_ouvertes,
               (SELECT group_concat(DISTINCT a.code) FROM anomalies a WHERE a.dossier_number = d.number
                  AND a.resolved_at IS NULL) AS codes,
               d.date_depot, d.date_traitement
        FROM dossiers d LEFT JOIN dossier_forms f ON f.dossier_number = d.number""",
    "anomalies_ouvertes": """
        SELECT a.demarche_number, a.dossier_number, d.state, d.demandeur_name AS collectivite,
               a.code, a.severity, a.champ, a.message, a.first_seen_at, a.last_seen_at
        FROM anomalies a JOIN dossiers d ON d.number = a.dossier_number
        WHERE a.resolved_at IS NULL""",
}

# Also created by migration 0003 and re-created by 0007 (which rebuilds ``actions``).
FOLLOWUP_VIEWS: dict[str, str] = {
    "convention_followup": """
    SELECT c.demarche_number, c.dossier_number, d.state AS dossier_state, d.demandeur_name,
           c.reference, c.reference_at, c.deadline, c.status, c.rule, c.received_at,
           c.proof_message_id, c.proof_file_key, c.next_action, c.next_action_at,
           (SELECT count(*) FROM actions a WHERE a.dossier_number = c.dossier_number AND a.state = 'sent')
               AS actions_sent,
           (SELECT group_concat(a.kind || ':' || a.state, ', ') FROM actions a
             WHERE a.dossier_number = c.dossier_number AND a.state != 'sent') AS actions_open,
           c.updated_at
    FROM conventions c LEFT JOIN dossiers d ON d.number = c.dossier_number""",
}

ENSURED_INDEXES: dict[str, str] = {**INDEXES, **FORMS_INDEXES, **FOLLOWUP_INDEXES}
ENSURED_VIEWS: dict[str, str] = {**VIEWS, **FORMS_VIEWS, **FOLLOWUP_VIEWS}


def describe_tables() -> list[tuple[str, str]]:
    """(name, one-line purpose) for every table, in creation order: the README's table of tables."""
    return [(t.name, t.purpose) for t in TABLES + LATER_TABLES]
