//! The store's schema as numbered migrations. `PRAGMA user_version` holds
//! the number of migrations applied; each runs in its own transaction.

/// Migration `n` (1-based) is `MIGRATIONS[n - 1]`. Append only: a released
/// migration is never edited.
pub const MIGRATIONS: &[&str] = &[
    // 1: imports, jobs with their plans, inventory, per-item history.
    r#"
    CREATE TABLE imports (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        file          TEXT NOT NULL,            -- the name it was dropped as
        source_path   TEXT NOT NULL,            -- where it was read from
        sha256        TEXT NOT NULL,
        format        TEXT NOT NULL,
        -- planned (applying; finished by the next import or run), then
        -- applied | partial | rejected | duplicate | failed
        status        TEXT NOT NULL,
        duplicate_of  INTEGER REFERENCES imports(id),
        refresh_mode  TEXT NOT NULL,
        received_at   TEXT NOT NULL,
        finished_at   TEXT,
        rows_total    INTEGER NOT NULL,
        rows_accepted INTEGER NOT NULL,
        rows_rejected INTEGER NOT NULL,
        report_dir    TEXT NOT NULL,
        -- The report's errors, warnings and rejected rows, fixed when the
        -- file was planned (JSON).
        draft         BLOB NOT NULL
    );
    CREATE INDEX imports_status ON imports(status);

    CREATE TABLE jobs (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,   -- the jobID
        import_id       INTEGER NOT NULL REFERENCES imports(id),
        type            TEXT NOT NULL DEFAULT 'refresh',
        location        TEXT NOT NULL,
        manufacturer_id INTEGER,
        item_count      INTEGER NOT NULL,
        zeroed          INTEGER NOT NULL DEFAULT 0,
        -- pending | working | success | failed | rejected | reverted
        status          TEXT NOT NULL,
        file            TEXT NOT NULL,
        messages        TEXT NOT NULL DEFAULT '[]',          -- JSON array
        added           TEXT NOT NULL,
        started         TEXT,
        finished        TEXT,
        -- The items to apply and records to zero, as planned (postcard).
        plan            BLOB NOT NULL
    );
    CREATE INDEX jobs_import ON jobs(import_id);
    CREATE INDEX jobs_location ON jobs(location, id);

    CREATE TABLE inventory (
        id           INTEGER PRIMARY KEY,
        location     TEXT NOT NULL,
        sku          TEXT,
        part_number  TEXT,
        upc          TEXT,            -- as given (zeros restored)
        upc14        TEXT,            -- as GTIN-14, for matching
        quantity     INTEGER NOT NULL,
        bin_id       INTEGER,
        ltd          REAL,
        floor        INTEGER,
        safety_stock INTEGER,
        currency_id  INTEGER,
        retail_price REAL,
        attributes   TEXT NOT NULL DEFAULT '[]',   -- JSON array
        updated_at   TEXT NOT NULL,
        job_id       INTEGER                       -- the last job that changed it
    );
    CREATE UNIQUE INDEX inventory_sku  ON inventory(location, sku)         WHERE sku IS NOT NULL;
    CREATE UNIQUE INDEX inventory_part ON inventory(location, part_number) WHERE part_number IS NOT NULL;
    CREATE UNIQUE INDEX inventory_upc  ON inventory(location, upc14)       WHERE upc14 IS NOT NULL;

    CREATE TABLE history (
        id        INTEGER PRIMARY KEY,
        job_id    INTEGER NOT NULL REFERENCES jobs(id),
        record_id INTEGER NOT NULL REFERENCES inventory(id),
        action    TEXT NOT NULL,        -- create | update | zero | revert
        before    TEXT NOT NULL,        -- JSON object: the changed fields before
        after     TEXT NOT NULL,        -- JSON object: the same fields after
        at        TEXT NOT NULL
    );
    CREATE INDEX history_job ON history(job_id);
    CREATE INDEX history_record ON history(record_id, job_id);
    "#,
    // 2: where the original of a daemon-processed file was archived.
    r#"
    ALTER TABLE imports ADD COLUMN archived_path TEXT;
    CREATE INDEX imports_source ON imports(source_path);
    "#,
    // 3: history pruned by retention.history_days (such jobs cannot be
    // reverted); the job a revert job undid.
    r#"
    ALTER TABLE jobs ADD COLUMN history_pruned INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN reverts INTEGER REFERENCES jobs(id);
    CREATE INDEX jobs_finished ON jobs(finished);
    "#,
    // 4: the name a file was dropped as, byte for byte (`file` holds its
    // displayable form, docs/file-names.md); NULL for imports recorded
    // before.
    r#"
    ALTER TABLE imports ADD COLUMN file_raw BLOB;
    "#,
    // 5: what an import's jobs do (refresh | adjust, SPEC §1.1), fixed when
    // it was planned; adjust files are matched by SHA-256 against every
    // earlier adjust import.
    r#"
    ALTER TABLE imports ADD COLUMN job_type TEXT NOT NULL DEFAULT 'refresh';
    CREATE INDEX imports_sha256 ON imports(sha256, job_type);
    "#,
    // 6: the inbox (SPEC §2.1) an import's file came from; imports recorded
    // before came from the one inbox there was, `default`.
    r#"
    ALTER TABLE imports ADD COLUMN inbox TEXT NOT NULL DEFAULT 'default';
    CREATE INDEX imports_inbox ON imports(inbox, id);
    "#,
    // 7: an outbox's index.html lists the latest imports whose reports went
    // to it (SPEC §5), rewritten after every import: found by report_dir,
    // newest first, without a scan of every import.
    r#"
    CREATE INDEX imports_report_dir ON imports(report_dir, id);
    "#,
    // 8: history as one row per job and chunk of entries (store/history.rs);
    // rows written before stay in `history` and are still read.
    r#"
    CREATE TABLE job_history (
        job_id  INTEGER NOT NULL REFERENCES jobs(id),
        chunk   INTEGER NOT NULL,
        entries BLOB NOT NULL,
        PRIMARY KEY (job_id, chunk)
    ) WITHOUT ROWID;
    "#,
    // 9: a location's name stored once, in `locations`; the inventory and
    // its three identifier indexes key on its integer id. An index entry
    // carried the name (about 20 bytes of the benchmark's 43), so each of a
    // record's three entries was as long again as it needed to be; the
    // records keep their ids, and the indexes their names and meaning.
    r#"
    CREATE TABLE locations (
        id   INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE
    );
    INSERT INTO locations (name) SELECT DISTINCT location FROM inventory ORDER BY location;
    ALTER TABLE inventory ADD COLUMN location_id INTEGER NOT NULL DEFAULT 0;
    UPDATE inventory SET location_id = (SELECT id FROM locations WHERE name = inventory.location);
    DROP INDEX inventory_sku;
    DROP INDEX inventory_part;
    DROP INDEX inventory_upc;
    ALTER TABLE inventory DROP COLUMN location;
    CREATE UNIQUE INDEX inventory_sku  ON inventory(location_id, sku)         WHERE sku IS NOT NULL;
    CREATE UNIQUE INDEX inventory_part ON inventory(location_id, part_number) WHERE part_number IS NOT NULL;
    CREATE UNIQUE INDEX inventory_upc  ON inventory(location_id, upc14)       WHERE upc14 IS NOT NULL;
    "#,
    // 10: the outbox index's listing answered from an index alone. The
    // columns added since migration 1 (job_type, inbox) sit after `draft`,
    // a report's errors and warnings of up to a few MB, and SQLite reaches
    // them only by walking its overflow pages: rewriting an outbox's
    // index.html after every import read the drafts of its latest 200
    // imports, hundreds of MB where files are large. Building the index
    // reads every draft once, at the first start after the upgrade.
    r#"
    DROP INDEX IF EXISTS imports_report_dir;
    CREATE INDEX imports_outbox_listing ON imports(report_dir, id, file, status, job_type,
        rows_total, rows_accepted, rows_rejected, received_at);
    "#,
];

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;
    use crate::store::{records, Store};

    /// The outbox index's listing never reads an import's row, whose
    /// later columns lie past its draft's overflow pages.
    #[test]
    fn the_outbox_listing_reads_an_index_alone() {
        let store = Store::in_memory().expect("store");
        let read = store.read();
        let plan: String = crate::store::Reader::conn(&read)
            .query_row(
                &format!(
                    "EXPLAIN QUERY PLAN {}",
                    crate::store::queries::OUTBOX_LISTING
                ),
                rusqlite::params!["out", 200],
                |row| row.get(3),
            )
            .expect("plan");
        assert!(
            plan.contains("USING COVERING INDEX imports_outbox_listing"),
            "{plan}"
        );
    }

    /// A store of migration 8 (locations named in each record) keeps every
    /// record, its id, its location and its history through migration 9,
    /// and its identifiers stay unique per location.
    #[test]
    fn records_keep_their_ids_and_locations_through_the_location_table() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("old.db");
        {
            let conn = rusqlite::Connection::open(&path).expect("open");
            for sql in &MIGRATIONS[..8] {
                conn.execute_batch(sql).expect("migration");
            }
            conn.execute_batch(
                "PRAGMA user_version = 8;
                 INSERT INTO imports (id, file, source_path, sha256, format, status, refresh_mode,
                     received_at, rows_total, rows_accepted, rows_rejected, report_dir, draft)
                 VALUES (1, 'a.csv', 'a.csv', 'x', 'csv', 'applied', 'delta', 't', 3, 3, 0, 'out', x'');
                 INSERT INTO jobs (id, import_id, location, item_count, status, file, added, plan)
                 VALUES (1, 1, 'Store B', 3, 'success', 'a.csv', 't', x'');
                 INSERT INTO inventory (id, location, sku, part_number, upc, upc14, quantity, updated_at)
                 VALUES (7, 'Store B', 'S1', 'P1', '012345678905', '00012345678905', 4, 't'),
                        (9, 'Store A', 'S1', NULL, NULL, NULL, 2, 't'),
                        (12, 'Store B', 'S2', NULL, NULL, NULL, 0, 't');
                 INSERT INTO history (job_id, record_id, action, before, after, at)
                 VALUES (1, 7, 'create', '{}', '{\"quantity\":4}', 't');",
            )
            .expect("an old store's rows");
        }
        let mut store = Store::open(&path).expect("migrated");
        let read = store.read();
        let record = records::get(&read, 7).expect("read").expect("record 7");
        assert_eq!(record.location, "Store B");
        assert_eq!(record.ids.upc.as_deref(), Some("012345678905"));
        assert_eq!(record.quantity, 4);
        assert_eq!(
            records::get(&read, 9).expect("read").map(|r| r.location),
            Some("Store A".to_string())
        );
        for (location, sku, id) in [
            ("Store B", "S1", 7),
            ("Store A", "S1", 9),
            ("Store B", "S2", 12),
        ] {
            let found = records::find(&read, location, records::IdKind::Sku, sku).expect("find");
            assert_eq!(found, Some(id), "{location} {sku}");
        }
        let found =
            records::find(&read, "Store B", records::IdKind::Upc, "12345678905").expect("find");
        assert_eq!(found, Some(7));
        let ids = crate::model::Identifiers {
            sku: Some("S1".into()),
            part_number: Some("P1".into()),
            upc: Some("012345678905".into()),
        };
        let looked_up = records::lookup_each(&read, "Store B", [Some(&ids)]).expect("lookup");
        assert_eq!(looked_up, [[Some(7), Some(7), Some(7)]]);
        let elsewhere = records::lookup_each(&read, "Store A", [Some(&ids)]).expect("lookup");
        assert_eq!(elsewhere, [[Some(9), None, None]]);
        let nowhere = records::lookup_each(&read, "Store C", [Some(&ids)]).expect("lookup");
        assert_eq!(nowhere, [[None; 3]]);
        assert!(records::any_at(&read, "Store A").expect("any"));
        assert!(!records::any_at(&read, "Store C").expect("any"));
        assert_eq!(
            records::nonzero_at(&read, "Store B").expect("nonzero"),
            vec![7]
        );
        let w = store.write().expect("write");
        let b = records::location_id(&w, "Store B").expect("location");
        assert_eq!(records::location_id(&w, "Store B").expect("location"), b);
        let duplicate = w.tx.execute(
            "INSERT INTO inventory (location_id, sku, quantity, updated_at) VALUES (?1, 'S1', 1, 't')",
            [b],
        );
        assert!(duplicate.is_err(), "a location's SKU stays unique");
        let c = records::location_id(&w, "Store C").expect("new location");
        assert_ne!(c, b);
        w.tx.execute(
            "INSERT INTO inventory (location_id, sku, quantity, updated_at) VALUES (?1, 'S1', 1, 't')",
            [c],
        )
        .expect("the same SKU at another location");
    }
}
