//! Finds the server programs and checks their versions against the flake's pins.
//!
//! `nix develop` puts the pinned programs on PATH; without Nix, distro packages are found on
//! PATH or in the places distros install them outside it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// Directories searched after PATH.
const EXTRA_DIRS: [&str; 6] = [
    "/usr/lib/postgresql/15/bin",
    "/usr/sbin",
    "/usr/local/sbin",
    "/opt/homebrew/opt/postgresql@15/bin",
    "/usr/local/opt/postgresql@15/bin",
    "/opt/homebrew/sbin",
];

/// A program the stack runs, as found on this machine.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Installed {
    pub(crate) path: PathBuf,
    /// `x.y.z` as the program reports it.
    pub(crate) version: String,
    /// Differences from the pinned program, said at `up` and in `status`.
    #[serde(deserialize_with = "typed_drift_only")]
    pub(crate) drift: Vec<Drift>,
}

/// The drift of a run state, leaving out entries of another form: a supervisor of an earlier
/// version wrote its drift as text, and its stack must stay readable (so that `status`, `down`
/// and the next `up` still find its processes) until it is restarted.
fn typed_drift_only<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<Drift>, D::Error> {
    let entries: Vec<serde_json::Value> = serde::Deserialize::deserialize(deserializer)?;
    Ok(entries
        .into_iter()
        .filter_map(|entry| serde_json::from_value(entry).ok())
        .collect())
}

/// One way the program found differs from the contract. Its text is what `up` and `status`
/// say; the run state keeps the fields (`{"kind": "off_pin", "found": …, "pinned": …}`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Drift {
    /// Another program of the same protocol runs in its place (`redis-server`).
    StandIn { found: String, wanted: String },
    /// Its version is not the pin's.
    OffPin { found: String, pinned: String },
    /// A setting of the contract this version does not take, left out of its config.
    SettingLeftOut {
        key: String,
        value: String,
        program: String,
        version: String,
    },
}

impl Drift {
    /// Whether the program itself is not the pinned one (`verify`'s `unpinned`), rather than
    /// a setting this version lacks.
    pub(crate) fn is_unpinned(&self) -> bool {
        matches!(self, Drift::StandIn { .. } | Drift::OffPin { .. })
    }
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Drift::StandIn { found, wanted } => {
                write!(f, "{found} stands in for {wanted} (not found)")
            }
            Drift::OffPin { found, pinned } => write!(f, "version {found}, pinned {pinned}"),
            Drift::SettingLeftOut {
                key,
                value,
                program,
                version,
            } => write!(
                f,
                "{key}={value} left out: {program} {version} does not support it"
            ),
        }
    }
}

/// What to look for and which version the flake pins.
pub(crate) struct Wanted {
    /// Program names in order of preference (`valkey-server`, then `redis-server`).
    pub(crate) names: &'static [&'static str],
    pub(crate) version_arg: &'static str,
    /// The pinned version or version prefix (`15`, `1.22.1`, `8.0`).
    pub(crate) pin: &'static str,
    /// How to get it without Nix.
    pub(crate) install_hint: &'static str,
    /// What a version off the pin means.
    pub(crate) off_pin: OffPin,
}

/// What `locate` does with a program whose version does not match the pin.
pub(crate) enum OffPin {
    /// Run it and report the version as drift (`up`, `status`, `verify`).
    Drift,
    /// Refuse to run it: a different major of this program is not the contract at all.
    Refuse {
        /// The program's name in the message (`PostgreSQL`).
        product: &'static str,
        /// How to get the pinned version without Nix.
        fix: &'static str,
    },
}

pub(crate) fn locate(wanted: &Wanted) -> anyhow::Result<Installed> {
    let (name, path) = find_first(wanted.names, wanted.install_hint)?;
    let version = version_of(&path, wanted.version_arg)?;
    judge(wanted, name, path, version)
}

