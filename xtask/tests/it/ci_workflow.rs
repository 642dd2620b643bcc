//! `.github/workflows/ci.yml`, the workflow teams drop into their hosted runners, cannot run
//! here; it is checked against the GitHub Actions workflow schema with `action-validator`
//! instead. A missing validator fails the test with the command that installs it.

use std::io::ErrorKind;
use std::path::Path;
use std::process::{Command, Output};

use crate::util::{describe, repo_root};

/// What installs the validator (the npm build needs no compiler; `cargo install
/// action-validator` gives the same program).
const INSTALL: &str = "npm install -g @action-validator/cli@0.6.0 @action-validator/core@0.6.0";

fn validate(workflow: &Path) -> Output {
    match Command::new("action-validator").arg(workflow).output() {
        Ok(output) => output,
        Err(err) if err.kind() == ErrorKind::NotFound => {
            panic!("action-validator not found; install it with `{INSTALL}`")
        }
        Err(err) => panic!("cannot run action-validator: {err}"),
    }
}

#[test]
fn ci_workflow_matches_the_workflow_schema() {
    let workflow = repo_root().join(".github/workflows/ci.yml");
    assert!(workflow.is_file(), "{} is missing", workflow.display());
    let output = validate(&workflow);
    assert!(
        output.status.success(),
        "action-validator rejects {}:\n{}",
        workflow.display(),
        describe(&output)
    );
}

/// The check above means something only if the validator rejects a broken workflow.
#[test]
fn action_validator_rejects_a_broken_workflow() {
    let dir = std::env::temp_dir().join(format!("amtp-ci-workflow-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    let broken = dir.join("broken.yml");
    // `step` instead of `steps`: not a property of a job.
    std::fs::write(
        &broken,
        "name: broken\non: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    step:\n      - run: true\n",
    )
    .expect("write broken workflow");
    let output = validate(&broken);
    std::fs::remove_dir_all(&dir).expect("remove temp dir");
    assert!(
        !output.status.success(),
        "action-validator accepted a job without `steps`:\n{}",
        describe(&output)
    );
}
