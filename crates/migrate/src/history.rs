//! The `flyway_schema_history` table, created and written exactly as Flyway 10 does on PostgreSQL.

use postgres::GenericClient;

/// The history table, quoted as Flyway quotes it (and as its lock key is derived from).
pub const TABLE: &str = r#""public"."flyway_schema_history""#;

/// Flyway's advisory lock key for [`TABLE`]: `0x466C79776179` ("Flyway" in ASCII) plus the Java
/// `String.hashCode()` of the quoted table name.
pub const LOCK_KEY: i64 = 77433833903597;

/// The description and script Flyway writes on its baseline row.
pub const BASELINE_DESCRIPTION: &str = "<< Flyway Baseline >>";

/// The version Flyway's `baselineOnMigrate` records (its `baselineVersion` default).
pub const BASELINE_VERSION: &str = "1";

/// Flyway's `PostgreSQLDatabase.getRawCreateScript`, without a tablespace.
const CREATE_TABLE: &str = r#"CREATE TABLE "public"."flyway_schema_history" (
    "installed_rank" INT NOT NULL,
    "version" VARCHAR(50),
    "description" VARCHAR(200) NOT NULL,
    "type" VARCHAR(20) NOT NULL,
    "script" VARCHAR(1000) NOT NULL,
    "checksum" INTEGER,
    "installed_by" VARCHAR(100) NOT NULL,
    "installed_on" TIMESTAMP NOT NULL DEFAULT now(),
    "execution_time" INTEGER NOT NULL,
    "success" BOOLEAN NOT NULL
)"#;

const ADD_PRIMARY_KEY: &str = r#"ALTER TABLE "public"."flyway_schema_history" ADD CONSTRAINT "flyway_schema_history_pk" PRIMARY KEY ("installed_rank")"#;

const CREATE_INDEX: &str =
    r#"CREATE INDEX "flyway_schema_history_s_idx" ON "public"."flyway_schema_history" ("success")"#;

/// The `type` column's values this runner writes or understands.
pub mod kind {
    pub const SQL: &str = "SQL";
    pub const BASELINE: &str = "BASELINE";
    /// Flyway 10's `repair` marks a migration whose file was removed with a `DELETE` row.
    pub const DELETE: &str = "DELETE";
}

/// One row of the history table.
#[derive(Debug, Clone)]
pub struct AppliedRow {
    pub installed_rank: i32,
    pub version: Option<String>,
    pub description: String,
    pub kind: String,
    pub script: String,
    pub checksum: Option<i32>,
    pub installed_by: String,
    /// `installed_on` as `YYYY-MM-DD HH:MM:SS` (a `TIMESTAMP` without time zone, as Flyway keeps it).
    pub installed_on: String,
    pub execution_time: i32,
    pub success: bool,
}

/// A row to append, as Flyway's `JdbcTableSchemaHistory.doAddAppliedMigration` writes it.
pub struct NewRow<'a> {
    pub version: &'a str,
    pub description: &'a str,
    pub kind: &'a str,
    pub script: &'a str,
    pub checksum: Option<i32>,
    pub execution_time: i32,
    pub success: bool,
}

/// Creates the table; with `baseline`, Flyway's baseline row goes in with it, in one transaction.
pub fn create(client: &mut impl GenericClient, baseline: bool) -> Result<(), postgres::Error> {
    let mut tx = client.transaction()?;
    tx.batch_execute(CREATE_TABLE)?;
    if baseline {
        insert(
            &mut tx,
            &NewRow {
                version: BASELINE_VERSION,
                description: BASELINE_DESCRIPTION,
                kind: kind::BASELINE,
                script: BASELINE_DESCRIPTION,
                checksum: None,
                execution_time: 0,
                success: true,
            },
        )?;
    }
    tx.batch_execute(ADD_PRIMARY_KEY)?;
    tx.batch_execute(CREATE_INDEX)?;
    tx.commit()
}

/// Appends a row with the next `installed_rank`, installed by the session's `current_user`.
pub fn insert(client: &mut impl GenericClient, row: &NewRow<'_>) -> Result<(), postgres::Error> {
    client.execute(
        r#"INSERT INTO "public"."flyway_schema_history"
               ("installed_rank", "version", "description", "type", "script", "checksum",
                "installed_by", "execution_time", "success")
           SELECT COALESCE(MAX("installed_rank"), 0) + 1, $1, $2, $3, $4, $5, current_user, $6, $7
           FROM "public"."flyway_schema_history""#,
        &[
            &row.version,
            &row.description,
            &row.kind,
            &row.script,
            &row.checksum,
            &row.execution_time,
            &row.success,
        ],
    )?;
    Ok(())
}

/// All rows in `installed_rank` order.
pub fn rows(client: &mut impl GenericClient) -> Result<Vec<AppliedRow>, postgres::Error> {
    let rows = client.query(
        r#"SELECT "installed_rank", "version", "description", "type", "script", "checksum",
                  "installed_by", to_char("installed_on", 'YYYY-MM-DD HH24:MI:SS'),
                  "execution_time", "success"
           FROM "public"."flyway_schema_history" ORDER BY "installed_rank""#,
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|row| AppliedRow {
            installed_rank: row.get(0),
            version: row.get(1),
            description: row.get(2),
            kind: row.get(3),
            script: row.get(4),
            checksum: row.get(5),
            installed_by: row.get(6),
            installed_on: row.get(7),
            execution_time: row.get(8),
            success: row.get(9),
        })
        .collect())
}

/// Removes the rows of failed migrations (what `repair` does first).
pub fn delete_failed(client: &mut impl GenericClient) -> Result<u64, postgres::Error> {
    client.execute(
        r#"DELETE FROM "public"."flyway_schema_history" WHERE "success" = false"#,
        &[],
    )
}

/// Realigns one applied row with its file, as Flyway's `repair` does.
pub fn realign(
    client: &mut impl GenericClient,
    installed_rank: i32,
    description: &str,
    kind: &str,
    checksum: i32,
) -> Result<(), postgres::Error> {
    client.execute(
        r#"UPDATE "public"."flyway_schema_history"
           SET "description" = $1, "type" = $2, "checksum" = $3
           WHERE "installed_rank" = $4"#,
        &[&description, &kind, &checksum, &installed_rank],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Java's `String.hashCode()`: `s[0]*31^(n-1) + … + s[n-1]` over UTF-16 units, wrapping.
    fn java_hash_code(s: &str) -> i32 {
        s.encode_utf16().fold(0i32, |h, unit| {
            h.wrapping_mul(31).wrapping_add(i32::from(unit))
        })
    }

    #[test]
    fn lock_key_is_flyways_for_the_quoted_table_name() {
        let flyway = i64::from_str_radix("466C79776179", 16).expect("hex");
        assert_eq!(flyway + i64::from(java_hash_code(TABLE)), LOCK_KEY);
    }
}
