BEGIN TRANSACTION;
CREATE TABLE "_sqlite_migrations" (
   "id" INTEGER PRIMARY KEY,
   "migration_set" TEXT,
   "name" TEXT,
   "applied_at" TEXT
);
INSERT INTO "_sqlite_migrations" VALUES(1,'ds_mirror','0001_initial','2026-12-04 19:57:32.269216+00:00');
INSERT INTO "_sqlite_migrations" VALUES(2,'ds_mirror','0002_forms','2026-12-04 19:57:32.272475+00:00');
INSERT INTO "_sqlite_migrations" VALUES(3,'ds_mirror','0003_followup','2026-12-04 19:57:32.276128+00:00');
INSERT INTO "_sqlite_migrations" VALUES(4,'ds_mirror','run_reports','2026-12-04 19:57:32.277718+00:00');
INSERT INTO "_sqlite_migrations" VALUES(5,'ds_mirror','0004_cross_fingerprint','2026-12-04 19:57:32.278344+00:00');
CREATE TABLE actions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        demarche_number INTEGER NOT NULL,
        dossier_number INTEGER NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('reminder', 'closure_message', 'closure_annotations', 'passer_en_instruction', 'repasser_en_instruction', 'classer_sans_suite')),
        step INTEGER NOT NULL DEFAULT 0,
        dedup_key TEXT NOT NULL UNIQUE,
        rule TEXT NOT NULL,
        deadline TEXT,
        operation TEXT NOT NULL,
        payload TEXT NOT NULL,
        instructeur_id TEXT,
        instructeur_email TEXT,
        state TEXT NOT NULL DEFAULT 'planned' CHECK (state IN ('planned', 'sending', 'sent', 'failed', 'unknown', 'cancelled')),
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
    );
INSERT INTO "actions" VALUES(1,1,10,'reminder',0,'reminder:10:1','r',NULL,'envoyerMessage','{}',NULL,NULL,'sent',0,NULL,NULL,NULL,NULL,'2026-01-03T00:00:00+00:00',NULL,NULL,NULL,'2026-01-03T00:00:00+00:00');
CREATE TABLE annotations (
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
        );
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
    );
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
        );
CREATE TABLE champs (
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
        );
INSERT INTO "champs" VALUES(10,'Q2hhbXAtMQ==',NULL,NULL,NULL,NULL,0,NULL,'TextChamp','Saint-Lys',NULL,NULL,NULL);
CREATE TABLE conventions (
        dossier_number INTEGER PRIMARY KEY REFERENCES dossiers(number) ON DELETE CASCADE,
        demarche_number INTEGER NOT NULL,
        reference TEXT NOT NULL,
        reference_at TEXT,
        deadline TEXT,
        status TEXT NOT NULL CHECK (status IN ('awaiting', 'received_on_time', 'received_late', 'overdue', 'to_review', 'to_confirm', 'not_applicable')),
        rule TEXT NOT NULL,
        received_at TEXT,
        proof_message_id TEXT,
        proof_file_key TEXT,
        proof_annotation_id TEXT,
        next_action TEXT,
        next_action_at TEXT,
        updated_at TEXT NOT NULL
    );
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
        );
INSERT INTO "demarches" VALUES(1,'RD1','Adhésion',NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,'{}','2026-01-01T00:00:00+00:00');
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
    );
CREATE TABLE dossier_labels (
            dossier_number INTEGER NOT NULL REFERENCES dossiers(number) ON DELETE CASCADE,
            label_id TEXT NOT NULL REFERENCES labels(id),
            PRIMARY KEY (dossier_number, label_id)
        );
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
        );
INSERT INTO "dossiers" VALUES(10,'RD10',1,'en_construction',0,NULL,NULL,NULL,NULL,NULL,'2026-01-02T10:00:00+01:00',NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,0,NULL,0,'{}','2026-01-02T09:00:00+00:00');
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
    );
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
        );
INSERT INTO "files" VALUES('k1',10,'champ','Q2hhbXAtMQ==','convention.pdf',NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL);
CREATE TABLE form_profiles (
        demarche_number INTEGER PRIMARY KEY,
        profile TEXT NOT NULL,
        detected INTEGER NOT NULL DEFAULT 0,
        problems TEXT,
        resolved_at TEXT NOT NULL
    , cross_fingerprint TEXT);
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
    );
CREATE TABLE groupe_instructeur_members (
            groupe_instructeur_number INTEGER NOT NULL
                REFERENCES groupes_instructeurs(number) ON DELETE CASCADE,
            instructeur_id TEXT NOT NULL REFERENCES instructeurs(id),
            PRIMARY KEY (groupe_instructeur_number, instructeur_id)
        );
CREATE TABLE groupes_instructeurs (
            number INTEGER PRIMARY KEY,
            id TEXT NOT NULL,
            demarche_number INTEGER NOT NULL REFERENCES demarches(number) ON DELETE CASCADE,
            label TEXT,
            closed INTEGER NOT NULL DEFAULT 0
        );
CREATE TABLE instructeurs (
            id TEXT PRIMARY KEY,
            email TEXT NOT NULL
        );
CREATE TABLE labels (
            id TEXT PRIMARY KEY,
            demarche_number INTEGER NOT NULL,
            name TEXT,
            color TEXT
        );
CREATE TABLE messages (
            id TEXT PRIMARY KEY,
            dossier_number INTEGER NOT NULL REFERENCES dossiers(number) ON DELETE CASCADE,
            email TEXT,
            sender TEXT NOT NULL CHECK (sender IN ('system', 'instructeur', 'usager')),
            body TEXT,
            created_at TEXT NOT NULL,
            discarded INTEGER NOT NULL DEFAULT 0,
            discarded_at TEXT
        );