/// A client program the xtask runs for the user (`psql`, `valkey-cli`), found where the
/// servers are: the first of `names` on PATH or in the distros' directories.
pub(crate) fn client(names: &[&str], install_hint: &str) -> anyhow::Result<PathBuf> {
    find_first(names, install_hint).map(|(_, path)| path)
}

/// The first of `names` found, or the error that names them all and how to get one.
fn find_first<'a>(names: &[&'a str], install_hint: &str) -> anyhow::Result<(&'a str, PathBuf)> {
    let Some(found) = names
        .iter()
        .find_map(|name| find(name).map(|path| (*name, path)))
    else {
        bail!(
            "{} not found on PATH or in {}; run inside `nix develop`, or install {install_hint}",
            names.join(" or "),
            EXTRA_DIRS[0],
        );
    };
    Ok(found)
}

/// The program found as `name` at `path`, judged against what is wanted: drift, or a refusal.
fn judge(wanted: &Wanted, name: &str, path: PathBuf, version: String) -> anyhow::Result<Installed> {
    let mut drift = Vec::new();
    if name != wanted.names[0] {
        drift.push(Drift::StandIn {
            found: name.to_owned(),
            wanted: wanted.names[0].to_owned(),
        });
    }
    if !matches_pin(&version, wanted.pin) {
        if let OffPin::Refuse { product, fix } = wanted.off_pin {
            bail!(
                "{name} at {} is {product} {version}, the stack runs {}; run inside \
                 `nix develop`, or {fix}",
                path.display(),
                wanted.pin
            );
        }
        drift.push(Drift::OffPin {
            found: version.clone(),
            pinned: wanted.pin.to_owned(),
        });
    }
    Ok(Installed {
        path,
        version,
        drift,
    })
}

fn find(name: &str) -> Option<PathBuf> {
    which::which(name).ok().or_else(|| {
        EXTRA_DIRS
            .iter()
            .map(|dir| Path::new(dir).join(name))
            .find(|path| path.is_file())
    })
}

fn version_of(path: &Path, arg: &str) -> anyhow::Result<String> {
    let output = Command::new(path)
        .arg(arg)
        .output()
        .with_context(|| format!("cannot run {} {arg}", path.display()))?;
    // nginx prints its version on stderr.
    let text = String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
    first_version(&text)
        .with_context(|| format!("no version in the output of {} {arg}", path.display()))
}

/// The first `x.y[.z]` in a program's version banner.
fn first_version(text: &str) -> Option<String> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map(|word| word.trim_matches('.'))
        .find(|word| word.contains('.') && word.split('.').all(|p| !p.is_empty()))
        .map(str::to_owned)
}

/// `15.8` matches pin `15`; `8.0.2` matches `8.0`; `1.22.1` matches only `1.22.1`.
fn matches_pin(version: &str, pin: &str) -> bool {
    version == pin || version.starts_with(&format!("{pin}."))
}

#[cfg(test)]
mod tests {
    #[test]
    fn drift_written_as_text_by_an_earlier_supervisor_still_reads() {
        let earlier = r#"{"path":"/usr/sbin/pgbouncer","version":"1.18.0","drift":["version 1.18.0, pinned 1.22.1",{"kind":"off_pin","found":"1.18.0","pinned":"1.22.1"}]}"#;
        let installed: Installed = serde_json::from_str(earlier).unwrap();
        assert_eq!(
            installed.drift,
            [Drift::OffPin {
                found: "1.18.0".into(),
                pinned: "1.22.1".into()
            }]
        );
    }

    use super::*;

    #[test]
    fn versions_are_read_from_real_banners() {
        let banners = [
            (
                "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)",
                "15.18",
            ),
            ("PgBouncer 1.18.0\nlibevent 2.1.12-stable", "1.18.0"),
            ("Valkey server v=9.1.2 sha=00000000:1 malloc=libc", "9.1.2"),
            ("Redis server v=7.0.15 sha=00000000:0", "7.0.15"),
            ("nginx version: nginx/1.22.1", "1.22.1"),
        ];
        for (banner, version) in banners {
            assert_eq!(first_version(banner).as_deref(), Some(version), "{banner}");
        }
    }

