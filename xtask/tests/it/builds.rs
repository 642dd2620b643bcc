//! A fresh clone compiles each crate once across the three builds the project runs:
//!
//! - `cargo build --package xtask`: what the `cargo xtask` alias (`run --package xtask`)
//!   builds before any subcommand; Cargo resolves its features for the xtask alone;
//! - `cargo build --workspace --bins --examples`: the services' build of `up` and `watch`;
//! - `cargo test --workspace --no-run`: the build of `cargo xtask test`.
//!
//! Compared as Cargo plans them (`--unit-graph`, in a second, nothing compiled), not by
//! building: a unit is one compilation, a package's target in one mode, and it is the same
//! compilation in two builds when its features, its profile's settings and, recursively, its
//! dependencies are. Each package's target must be one compilation across all three builds;
//! two means a fresh clone compiles it twice, and everything above it again. The failure names
//! each copy and its features; the fix is a line in `crates/workspace-hack/Cargo.toml`.
//!
//! `--unit-graph` is unstable (`RUSTC_BOOTSTRAP=1` below lets the stable Cargo print it) and
//! takes no lock on the target dir, so this runs inside `cargo xtask test`'s own `cargo test`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;
use std::process::Command;

use serde::Deserialize;

use crate::util::{describe, repo_root};

/// The three builds, by the arguments the project gives Cargo (`.cargo/config.toml`'s alias,
/// the xtask's `cargo_build_apps` and `cargo_test`).
const BUILDS: [&[&str]; 3] = [
    &["build", "--package", "xtask"],
    &["build", "--workspace", "--bins", "--examples"],
    &["test", "--workspace", "--no-run"],
];

#[test]
fn every_build_compiles_each_crate_once() {
    let root = repo_root();
    let alias = std::fs::read_to_string(root.join(".cargo/config.toml")).unwrap();
    assert!(
        alias.contains(r#"xtask = "run --package xtask --""#),
        "the `cargo xtask` alias changed; make the first of BUILDS build what it builds"
    );
    let graphs: Vec<UnitGraph> = BUILDS.iter().map(|args| unit_graph(&root, args)).collect();
    let twice = compiled_more_than_once(&graphs);
    assert!(
        twice.is_empty(),
        "{} crates are compiled more than once across the builds (each copy: its features, \
         opt-level, whom it is for, and the builds that compile it):\n{}\nfix: turn on the \
         widest features in crates/workspace-hack/Cargo.toml, under [dependencies] for a copy \
         linked into programs and under [build-dependencies] for a copy used by build scripts \
         and proc macros; a copy whose features are equal differs in a dependency listed here",
        twice.len(),
        twice.join("\n")
    );
}

/// Each package target compiled in more than one way across `graphs`, described.
fn compiled_more_than_once(graphs: &[UnitGraph]) -> Vec<String> {
    // (package, target, mode) -> identity -> how it is compiled, for whom, by which builds
    let mut copies: BTreeMap<(String, Target, String), BTreeMap<u64, Variant>> = BTreeMap::new();
    for (build, graph) in graphs.iter().enumerate() {
        let identities = graph.identities();
        let users = graph.users();
        for (index, unit) in graph.units.iter().enumerate() {
            let key = (unit.package(), unit.target.clone(), unit.mode.clone());
            let copy = copies
                .entry(key)
                .or_default()
                .entry(identities[index])
                .or_insert_with(|| Variant {
                    features: unit.features.clone(),
                    opt_level: unit.profile["opt_level"].as_str().unwrap_or("?").to_owned(),
                    users: BTreeSet::new(),
                    builds: BTreeSet::new(),
                });
            copy.users.insert(users[index]);
            copy.builds.insert(build);
        }
    }
    let twice: Vec<_> = copies
        .into_iter()
        .filter(|(_, copies)| copies.len() > 1)
        .collect();
    // A build script compiled twice means its crate is too: the crate is the one to name.
    let crates: Vec<_> = twice
        .iter()
        .filter(|((_, target, _), _)| !target.is_build_script())
        .collect();
    let named = if crates.is_empty() {
        twice.iter().collect()
    } else {
        crates
    };
    named
        .into_iter()
        .map(|((package, target, mode), copies)| {
            let lines: Vec<String> = copies
                .values()
                .map(|copy| {
                    let builds: Vec<String> = copy
                        .builds
                        .iter()
                        .map(|&build| format!("`cargo {}`", BUILDS[build].join(" ")))
                        .collect();
                    let users: Vec<&str> = copy.users.iter().map(|user| user.as_str()).collect();
                    format!(
                        "    features {:?}, opt-level {}, for {}: {}",
                        copy.features,
                        copy.opt_level,
                        users.join(" and "),
                        builds.join(", ")
                    )
                })
                .collect();
            let mode = if mode == "build" {
                String::new()
            } else {
                format!(", {mode}")
            };
            format!(
                "  {package} ({} {}{mode})\n{}",
                target.kind.join(","),
                target.name,
                lines.join("\n")
            )
        })
        .collect()
}

/// One way a package target is compiled.
struct Variant {
    features: Vec<String>,
    opt_level: String,
    users: BTreeSet<User>,
    builds: BTreeSet<usize>,
}

/// Whom a unit is compiled for: the programs, or the build scripts and proc macros (the host).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum User {
    Programs,
    BuildScripts,
}