CREATE TABLE pending_deletions (
            number INTEGER PRIMARY KEY,
            demarche_number INTEGER NOT NULL,
            state TEXT,
            reason TEXT,
            date_suppression TEXT,
            recorded_at TEXT NOT NULL
        );
CREATE TABLE quarantine (
            id INTEGER PRIMARY KEY,
            demarche_number INTEGER NOT NULL,
            dossier_number INTEGER,
            error TEXT NOT NULL,
            raw TEXT,
            attempts INTEGER NOT NULL DEFAULT 1,
            first_seen_at TEXT NOT NULL,
            last_seen_at TEXT NOT NULL
        );
CREATE TABLE run_reports (
            run_id INTEGER PRIMARY KEY REFERENCES sync_runs(id) ON DELETE CASCADE,
            retries INTEGER NOT NULL DEFAULT 0,
            rate_limited INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            errors TEXT NOT NULL
        );
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
        );
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
        );
CREATE TABLE tombstones (
            number INTEGER PRIMARY KEY,
            demarche_number INTEGER NOT NULL,
            deleted_dossier_id TEXT,
            state TEXT,
            reason TEXT NOT NULL,
            date_suppression TEXT,
            recorded_at TEXT NOT NULL
        );
CREATE UNIQUE INDEX "idx__sqlite_migrations_migration_set_name"
    ON "_sqlite_migrations" ("migration_set", "name");
CREATE UNIQUE INDEX idx_anomalies_one_open ON anomalies(dossier_number, code, key) WHERE resolved_at IS NULL;
CREATE INDEX idx_conventions_demarche_status ON conventions(demarche_number, status);
CREATE INDEX idx_actions_state ON actions(state);
CREATE INDEX idx_actions_dossier ON actions(dossier_number, step);
CREATE INDEX idx_messages_usager ON messages(dossier_number, created_at, id, email) WHERE sender = 'usager' AND discarded = 0;
CREATE VIEW convention_followup AS 
    SELECT c.demarche_number, c.dossier_number, d.state AS dossier_state, d.demandeur_name,
           c.reference, c.reference_at, c.deadline, c.status, c.rule, c.received_at,
           c.proof_message_id, c.proof_file_key, c.next_action, c.next_action_at,
           (SELECT count(*) FROM actions a WHERE a.dossier_number = c.dossier_number AND a.state = 'sent')
               AS actions_sent,
           (SELECT group_concat(a.kind || ':' || a.state, ', ') FROM actions a
             WHERE a.dossier_number = c.dossier_number AND a.state != 'sent') AS actions_open,
           c.updated_at
    FROM conventions c LEFT JOIN dossiers d ON d.number = c.dossier_number;
CREATE INDEX idx_dossiers_demarche_state ON dossiers(demarche_number, state);
CREATE INDEX idx_dossiers_demarche_modified ON dossiers(demarche_number, date_derniere_modification);
CREATE INDEX idx_champs_descriptor ON champs(descriptor_id);
CREATE INDEX idx_annotations_descriptor ON annotations(descriptor_id);
CREATE INDEX idx_messages_dossier_created ON messages(dossier_number, created_at);
CREATE INDEX idx_files_dossier ON files(dossier_number);
CREATE INDEX idx_files_not_downloaded ON files(dossier_number) WHERE downloaded_at IS NULL;
CREATE INDEX idx_dossier_labels_label ON dossier_labels(label_id);
CREATE INDEX idx_groupes_demarche ON groupes_instructeurs(demarche_number);
CREATE INDEX idx_tombstones_demarche ON tombstones(demarche_number);
CREATE INDEX idx_quarantine_dossier ON quarantine(dossier_number);
CREATE INDEX idx_ecoles_demarche_uai ON ecoles(demarche_number, uai);
CREATE INDEX idx_dossier_forms_demarche_siret ON dossier_forms(demarche_number, siret);
CREATE INDEX idx_anomalies_dossier ON anomalies(dossier_number, code);
CREATE INDEX idx_anomalies_open ON anomalies(demarche_number, code) WHERE resolved_at IS NULL;
CREATE VIEW dossier_counts AS 
        SELECT demarche_number, state, count(*) AS dossiers,
               sum(pending_deletion) AS pending_deletion, sum(quarantined) AS quarantined
        FROM dossiers GROUP BY demarche_number, state;
CREATE VIEW dossiers_overview AS 
        SELECT d.demarche_number, d.number AS dossier_number, d.state,
               coalesce(f.siret, d.demandeur_siret) AS siret,
               coalesce(f.collectivite, d.demandeur_name) AS collectivite,
               f.ecoles_listees, f.nombre_ecoles, f.cout, f.profile,
               (SELECT count(*) FROM anomalies a WHERE a.dossier_number = d.number
                  AND a.resolved_at IS NULL) AS anomalies_ouvertes,
               (SELECT group_concat(DISTINCT a.code) FROM anomalies a WHERE a.dossier_number = d.number
                  AND a.resolved_at IS NULL) AS codes,
               d.date_depot, d.date_traitement
        FROM dossiers d LEFT JOIN dossier_forms f ON f.dossier_number = d.number;
CREATE VIEW anomalies_ouvertes AS 
        SELECT a.demarche_number, a.dossier_number, d.state, d.demandeur_name AS collectivite,
               a.code, a.severity, a.champ, a.message, a.first_seen_at, a.last_seen_at
        FROM anomalies a JOIN dossiers d ON d.number = a.dossier_number
        WHERE a.resolved_at IS NULL;
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('actions',1);
COMMIT;
