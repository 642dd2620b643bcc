//! The runner against a real PostgreSQL, one fresh database per test.
//!
//! Run via `cargo xtask test`, which exports `DIRECT_DATABASE_URL` (a superuser straight to
//! PostgreSQL, so each test can create its own database).

mod split;
mod util;

use std::process::{Command, Stdio};

use amtp_migrate::{Error, State, checksum::checksum};
use util::{Folder, TestDb, amtp_migrate, expect_status};

#[test]
fn real_schema_applies_from_empty_and_a_rerun_is_a_noop() {
    let db = TestDb::create();
    let settings = db.settings(&util::real_migrations());

    let report = amtp_migrate::migrate(&settings).expect("first migrate");
    let versions: Vec<&str> = report.applied.iter().map(|a| a.version.as_str()).collect();
    assert_eq!(versions, ["1", "2", "3", "4", "5", "6"]);
    assert_eq!(report.schema_version.as_deref(), Some("6"));
    assert!(!report.baselined);
    assert_eq!(
        db.tables(),
        [
            "approvals",
            "artifacts",
            "flyway_schema_history",
            "projects",
            "runs",
            "stages"
        ]
    );

    let again = amtp_migrate::migrate(&settings).expect("second migrate");
    assert!(again.applied.is_empty(), "{again:?}");
    assert_eq!(again.schema_version.as_deref(), Some("6"));
    amtp_migrate::validate(&settings).expect("validate after migrate");
    let states: Vec<State> = amtp_migrate::info(&settings)
        .expect("info")
        .iter()
        .map(|r| r.state)
        .collect();
    assert_eq!(states, [State::Success; 6]);

    let mut client = db.client();
    let invalid: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
             WHERE c.relnamespace = 'public'::regnamespace AND NOT i.indisvalid",
            &[],
        )
        .expect("count invalid indexes")
        .get(0);
    assert_eq!(invalid, 0, "every index V6 built concurrently is valid");
    let v6_indexes: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public' AND indexname LIKE '%\\_idx'
               AND indexname <> 'flyway_schema_history_s_idx'",
            &[],
        )
        .expect("count V6 indexes")
        .get(0);
    assert_eq!(v6_indexes, 8);

    // The schema holds together: a run's artifact expires a week after it is created.
    client
        .batch_execute(
            "INSERT INTO projects (github_owner, github_repo, installation_id) VALUES ('octo', 'repo', 42);
             INSERT INTO runs (project_id, started_by, git_ref, commit_sha)
                 VALUES (1, 'octocat', 'refs/heads/main', repeat('a', 40));
             INSERT INTO artifacts (run_id, kind, storage_uri, size_bytes, checksum_sha256)
                 VALUES (1, 'test_bundle', 's3://test-bundles/1.tar.gz', 10, repeat('0', 64));",
        )
        .expect("insert a project, run and artifact");
    let days: f64 = client
        .query_one(
            "SELECT (extract(epoch FROM expires_at - created_at) / 86400)::float8 FROM artifacts",
            &[],
        )
        .expect("read expiry")
        .get(0);
    assert_eq!(days, 7.0);
    let bad_state = client.batch_execute("UPDATE runs SET state = 'exploded'");
    assert!(bad_state.is_err(), "runs.state has a CHECK constraint");
    let duplicate = client.batch_execute(
        "INSERT INTO projects (github_owner, github_repo, installation_id) VALUES ('Octo', 'REPO', 43)",
    );
    assert!(
        duplicate.is_err(),
        "owner/repo is unique, case-insensitively"
    );
}

#[test]
fn unqualified_names_land_in_schema_public_even_with_a_user_schema() {
    let db = TestDb::create();
    db.client()
        .batch_execute("DO $$ BEGIN EXECUTE format('CREATE SCHEMA %I', current_user); END $$")
        .expect("create a schema named after the role, first on the default search path");
    let folder = Folder::new();
    folder.write("V1__one.sql", "CREATE TABLE one (id int);\n");
    amtp_migrate::migrate(&db.settings(folder.path())).expect("migrate");
    assert_eq!(db.tables(), ["flyway_schema_history", "one"]);
}

