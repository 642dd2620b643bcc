//! Shared helpers: a fresh database per test, a folder of migration files, the binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use amtp_migrate::Settings;

/// A database of its own, created on the stack's PostgreSQL and dropped at the end of the test.
pub struct TestDb {
    pub name: String,
    pub url: String,
    admin_url: String,
}

impl TestDb {
    pub fn create() -> Self {
        let admin_url = amtp_testkit::stack_env("DIRECT_DATABASE_URL");
        let mut suffix = [0u8; 6];
        getrandom::fill(&mut suffix).expect("random database name");
        let name = format!(
            "mig_{}",
            suffix
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        connect(&admin_url)
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("CREATE DATABASE for the test (the role needs CREATEDB)");
        TestDb {
            url: with_database(&admin_url, &name),
            name,
            admin_url,
        }
    }

    pub fn client(&self) -> postgres::Client {
        connect(&self.url)
    }

    pub fn settings(&self, location: &Path) -> Settings {
        Settings {
            url: self.url.clone(),
            location: location.to_owned(),
        }
    }

    /// The names of the tables in schema `public`, sorted.
    pub fn tables(&self) -> Vec<String> {
        self.client()
            .query(
                "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
                &[],
            )
            .expect("list tables")
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    /// `(version, type, success)` of every history row, in installed_rank order.
    pub fn history(&self) -> Vec<(Option<String>, String, bool)> {
        self.client()
            .query(
                r#"SELECT "version", "type", "success" FROM "public"."flyway_schema_history" ORDER BY "installed_rank""#,
                &[],
            )
            .expect("read flyway_schema_history")
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut admin) = postgres::Client::connect(&self.admin_url, postgres::NoTls) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

pub fn connect(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls)
        .unwrap_or_else(|e| panic!("connect to the test PostgreSQL: {e}"))
}

/// The same URL pointing at another database.
fn with_database(url: &str, database: &str) -> String {
    let authority_start = url.find("://").map_or(0, |i| i + 3);
    let path_start = url[authority_start..]
        .find('/')
        .map_or(url.len(), |i| authority_start + i);
    let query = url[path_start..]
        .find('?')
        .map_or("", |i| &url[path_start + i..]);
    format!("{}/{database}{query}", &url[..path_start])
}

/// A temporary folder of migration files.
pub struct Folder {
    dir: tempfile::TempDir,
}

impl Folder {
    pub fn new() -> Self {
        Folder {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// A folder holding a copy of the repository's real migrations.
    pub fn with_real_migrations() -> Self {
        let folder = Folder::new();
        for entry in std::fs::read_dir(real_migrations()).expect("read migrations/sql") {
            let path = entry.expect("dir entry").path();
            let name = path.file_name().expect("file name");
            std::fs::copy(&path, folder.path().join(name)).expect("copy migration");
        }
        folder
    }

    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> &Self {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create sub-folder");
        }
        std::fs::write(path, contents).expect("write migration");
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

pub fn real_migrations() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations/sql")
}

/// Runs the `amtp-migrate` binary with these arguments.
pub fn amtp_migrate(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_amtp-migrate"));
    command.args(args).env_remove("DIRECT_DATABASE_URL");
    command
}

/// The command's output, asserting its exit status and dumping everything when it is not.
pub fn expect_status(command: &mut Command, success: bool) -> Output {
    let output = command.output().expect("run amtp-migrate");
    assert_eq!(
        output.status.success(),
        success,
        "{command:?} exited with {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}
