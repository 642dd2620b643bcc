//! The commands, reading like the spec: connect → lock → ensure history (or baseline) →
//! validate → apply → unlock.

use std::time::{Duration, Instant};

use postgres::{Client, NoTls};

use crate::error::{Error, db_message};
use crate::history::{self, LOCK_KEY, NewRow};
use crate::source::{self, Migration};
use crate::split::{self, Statement};
use crate::state::{self, Entry, Pending, State};
use crate::{AppliedMigration, InfoRow, MigrateReport, RepairReport, Settings};

/// How often a waiting runner asks for the lock again (Flyway polls every 100 ms).
const LOCK_POLL: Duration = Duration::from_millis(50);
/// How long a runner waits for another one to finish before giving up.
const LOCK_WAIT: Duration = Duration::from_secs(300);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Applies every pending migration.
pub fn migrate(settings: &Settings) -> Result<MigrateReport, Error> {
    let files = source::load(&settings.location)?;
    // Parse every script before touching the database, so a bad one stops the run up front.
    let scripts = files
        .iter()
        .map(|file| plan(file).map(|statements| (file, statements)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut db = Db::connect(&settings.url)?;
    db.locked(|db| {
        let baselined = db.ensure_history()?;
        let rows = db.rows()?;
        let entries = state::resolve(&files, &rows);
        let problems = state::problems(&entries, Pending::Allowed);
        if !problems.is_empty() {
            return Err(Error::Validation { problems });
        }
        let pending: Vec<&Migration> = entries
            .iter()
            .filter(|e| e.state == State::Pending)
            .filter_map(|e| e.file)
            .collect();
        if !pending.is_empty() {
            db.put_public_first_on_search_path()?;
        }
        let mut applied = Vec::new();
        for file in pending {
            let (_, statements) = scripts
                .iter()
                .find(|(f, _)| f.version == file.version)
                .expect("every pending entry comes from a planned file");
            applied.push(db.apply(file, statements)?);
        }
        let schema_version = applied
            .last()
            .map(|a| a.version.clone())
            .or_else(|| current_version(&entries));
        Ok(MigrateReport {
            database: db.display_url.clone(),
            baselined,
            applied,
            schema_version,
        })
    })
}

/// Every migration with its state, without changing anything.
pub fn info(settings: &Settings) -> Result<Vec<InfoRow>, Error> {
    let files = source::load(&settings.location)?;
    let rows = Db::connect(&settings.url)?.rows_if_any()?;
    Ok(state::resolve(&files, &rows).iter().map(info_row).collect())
}

/// Checks the history against the files; pending migrations count as problems here.
pub fn validate(settings: &Settings) -> Result<(), Error> {
    let files = source::load(&settings.location)?;
    let rows = Db::connect(&settings.url)?.rows_if_any()?;
    let problems = state::problems(&state::resolve(&files, &rows), Pending::Refused);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Validation { problems })
    }
}

/// Removes failed rows, realigns checksums, descriptions and types with the files, and marks
/// applied migrations whose files are gone as deleted, as Flyway 10's `repair` does.
pub fn repair(settings: &Settings) -> Result<RepairReport, Error> {
    let files = source::load(&settings.location)?;
    let mut db = Db::connect(&settings.url)?;
    db.locked(|db| {
        let mut report = RepairReport::default();
        if !db.history_exists()? {
            return Ok(report);
        }
        let rows = db.rows()?;
        let entries = state::resolve(&files, &rows);
        let url = db.display_url.clone();
        let mut tx = db
            .client
            .transaction()
            .map_err(database_error(&url, "start the repair transaction"))?;
        history::delete_failed(&mut tx).map_err(database_error(&url, "delete failed rows"))?;
        report.removed_failed = entries
            .iter()
            .filter(|e| e.applied.is_some_and(|r| !r.success))
            .map(|e| e.version())
            .collect();
        for entry in &entries {
            match (entry.state, entry.file, entry.applied) {
                (State::Success, Some(file), Some(row)) if state::differs(file, row) => {
                    history::realign(
                        &mut tx,
                        row.installed_rank,
                        &file.description,
                        history::kind::SQL,
                        file.checksum,
                    )
                    .map_err(database_error(&url, "realign a history row"))?;
                    report.realigned.push(entry.version());
                }
                (State::Missing, None, Some(row)) => {
                    let version = row.version.as_deref().unwrap_or_default();
                    history::insert(
                        &mut tx,
                        &NewRow {
                            version,
                            description: &row.description,
                            kind: history::kind::DELETE,
                            script: &row.script,
                            checksum: row.checksum,
                            execution_time: 0,
                            success: true,
                        },
                    )
                    .map_err(database_error(&url, "mark a missing migration as deleted"))?;
                    report.marked_deleted.push(entry.version());
                }
                _ => {}
            }
        }
        tx.commit()
            .map_err(database_error(&url, "commit the repair"))?;
        Ok(report)
    })
}