#[test]
fn history_table_has_flyways_exact_ddl() {
    let db = TestDb::create();
    let folder = Folder::new();
    folder.write("V1__one.sql", "CREATE TABLE one (id int);\n");
    amtp_migrate::migrate(&db.settings(folder.path())).expect("migrate");

    let mut client = db.client();
    // (name, data type, character maximum length, nullable, default)
    type Column = (String, String, Option<i32>, String, Option<String>);
    let columns: Vec<Column> = client
        .query(
            "SELECT column_name::text, data_type::text, character_maximum_length::int,
                    is_nullable::text, column_default::text
             FROM information_schema.columns
             WHERE table_schema = 'public' AND table_name = 'flyway_schema_history'
             ORDER BY ordinal_position",
            &[],
        )
        .expect("read columns")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    let expected = [
        ("installed_rank", "integer", None, "NO", None),
        ("version", "character varying", Some(50), "YES", None),
        ("description", "character varying", Some(200), "NO", None),
        ("type", "character varying", Some(20), "NO", None),
        ("script", "character varying", Some(1000), "NO", None),
        ("checksum", "integer", None, "YES", None),
        ("installed_by", "character varying", Some(100), "NO", None),
        (
            "installed_on",
            "timestamp without time zone",
            None,
            "NO",
            Some("now()"),
        ),
        ("execution_time", "integer", None, "NO", None),
        ("success", "boolean", None, "NO", None),
    ];
    let expected: Vec<_> = expected
        .iter()
        .map(|(n, t, l, null, d)| {
            (
                n.to_string(),
                t.to_string(),
                *l,
                null.to_string(),
                d.map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(columns, expected);

    let indexes: Vec<(String, String)> = client
        .query(
            "SELECT indexname::text, indexdef FROM pg_indexes
             WHERE schemaname = 'public' AND tablename = 'flyway_schema_history' ORDER BY 1",
            &[],
        )
        .expect("read indexes")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        indexes,
        [
            (
                "flyway_schema_history_pk".to_owned(),
                "CREATE UNIQUE INDEX flyway_schema_history_pk ON public.flyway_schema_history USING btree (installed_rank)".to_owned()
            ),
            (
                "flyway_schema_history_s_idx".to_owned(),
                "CREATE INDEX flyway_schema_history_s_idx ON public.flyway_schema_history USING btree (success)".to_owned()
            ),
        ]
    );
    let primary_key: String = client
        .query_one(
            "SELECT conname::text FROM pg_constraint
             WHERE conrelid = 'public.flyway_schema_history'::regclass AND contype = 'p'",
            &[],
        )
        .expect("read primary key")
        .get(0);
    assert_eq!(primary_key, "flyway_schema_history_pk");
}

#[test]
fn rows_are_written_as_flyway_writes_them() {
    let db = TestDb::create();
    let folder = Folder::new();
    let v1 = "CREATE TABLE one (id int);\n";
    let v1_1 = "-- a comment\r\nCREATE TABLE two (id int); \n";
    folder
        .write("V1__create_one.sql", v1)
        .write("sub/V1_1__create_two_tables.sql", v1_1)
        .write("notes.txt", "not a migration");
    let report = amtp_migrate::migrate(&db.settings(folder.path())).expect("migrate");
    assert_eq!(report.applied.len(), 2);

    let rows = db
        .client()
        .query(
            r#"SELECT "installed_rank", "version", "description", "type", "script", "checksum",
                      "installed_by" = current_user, "installed_on" <= now()::timestamp,
                      "execution_time" >= 0, "success"
               FROM "public"."flyway_schema_history" ORDER BY "installed_rank""#,
            &[],
        )
        .expect("read history");
    type Row = (
        i32,
        String,
        String,
        String,
        String,
        i32,
        bool,
        bool,
        bool,
        bool,
    );
    let rows: Vec<Row> = rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                r.get(1),
                r.get(2),
                r.get(3),
                r.get(4),
                r.get(5),
                r.get(6),
                r.get(7),
                r.get(8),
                r.get(9),
            )
        })
        .collect();
    let row = |rank: i32, version: &str, description: &str, script: &str, text: &str| -> Row {
        (
            rank,
            version.into(),
            description.into(),
            "SQL".into(),
            script.into(),
            checksum(text),
            true,
            true,
            true,
            true,
        )
    };
    assert_eq!(
        rows,
        [
            row(1, "1", "create one", "V1__create_one.sql", v1),
            row(
                2,
                "1.1",
                "create two tables",
                "sub/V1_1__create_two_tables.sql",
                v1_1
            ),
        ]
    );
}