impl User {
    fn as_str(self) -> &'static str {
        match self {
            User::Programs => "programs",
            User::BuildScripts => "build scripts and proc macros",
        }
    }
}

/// `cargo <args> --unit-graph` in the workspace at `root`: the units Cargo would compile.
fn unit_graph(root: &Path, args: &[&str]) -> UnitGraph {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command
        .current_dir(root)
        .args(args)
        .args(["--offline", "-Z", "unstable-options", "--unit-graph"])
        .env("RUSTC_BOOTSTRAP", "1");
    let output = command.output().expect("run cargo --unit-graph");
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}",
        describe(&output)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("{command:?} printed no unit graph ({err})"))
}

/// Cargo's `--unit-graph` output, the parts compared here.
#[derive(Deserialize)]
struct UnitGraph {
    units: Vec<Unit>,
    roots: Vec<usize>,
}

#[derive(Deserialize)]
struct Unit {
    pkg_id: String,
    target: Target,
    mode: String,
    features: Vec<String>,
    /// The profile's settings: its name (`dev`, `test`) is left out of the comparison, since
    /// Cargo shares the compilations of two profiles with equal settings.
    profile: serde_json::Map<String, serde_json::Value>,
    platform: Option<String>,
    dependencies: Vec<Dependency>,
}

#[derive(Clone, Deserialize, Hash, PartialEq, Eq, PartialOrd, Ord)]
struct Target {
    kind: Vec<String>,
    name: String,
}

#[derive(Deserialize)]
struct Dependency {
    index: usize,
}

impl Unit {
    /// `name@version` (a `pkg_id` ends in `#name@version`, or `#version` for a workspace
    /// package whose directory is its name).
    fn package(&self) -> String {
        let (path, tail) = self.pkg_id.rsplit_once('#').unwrap_or(("", &self.pkg_id));
        if tail.contains('@') {
            tail.to_owned()
        } else {
            let dir = path.rsplit('/').next().unwrap_or(path);
            format!("{dir}@{tail}")
        }
    }

    /// Build scripts and proc macros run on the host: what they depend on is theirs.
    fn runs_on_host(&self) -> bool {
        self.target.kind.iter().any(|kind| kind == "proc-macro")
            || (self.target.is_build_script() && self.mode == "build")
    }
}

impl Target {
    fn is_build_script(&self) -> bool {
        self.kind.iter().any(|kind| kind == "custom-build")
    }
}

impl UnitGraph {
    /// Each unit's identity: a hash of what makes it a compilation of its own.
    fn identities(&self) -> Vec<u64> {
        fn identity(graph: &UnitGraph, index: usize, memo: &mut HashMap<usize, u64>) -> u64 {
            if let Some(&known) = memo.get(&index) {
                return known;
            }
            let unit = &graph.units[index];
            let mut dependencies: Vec<u64> = unit
                .dependencies
                .iter()
                .map(|dependency| identity(graph, dependency.index, memo))
                .collect();
            dependencies.sort_unstable();
            let settings: Vec<(&String, String)> = unit
                .profile
                .iter()
                .filter(|(key, _)| key.as_str() != "name")
                .map(|(key, value)| (key, value.to_string()))
                .collect();
            let mut hasher = DefaultHasher::new();
            (&unit.pkg_id, &unit.target, &unit.mode).hash(&mut hasher);
            (&unit.features, settings, &unit.platform, dependencies).hash(&mut hasher);
            let hash = hasher.finish();
            memo.insert(index, hash);
            hash
        }
        let mut memo = HashMap::new();
        (0..self.units.len())
            .map(|index| identity(self, index, &mut memo))
            .collect()
    }

    /// Whom each unit is compiled for, walking down from the roots (a unit both the programs
    /// and the build scripts use counts as the programs').
    fn users(&self) -> Vec<User> {
        let mut users: Vec<Option<User>> = vec![None; self.units.len()];
        let mut stack: Vec<(usize, User)> = self
            .roots
            .iter()
            .map(|&root| (root, User::Programs))
            .collect();
        while let Some((index, user)) = stack.pop() {
            let unit = &self.units[index];
            let user = if unit.runs_on_host() {
                User::BuildScripts
            } else {
                user
            };
            if users[index].is_some_and(|seen| seen <= user) {
                continue;
            }
            users[index] = Some(user);
            stack.extend(unit.dependencies.iter().map(|dep| (dep.index, user)));
        }
        users
            .into_iter()
            .map(|user| user.unwrap_or(User::Programs))
            .collect()
    }
}