/// Drops the indexes of schema `public` that a `CREATE INDEX CONCURRENTLY` cut off half way
/// left INVALID (its session or the server killed): the migration that builds them is not in
/// the history, so it runs again, and its `IF NOT EXISTS` would keep the invalid index for good.
/// An invalid index answers no query and holds nothing but what its table holds; one still
/// being built (a concurrent runner of another tool) is left alone.
fn drop_invalid_indexes(client: &mut Client) -> Result<(), postgres::Error> {
    let invalid = client.query(
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_index i
           JOIN pg_class c ON c.oid = i.indexrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE NOT i.indisvalid AND n.nspname = 'public'
            AND NOT EXISTS (SELECT 1 FROM pg_stat_progress_create_index p
                             WHERE p.index_relid = i.indexrelid)",
        &[],
    )?;
    for row in invalid {
        let name: String = row.get(0);
        client.batch_execute(&format!("DROP INDEX IF EXISTS {name}"))?;
    }
    Ok(())
}

/// The statements of a migration, refused as Flyway refuses a script that mixes statements
/// PostgreSQL can run in a transaction with ones it cannot.
fn plan(file: &Migration) -> Result<Vec<Statement>, Error> {
    let statements = split::split(&file.sql);
    if let Some(first) = statements.first()
        && let Some(other) = statements
            .iter()
            .find(|s| s.transactional != first.transactional)
    {
        return Err(Error::MixedStatements {
            script: file.script.clone(),
            line: other.line,
            statement: other.sql.clone(),
        });
    }
    Ok(statements)
}