#[test]
fn checksum_mismatch_is_refused_and_nothing_is_applied_until_repair() {
    let db = TestDb::create();
    let folder = Folder::new();
    folder.write("V1__one.sql", "CREATE TABLE one (id int);\n");
    let settings = db.settings(folder.path());
    amtp_migrate::migrate(&settings).expect("first migrate");
    let applied = checksum("CREATE TABLE one (id int);\n");

    let edited = "CREATE TABLE one (id bigint);\n";
    folder
        .write("V1__one.sql", edited)
        .write("V2__two.sql", "CREATE TABLE two (id int);\n");
    let error = amtp_migrate::migrate(&settings).expect_err("edited V1 is refused");
    let message = error.to_string();
    assert!(matches!(error, Error::Validation { .. }), "{message}");
    let shape = format!(
        "Migration checksum mismatch for migration version 1\n-> Applied to database : {applied}\n-> Resolved locally    : {}",
        checksum(edited)
    );
    assert!(message.contains(&shape), "{message}");
    assert!(message.contains("run repair"), "{message}");
    assert_eq!(
        db.tables(),
        ["flyway_schema_history", "one"],
        "V2 was not applied"
    );
    assert_eq!(db.history().len(), 1);

    let repaired = amtp_migrate::repair(&settings).expect("repair");
    assert_eq!(repaired.realigned, ["1"]);
    let report = amtp_migrate::migrate(&settings).expect("migrate after repair");
    assert_eq!(report.applied.len(), 1);
    assert_eq!(report.schema_version.as_deref(), Some("2"));
}

#[test]
fn description_mismatch_is_refused() {
    let db = TestDb::create();
    let folder = Folder::new();
    folder.write("V1__one.sql", "SELECT 1;\n");
    let settings = db.settings(folder.path());
    amtp_migrate::migrate(&settings).expect("first migrate");
    std::fs::rename(
        folder.path().join("V1__one.sql"),
        folder.path().join("V1__uno.sql"),
    )
    .expect("rename");
    let message = amtp_migrate::migrate(&settings)
        .expect_err("renamed description")
        .to_string();
    assert!(
        message.contains("Migration description mismatch for migration version 1\n-> Applied to database : one\n-> Resolved locally    : uno"),
        "{message}"
    );
}