    #[test]
    fn another_postgres_major_is_refused_with_the_fix_and_other_programs_drift() {
        let postgres = crate::stack::postgres::UNIT.program;
        let crate::stack::Program::External(wanted) = &postgres else {
            panic!("postgres is an external program")
        };
        let path = PathBuf::from("/usr/lib/postgresql/16/bin/postgres");
        let err = judge(wanted, "postgres", path.clone(), "16.6".into()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "postgres at /usr/lib/postgresql/16/bin/postgres is PostgreSQL 16.6, the stack runs \
             15; run inside `nix develop`, or install postgresql-15 from the PostgreSQL \
             project's apt repository (README, Quick start)"
        );
        assert!(judge(wanted, "postgres", path, "15.18".into()).is_ok_and(|i| i.drift.is_empty()));

        let pgbouncer = crate::stack::pgbouncer::UNIT.program;
        let crate::stack::Program::External(wanted) = &pgbouncer else {
            panic!("pgbouncer is an external program")
        };
        let old = judge(
            wanted,
            "pgbouncer",
            "/usr/sbin/pgbouncer".into(),
            "1.18.0".into(),
        );
        let drift = old.unwrap().drift;
        assert_eq!(
            drift,
            [Drift::OffPin {
                found: "1.18.0".into(),
                pinned: "1.22.1".into()
            }]
        );
        assert_eq!(drift[0].to_string(), "version 1.18.0, pinned 1.22.1");
        assert!(drift[0].is_unpinned());
    }

    #[test]
    fn a_missing_program_says_how_to_get_it() {
        let wanted = Wanted {
            names: &["amtp-no-such-server"],
            version_arg: "--version",
            pin: "1",
            install_hint: "amtp-no-such-package (apt)",
            off_pin: OffPin::Drift,
        };
        let err = locate(&wanted).unwrap_err().to_string();
        assert!(err.contains("amtp-no-such-server not found"), "{err}");
        assert!(err.contains("nix develop"), "{err}");
        assert!(err.contains("amtp-no-such-package (apt)"), "{err}");

        let err = client(&["amtp-no-such-cli", "amtp-nor-this"], "amtp-cli (apt)")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "amtp-no-such-cli or amtp-nor-this not found on PATH or in /usr/lib/postgresql/15/bin; \
             run inside `nix develop`, or install amtp-cli (apt)"
        );
    }

    #[test]
    fn drift_reads_as_before_and_keeps_its_fields_in_the_run_state() {
        let stand_in = Drift::StandIn {
            found: "redis-server".into(),
            wanted: "valkey-server".into(),
        };
        assert_eq!(
            stand_in.to_string(),
            "redis-server stands in for valkey-server (not found)"
        );
        let left_out = Drift::SettingLeftOut {
            key: "max_prepared_statements".into(),
            value: "100".into(),
            program: "PgBouncer".into(),
            version: "1.18.0".into(),
        };
        assert_eq!(
            left_out.to_string(),
            "max_prepared_statements=100 left out: PgBouncer 1.18.0 does not support it"
        );
        assert!(stand_in.is_unpinned() && !left_out.is_unpinned());
        let json = serde_json::to_value(&stand_in).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "stand_in", "found": "redis-server", "wanted": "valkey-server"})
        );
        assert_eq!(serde_json::from_value::<Drift>(json).unwrap(), stand_in);
    }

    #[test]
    fn pins_match_by_prefix_of_whole_components() {
        assert!(matches_pin("15.18", "15"));
        assert!(!matches_pin("150.1", "15"));
        assert!(matches_pin("8.0.2", "8.0"));
        assert!(!matches_pin("8.1.0", "8.0"));
        assert!(matches_pin("1.22.1", "1.22.1"));
        assert!(!matches_pin("1.18.0", "1.22.1"));
    }
}