/// The schema version after the run: the highest applied version that counts.
fn current_version(entries: &[Entry<'_>]) -> Option<String> {
    entries
        .iter()
        .filter(|e| matches!(e.state, State::Success | State::Baseline | State::Future))
        .filter_map(|e| e.applied.and_then(|r| r.version.clone()))
        .filter_map(|v| source::Version::parse(&v).ok())
        .max()
        .map(|v| v.to_string())
}

fn info_row(entry: &Entry<'_>) -> InfoRow {
    let row = entry.applied;
    InfoRow {
        version: entry.version(),
        description: entry
            .file
            .map(|f| f.description.clone())
            .or(row.map(|r| r.description.clone()))
            .unwrap_or_default(),
        kind: row.map_or_else(|| history::kind::SQL.to_owned(), |r| r.kind.clone()),
        script: entry
            .file
            .map(|f| f.script.clone())
            .or(row.map(|r| r.script.clone()))
            .unwrap_or_default(),
        installed_on: row.map(|r| r.installed_on.clone()),
        installed_by: row.map(|r| r.installed_by.clone()),
        execution_time_ms: row.map(|r| r.execution_time),
        state: entry.state,
        file_checksum: entry.file.map(|f| f.checksum),
        applied_checksum: row.and_then(|r| r.checksum),
    }
}

/// One connection to the database being migrated.
struct Db {
    client: Client,
    /// The URL without its password, for messages.
    display_url: String,
}

impl Db {
    fn connect(url: &str) -> Result<Self, Error> {
        let mut config: postgres::Config =
            url.parse()
                .map_err(|e: postgres::Error| Error::InvalidUrl {
                    reason: e.to_string(),
                })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("amtp-migrate");
        }
        let display_url = display_url(&config);
        let client = config.connect(NoTls).map_err(|cause| Error::Connect {
            url: display_url.clone(),
            cause,
        })?;
        Ok(Db {
            client,
            display_url,
        })
    }

    fn error(&self, action: &'static str) -> impl Fn(postgres::Error) -> Error + use<> {
        database_error(&self.display_url, action)
    }

    /// Runs `work` holding Flyway's advisory lock on the history table.
    ///
    /// The lock is taken with `pg_try_advisory_lock` and polled, never waited for inside the
    /// server: a session blocked in `pg_advisory_lock` sits in an open transaction, which
    /// `CREATE INDEX CONCURRENTLY` in the lock holder's session waits to end, while that session
    /// waits for the lock: neither would ever finish.
    fn locked<T>(&mut self, work: impl FnOnce(&mut Self) -> Result<T, Error>) -> Result<T, Error> {
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            let taken: bool = self
                .client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK_KEY])
                .map_err(self.error("take the migration lock"))?
                .get(0);
            if taken {
                break;
            }
            if Instant::now() >= deadline {
                return Err(Error::LockTimeout {
                    seconds: LOCK_WAIT.as_secs(),
                    key: LOCK_KEY,
                    url: self.display_url.clone(),
                });
            }
            std::thread::sleep(LOCK_POLL);
        }
        let result = work(self);
        let unlocked = self
            .client
            .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
            .map_err(self.error("release the migration lock"));
        // The work's own error matters more; a lost connection releases the lock anyway.
        let value = result?;
        unlocked?;
        Ok(value)
    }

    /// Makes unqualified names in scripts mean schema `public`, as Flyway does for
    /// `flyway.schemas=public` (it prepends the schema to the session's search path).
    fn put_public_first_on_search_path(&mut self) -> Result<(), Error> {
        self.client
            .execute(
                r#"SELECT set_config('search_path',
                       CASE current_setting('search_path') WHEN '' THEN '"public"'
                       ELSE '"public",' || current_setting('search_path') END, false)"#,
                &[],
            )
            .map_err(self.error("put schema public first on the search path"))?;
        Ok(())
    }

    fn history_exists(&mut self) -> Result<bool, Error> {
        let row = self
            .client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&history::TABLE])
            .map_err(self.error("look for the history table"))?;
        Ok(row.get(0))
    }

    /// The history rows, or none when there is no history table yet.
    fn rows_if_any(&mut self) -> Result<Vec<history::AppliedRow>, Error> {
        if self.history_exists()? {
            self.rows()
        } else {
            Ok(Vec::new())
        }
    }

    fn rows(&mut self) -> Result<Vec<history::AppliedRow>, Error> {
        history::rows(&mut self.client).map_err(self.error("read flyway_schema_history"))
    }

    /// Creates the history table if it is missing; on a non-empty `public` schema it gets
    /// Flyway's baseline row (`baselineOnMigrate`). Returns whether it baselined.
    fn ensure_history(&mut self) -> Result<bool, Error> {
        let row = self
            .client
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL,
                        to_regnamespace('public') IS NOT NULL,
                        EXISTS (SELECT 1 FROM pg_class WHERE relnamespace = to_regnamespace('public'))
                     OR EXISTS (SELECT 1 FROM pg_proc WHERE pronamespace = to_regnamespace('public'))
                     OR EXISTS (SELECT 1 FROM pg_type WHERE typnamespace = to_regnamespace('public')
                                  AND typtype <> 'c' AND typcategory <> 'A')",
                &[&history::TABLE],
            )
            .map_err(self.error("inspect schema public"))?;
        let (exists, has_public, not_empty): (bool, bool, bool) =
            (row.get(0), row.get(1), row.get(2));
        if exists {
            return Ok(false);
        }
        if !has_public {
            return Err(Error::NoPublicSchema {
                url: self.display_url.clone(),
            });
        }
        history::create(&mut self.client, not_empty)
            .map_err(self.error("create flyway_schema_history"))?;
        Ok(not_empty)
    }

    /// Applies one migration and records it.
    ///
    /// In a transaction, the statements and the history row commit together, and a failure
    /// leaves nothing behind. Without one, each statement commits on its own, and a failure is
    /// recorded with `success = false`, which stops later runs until `repair`.
    fn apply(
        &mut self,
        file: &Migration,
        statements: &[Statement],
    ) -> Result<AppliedMigration, Error> {
        let in_transaction = file
            .execute_in_transaction
            .unwrap_or_else(|| statements.iter().all(|s| s.transactional));
        let version = file.version.to_string();
        let row = |execution_time, success| NewRow {
            version: &version,
            description: &file.description,
            kind: history::kind::SQL,
            script: &file.script,
            checksum: Some(file.checksum),
            execution_time,
            success,
        };
        let Db {
            client,
            display_url,
        } = self;
        let started = Instant::now();
        if in_transaction {
            let mut tx = client
                .transaction()
                .map_err(database_error(display_url, "start a transaction"))?;
            for statement in statements {
                tx.batch_execute(&statement.sql)
                    .map_err(|e| sql_error(file, statement, &e, ROLLED_BACK))?;
            }
            let execution_time = elapsed_ms(started);
            history::insert(&mut tx, &row(execution_time, true)).map_err(database_error(
                display_url,
                "record the migration in flyway_schema_history",
            ))?;
            tx.commit()
                .map_err(database_error(display_url, "commit the migration"))?;
            return Ok(applied(file, execution_time));
        }
        drop_invalid_indexes(client).map_err(database_error(
            display_url,
            "drop the invalid indexes an interrupted CREATE INDEX CONCURRENTLY left",
        ))?;
        for statement in statements {
            if let Err(e) = client.batch_execute(&statement.sql) {
                history::insert(client, &row(elapsed_ms(started), false)).map_err(
                    database_error(
                        display_url,
                        "record the failed migration in flyway_schema_history",
                    ),
                )?;
                return Err(sql_error(file, statement, &e, LEFT_HALF_DONE));
            }
        }
        let execution_time = elapsed_ms(started);
        history::insert(client, &row(execution_time, true)).map_err(database_error(
            display_url,
            "record the migration in flyway_schema_history",
        ))?;
        Ok(applied(file, execution_time))
    }
}