#[test]
fn non_empty_schema_without_history_is_baselined() {
    let db = TestDb::create();
    db.client()
        .batch_execute("CREATE TABLE legacy (id int)")
        .expect("create a table before any migration");
    let folder = Folder::new();
    folder
        .write("V1__one.sql", "CREATE TABLE one (id int);\n")
        .write("V2__two.sql", "CREATE TABLE two (id int);\n");
    let settings = db.settings(folder.path());
    let report = amtp_migrate::migrate(&settings).expect("migrate");
    assert!(report.baselined);
    assert_eq!(report.applied.len(), 1);
    assert_eq!(report.applied[0].version, "2");
    assert_eq!(db.tables(), ["flyway_schema_history", "legacy", "two"]);

    let baseline = db
        .client()
        .query_one(
            r#"SELECT "installed_rank", "version", "description", "type", "script", "checksum",
                      "installed_by" = current_user, "execution_time", "success"
               FROM "public"."flyway_schema_history" WHERE "installed_rank" = 1"#,
            &[],
        )
        .expect("baseline row");
    let baseline: (
        i32,
        String,
        String,
        String,
        String,
        Option<i32>,
        bool,
        i32,
        bool,
    ) = (
        baseline.get(0),
        baseline.get(1),
        baseline.get(2),
        baseline.get(3),
        baseline.get(4),
        baseline.get(5),
        baseline.get(6),
        baseline.get(7),
        baseline.get(8),
    );
    assert_eq!(
        baseline,
        (
            1,
            "1".into(),
            "<< Flyway Baseline >>".into(),
            "BASELINE".into(),
            "<< Flyway Baseline >>".into(),
            None,
            true,
            0,
            true
        )
    );
    let states: Vec<(String, State)> = amtp_migrate::info(&settings)
        .expect("info")
        .into_iter()
        .map(|r| (r.version, r.state))
        .collect();
    // As in `flyway info`, the baseline row stands for V1: the schema already holds it.
    assert_eq!(
        states,
        [("1".into(), State::Baseline), ("2".into(), State::Success)]
    );
    amtp_migrate::validate(&settings).expect("a baselined schema validates");
}

#[test]
fn a_file_below_the_highest_applied_version_is_refused() {
    let db = TestDb::create();
    let folder = Folder::new();
    folder
        .write("V1__one.sql", "CREATE TABLE one (id int);\n")
        .write("V3__three.sql", "CREATE TABLE three (id int);\n");
    let settings = db.settings(folder.path());
    amtp_migrate::migrate(&settings).expect("first migrate");
    folder.write("V2__two.sql", "CREATE TABLE two (id int);\n");
    let message = amtp_migrate::migrate(&settings)
        .expect_err("out of order")
        .to_string();
    assert!(
        message.contains("Detected resolved migration not applied to database: 2."),
        "{message}"
    );
    assert!(message.contains("outOfOrder is false"), "{message}");
    assert!(!db.tables().contains(&"two".to_owned()));
    let info = amtp_migrate::info(&settings).expect("info");
    assert!(
        info.iter()
            .any(|r| r.version == "2" && r.state == State::Ignored)
    );
}

#[test]
fn failed_transactional_migration_leaves_nothing_and_no_row() {
    let db = TestDb::create();
    let folder = Folder::new();
    folder.write("V1__one.sql", "CREATE TABLE one (id int);\n").write(
        "V2__broken.sql",
        "CREATE TABLE two (id int);\nINSERT INTO two VALUES (1);\n\n-- the typo\nSELECT id\n  FROM nowhere;\n",
    );
    let settings = db.settings(folder.path());
    let error = amtp_migrate::migrate(&settings).expect_err("V2 fails");
    let message = error.to_string();
    assert!(
        message.starts_with("migration V2__broken.sql failed at line 6: relation \"nowhere\" does not exist (SQLSTATE 42P01)"),
        "{message}"
    );
    assert!(
        message.contains("statement (line 5): SELECT id\n  FROM nowhere"),
        "{message}"
    );
    assert!(message.contains("nothing of it was applied"), "{message}");
    assert_eq!(db.tables(), ["flyway_schema_history", "one"]);
    assert_eq!(db.history(), [(Some("1".into()), "SQL".into(), true)]);
}

