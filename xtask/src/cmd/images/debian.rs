//! Debian bookworm root file systems for the offline image test, made by `debootstrap` from the
//! mirror apt uses on this machine, its packages cached between runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The Debian release of both Dockerfiles' base images (rust:1.95-bookworm,
/// debian:bookworm-slim).
const SUITE: &str = "bookworm";

/// Debian's packages between runs, one directory per root file system: the two debootstraps
/// run at once, and two of them downloading one package into one file would each find the
/// other's half-written copy invalid and delete it.
pub(super) struct DebCache {
    /// `~/.cache/amtp/debootstrap` (or under `XDG_CACHE_HOME`): the build base's packages, a
    /// superset of the runtime base's (and where both were kept before they ran at once).
    pub(super) build: PathBuf,
    /// Its `runtime/`: the runtime base's.
    pub(super) runtime: PathBuf,
}

pub(super) fn deb_cache() -> anyhow::Result<DebCache> {
    let base = match std::env::var_os("XDG_CACHE_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".cache"),
    };
    let build = base.join("amtp/debootstrap");
    let runtime = build.join("runtime");
    std::fs::create_dir_all(&runtime).with_context(|| format!("create {}", runtime.display()))?;
    Ok(DebCache { build, runtime })
}

pub(super) fn debootstrap(
    mirror: &str,
    cache: &Path,
    target: &Path,
    include: &[&str],
) -> anyhow::Result<()> {
    let mut command = Command::new("debootstrap");
    command
        .arg("--variant=minbase")
        .arg(format!("--cache-dir={}", cache.display()));
    if !include.is_empty() {
        command.arg(format!("--include={}", include.join(",")));
    }
    command.arg(SUITE).arg(target).arg(mirror);
    let output = command.output().context("run debootstrap")?;
    if !output.status.success() {
        let log =
            std::fs::read_to_string(target.join("debootstrap/debootstrap.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        bail!(
            "debootstrap {SUITE} from {mirror} failed: {}\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    Ok(())
}

/// The mirror debootstrap uses: `AMTP_DEBIAN_MIRROR`, else the first source of `bookworm` in
/// apt's own configuration.
pub(super) fn debian_mirror() -> anyhow::Result<String> {
    if let Some(mirror) = std::env::var("AMTP_DEBIAN_MIRROR")
        .ok()
        .filter(|m| !m.is_empty())
    {
        return Ok(mirror);
    }
    let mut sources = Vec::new();
    let mut paths = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(entries) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut listed: Vec<PathBuf> = entries.flatten().map(|entry| entry.path()).collect();
        listed.sort();
        paths.extend(listed);
    }
    for path in paths {
        let name = path.to_string_lossy();
        if !(name.ends_with(".list") || name.ends_with(".sources")) {
            continue;
        }
        if let Ok(text) = std::fs::read_to_string(&path) {
            sources.push(text);
        }
    }
    bookworm_mirror(&sources).with_context(|| {
        format!(
            "apt has no source for Debian {SUITE} in /etc/apt/sources.list*; set \
             AMTP_DEBIAN_MIRROR to a Debian mirror (e.g. http://deb.debian.org/debian)"
        )
    })
}

/// The first `deb` source with the suite `bookworm`, in one-line (`.list`) or deb822
/// (`.sources`) format.
pub(super) fn bookworm_mirror(sources: &[String]) -> Option<String> {
    for text in sources {
        for line in text.lines().map(str::trim) {
            let Some(rest) = line.strip_prefix("deb ") else {
                continue;
            };
            let rest = match rest.trim_start().strip_prefix('[') {
                Some(options) => options.split_once(']').map_or("", |(_, after)| after),
                None => rest,
            };
            let mut words = rest.split_whitespace();
            if let (Some(uri), Some(SUITE)) = (words.next(), words.next()) {
                return Some(uri.to_owned());
            }
        }
        for paragraph in text.split("\n\n") {
            let field = |name: &str| {
                paragraph
                    .lines()
                    .filter(|line| !line.starts_with('#'))
                    .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                    .map(str::trim)
            };
            let enabled = field("Enabled").is_none_or(|value| value != "no");
            let types_deb =
                field("Types").is_some_and(|t| t.split_whitespace().any(|t| t == "deb"));
            let suites = field("Suites").is_some_and(|s| s.split_whitespace().any(|s| s == SUITE));
            if enabled
                && types_deb
                && suites
                && let Some(uri) = field("URIs").and_then(|uris| uris.split_whitespace().next())
            {
                return Some(uri.to_owned());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mirror_is_apts_first_bookworm_source() {
        let deb822 = "Types: deb\n# http://snapshot.debian.org/archive/debian/20250520T000000Z\n\
                      URIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\n\
                      Components: main\n\nTypes: deb\nURIs: http://deb.debian.org/debian-security\n\
                      Suites: bookworm-security\nComponents: main\n";
        let others = "deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n";
        assert_eq!(
            bookworm_mirror(&[others.to_owned(), deb822.to_owned()]).as_deref(),
            Some("http://deb.debian.org/debian")
        );
        let one_line = "# deb http://old.example/debian bookworm main\n\
                        deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main\n";
        assert_eq!(
            bookworm_mirror(&[one_line.to_owned()]).as_deref(),
            Some("http://mirror.example/debian")
        );
        let disabled = "Enabled: no\nTypes: deb\nURIs: http://x.example/debian\nSuites: bookworm\n";
        assert_eq!(
            bookworm_mirror(&[disabled.to_owned(), others.to_owned()]),
            None
        );
    }
}