const ROLLED_BACK: &str =
    "nothing of it was applied and no history row was written; fix the file and run migrate again";
const LEFT_HALF_DONE: &str = "it runs outside a transaction (executeInTransaction=false), so the \
     statements before this one stay applied and a failed row was recorded; undo the half-completed \
     changes, then run `migrate repair` and migrate again";

fn elapsed_ms(started: Instant) -> i32 {
    i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX)
}

fn database_error(url: &str, action: &'static str) -> impl Fn(postgres::Error) -> Error + use<> {
    let url = url.to_owned();
    move |cause| Error::Database {
        action,
        url: url.clone(),
        cause,
    }
}

fn applied(file: &Migration, execution_time: i32) -> AppliedMigration {
    AppliedMigration {
        version: file.version.to_string(),
        description: file.description.clone(),
        script: file.script.clone(),
        execution_ms: execution_time,
    }
}

/// An error in a statement, placed on its line in the file.
fn sql_error(
    file: &Migration,
    statement: &Statement,
    error: &postgres::Error,
    consequence: &'static str,
) -> Error {
    // PostgreSQL reports the 1-based character position of the error inside the statement.
    let line = match error.as_db_error().and_then(|db| db.position()) {
        Some(postgres::error::ErrorPosition::Original(position)) => {
            let before: String = statement.sql.chars().take(*position as usize).collect();
            statement.line + before.matches('\n').count()
        }
        _ => statement.line,
    };
    const SHOWN: usize = 300;
    let mut shown: String = statement.sql.chars().take(SHOWN).collect();
    if statement.sql.chars().count() > SHOWN {
        shown.push_str(" …");
    }
    Error::Sql {
        script: file.script.clone(),
        line,
        statement_line: statement.line,
        statement: shown,
        message: db_message(error),
        consequence,
    }
}

/// `postgres://user@host:port/dbname`: the URL as the config understood it, without the password.
fn display_url(config: &postgres::Config) -> String {
    use postgres::config::Host;
    let user = config
        .get_user()
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let host = match host {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            };
            match ports.get(i).or(ports.first()) {
                Some(port) => format!("{host}:{port}"),
                None => host,
            }
        })
        .collect();
    let dbname = config.get_dbname().unwrap_or_default();
    format!("postgres://{user}{}/{dbname}", hosts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_url_drops_the_password() {
        let config: postgres::Config = "postgres://amtp:s3cret@127.0.0.1:5432/amtp"
            .parse()
            .expect("url");
        assert_eq!(display_url(&config), "postgres://amtp@127.0.0.1:5432/amtp");
    }
}