#[test]
fn failed_non_transactional_migration_records_failure_until_repair() {
    let db = TestDb::create();
    let folder = Folder::new();
    folder
        .write("V1__table.sql", "CREATE TABLE t (a int, b int);\n")
        .write(
            "V2__indexes.sql",
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_a_idx ON t (a);\nCREATE INDEX CONCURRENTLY IF NOT EXISTS t_c_idx ON t (c);\n",
        )
        .write("V2__indexes.sql.conf", "executeInTransaction=false\n");
    let settings = db.settings(folder.path());
    let message = amtp_migrate::migrate(&settings)
        .expect_err("V2 fails on its second statement")
        .to_string();
    assert!(
        message.contains("V2__indexes.sql failed at line 2"),
        "{message}"
    );
    assert!(message.contains("migrate repair"), "{message}");
    assert_eq!(
        db.history(),
        [
            (Some("1".into()), "SQL".into(), true),
            (Some("2".into()), "SQL".into(), false)
        ]
    );
    let index_count = |db: &TestDb| -> i64 {
        db.client()
            .query_one("SELECT count(*) FROM pg_indexes WHERE tablename = 't'", &[])
            .expect("count indexes")
            .get(0)
    };
    assert_eq!(index_count(&db), 1, "the first statement stays applied");

    for attempt in [
        amtp_migrate::migrate(&settings).map(|_| ()),
        amtp_migrate::validate(&settings),
    ] {
        let message = attempt.expect_err("refused until repair").to_string();
        assert!(
            message.contains("Detected failed migration to version 2 (indexes)."),
            "{message}"
        );
    }
    let info = amtp_migrate::info(&settings).expect("info");
    assert!(
        info.iter()
            .any(|r| r.version == "2" && r.state == State::Failed)
    );

    folder.write(
        "V2__indexes.sql",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_a_idx ON t (a);\nCREATE INDEX CONCURRENTLY IF NOT EXISTS t_b_idx ON t (b);\n",
    );
    let repaired = amtp_migrate::repair(&settings).expect("repair");
    assert_eq!(repaired.removed_failed, ["2"]);
    let report = amtp_migrate::migrate(&settings).expect("migrate after repair");
    assert_eq!(report.applied.len(), 1);
    assert_eq!(index_count(&db), 2);
    assert_eq!(
        db.history(),
        [
            (Some("1".into()), "SQL".into(), true),
            (Some("2".into()), "SQL".into(), true)
        ]
    );
}

#[test]
fn mixing_transactional_and_non_transactional_statements_is_refused() {
    let db = TestDb::create();
    let folder = Folder::new();
    folder.write(
        "V1__mixed.sql",
        "CREATE TABLE t (a int);\nCREATE INDEX CONCURRENTLY t_a_idx ON t (a);\n",
    );
    let settings = db.settings(folder.path());
    let message = amtp_migrate::migrate(&settings)
        .expect_err("mixed script")
        .to_string();
    assert!(
        message.contains(
            "Detected both transactional and non-transactional statements within the same migration"
        ),
        "{message}"
    );
    assert!(
        message.contains("line 2: CREATE INDEX CONCURRENTLY t_a_idx ON t (a)"),
        "{message}"
    );
    assert!(message.contains("V1__mixed.sql"), "{message}");
    assert!(
        db.tables().is_empty(),
        "nothing was applied: {:?}",
        db.tables()
    );

    // Flyway refuses the mix with executeInTransaction=false too; only a script of
    // non-transactional statements alone may run, and it needs no setting.
    folder.write("V1__mixed.sql.conf", "executeInTransaction=false\n");
    assert!(amtp_migrate::migrate(&settings).is_err());
    std::fs::remove_file(folder.path().join("V1__mixed.sql.conf")).expect("remove conf");
    folder
        .write("V1__mixed.sql", "CREATE TABLE t (a int);\n")
        .write(
            "V2__index.sql",
            "CREATE INDEX CONCURRENTLY t_a_idx ON t (a);\n",
        );
    let report = amtp_migrate::migrate(&settings).expect("separate scripts");
    assert_eq!(report.applied.len(), 2);
}

#[test]
fn four_processes_at_once_apply_each_migration_exactly_once() {
    let db = TestDb::create();
    let folder = Folder::with_real_migrations();
    let location = folder.path().to_str().expect("utf-8 temp path");
    let children: Vec<_> = (0..4)
        .map(|_| {
            amtp_migrate(&["--url", &db.url, "--location", location])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn amtp-migrate")
        })
        .collect();
    let mut applied_lines = 0;
    for child in children {
        let output = child.wait_with_output().expect("wait for amtp-migrate");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{}\nstdout:\n{stdout}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains("up to date at version 6"), "{stdout}");
        applied_lines += stdout.lines().filter(|l| l.starts_with("applied ")).count();
    }
    assert_eq!(
        applied_lines, 6,
        "each migration is applied by exactly one process"
    );
    let versions: Vec<Option<String>> = db.history().into_iter().map(|(v, _, _)| v).collect();
    let expected: Vec<Option<String>> = (1..=6).map(|v| Some(v.to_string())).collect();
    assert_eq!(versions, expected);
}

#[test]
fn a_run_waits_for_the_advisory_lock_held_by_another_session() {
    let db = TestDb::create();
    let mut holder = db.client();
    holder
        .execute("SELECT pg_advisory_lock(77433833903597)", &[])
        .expect("take Flyway's lock as another runner would");
    let folder = Folder::new();
    folder.write("V1__one.sql", "CREATE TABLE one (id int);\n");
    let settings = db.settings(folder.path());
    let held_for = std::time::Duration::from_millis(500);
    let started = std::time::Instant::now();
    let runner = std::thread::spawn(move || amtp_migrate::migrate(&settings));
    std::thread::sleep(held_for);
    assert!(
        db.tables().is_empty(),
        "nothing runs while the lock is held"
    );
    holder
        .execute("SELECT pg_advisory_unlock(77433833903597)", &[])
        .expect("release the lock");
    let report = runner
        .join()
        .expect("runner thread")
        .expect("migrate after the lock is released");
    assert!(started.elapsed() >= held_for);
    assert_eq!(report.applied.len(), 1);
}

#[test]
fn the_cli_names_file_line_and_statement_of_a_sql_error() {
    let db = TestDb::create();
    let folder = Folder::new();
    folder.write(
        "V1__broken.sql",
        "CREATE TABLE t (\n  a int,\n  b nosuchtype\n);\n",
    );
    let output = expect_status(
        &mut amtp_migrate(&[
            "--url",
            &db.url,
            "--location",
            folder.path().to_str().expect("utf-8 path"),
        ]),
        false,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("amtp-migrate: migration V1__broken.sql failed at line 3: type \"nosuchtype\" does not exist"),
        "{stderr}"
    );
    assert!(
        stderr.contains("statement (line 1): CREATE TABLE t ("),
        "{stderr}"
    );
}

#[test]
fn bad_files_are_refused_with_the_file_named() {
    let db = TestDb::create();
    let cases: [(&str, &[u8], &str); 5] = [
        (
            "V1__latin1.sql",
            b"SELECT 1;\nSELECT 'caf\xe9';\n",
            "is not valid UTF-8 (first bad byte on line 2)",
        ),
        (
            "V1-projects.sql",
            b"SELECT 1;",
            "is not a valid migration file name",
        ),
        (
            "V1.x__projects.sql",
            b"SELECT 1;",
            "is not numbers separated by",
        ),
        (
            "R__views.sql",
            b"SELECT 1;",
            "repeatable migrations (R__) are not supported",
        ),
        (
            "V1__schema.sql",
            b"SELECT 1;\nSELECT '${schema}';",
            "line 2 uses placeholder ${schema}",
        ),
    ];
    for (name, contents, expected) in cases {
        let folder = Folder::new();
        folder.write(name, contents);
        let message = amtp_migrate::migrate(&db.settings(folder.path()))
            .expect_err(name)
            .to_string();
        assert!(message.contains(name), "{message}");
        assert!(message.contains(expected), "{message}");
    }

    let folder = Folder::new();
    folder
        .write("V1__one.sql", "SELECT 1;")
        .write("V1.0__also_one.sql", "SELECT 1;");
    let message = amtp_migrate::migrate(&db.settings(folder.path()))
        .expect_err("duplicate")
        .to_string();
    assert!(
        message.contains("found more than one migration with version 1")
            && message.contains("V1.0__also_one.sql"),
        "{message}"
    );
    assert!(db.tables().is_empty(), "nothing touched the database");
}

#[test]
fn an_unreachable_database_is_named_without_its_password() {
    let port = amtp_testkit::free_port().to_string();
    let url = format!("postgres://amtp:hunter2secret@127.0.0.1:{port}/amtp");
    let output = expect_status(
        &mut amtp_migrate(&[
            "--url",
            &url,
            "--location",
            util::real_migrations().to_str().expect("utf-8 path"),
        ]),
        false,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "cannot connect to postgres://amtp@127.0.0.1:{port}/amtp"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("Connection refused"), "{stderr}");
    assert!(stderr.contains("cargo xtask up"), "{stderr}");
    assert!(!stderr.contains("hunter2secret"), "{stderr}");
}

#[test]
fn without_a_url_the_cli_says_how_to_get_one() {
    let output = expect_status(&mut amtp_migrate(&["info"]), false);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "no database to migrate: start the stack with `cargo xtask up` or pass --url"
        ),
        "{stderr}"
    );
}

#[test]
fn info_json_and_validate_through_the_cli() {
    let db = TestDb::create();
    let folder = Folder::new();
    folder.write("V1__one.sql", "SELECT 1;\n");
    let location = folder.path().to_str().expect("utf-8 path");
    let args = |extra: &[&'static str]| {
        let mut args = vec!["--url", db.url.as_str(), "--location", location];
        args.extend_from_slice(extra);
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let run = |extra: &[&'static str], success| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_amtp-migrate"));
        command.args(args(extra)).env_remove("DIRECT_DATABASE_URL");
        expect_status(&mut command, success)
    };

    let pending = run(&["validate"], false);
    assert!(
        String::from_utf8_lossy(&pending.stderr)
            .contains("Detected resolved migration not applied to database: 1."),
        "pending migrations fail validate"
    );
    let migrated = run(&[], true);
    assert_eq!(
        String::from_utf8_lossy(&migrated.stdout).lines().last(),
        Some("schema is up to date at version 1")
    );
    let noop = run(&[], true);
    assert_eq!(
        String::from_utf8_lossy(&noop.stdout).trim(),
        "nothing to migrate: schema is up to date at version 1"
    );
    run(&["validate"], true);

    let json = run(&["info", "--json"], true);
    let rows: serde_json::Value =
        serde_json::from_slice(&json.stdout).expect("info --json is JSON");
    assert_eq!(rows[0]["version"], "1");
    assert_eq!(rows[0]["state"], "Success");
    assert_eq!(rows[0]["type"], "SQL");
    assert_eq!(rows[0]["file_checksum"], checksum("SELECT 1;\n"));
    assert_eq!(rows[0]["applied_checksum"], checksum("SELECT 1;\n"));

    let table = run(&["info"], true);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("| Version | Description | Type |"),
        "{table}"
    );
    assert!(
        table.contains("| 1       | one         | SQL  |"),
        "{table}"
    );
}

#[test]
fn a_removed_file_is_missing_until_repair_marks_it_deleted() {
    let db = TestDb::create();
    let folder = Folder::new();
    folder
        .write("V1__one.sql", "SELECT 1;\n")
        .write("V2__two.sql", "SELECT 2;\n");
    let settings = db.settings(folder.path());
    amtp_migrate::migrate(&settings).expect("migrate");
    std::fs::remove_file(folder.path().join("V1__one.sql")).expect("remove V1");
    let message = amtp_migrate::migrate(&settings)
        .expect_err("missing V1")
        .to_string();
    assert!(
        message.contains("Detected applied migration not resolved locally: 1."),
        "{message}"
    );
    let repaired = amtp_migrate::repair(&settings).expect("repair");
    assert_eq!(repaired.marked_deleted, ["1"]);
    amtp_migrate::migrate(&settings).expect("migrate after repair");
    assert_eq!(
        db.history(),
        [
            (Some("1".into()), "SQL".into(), true),
            (Some("2".into()), "SQL".into(), true),
            (Some("1".into()), "DELETE".into(), true)
        ]
    );
}
