//! What every command starts from: the repository, and its configuration read with the unit
//! table's port variables.

use std::path::{Path, PathBuf};

use crate::config::{Overrides, Secrets, StackConfig};
use crate::stack;

pub(crate) struct Repo {
    pub(crate) root: PathBuf,
}

impl Repo {
    /// The repository root: the xtask crate lives in `<root>/xtask`.
    pub(crate) fn new() -> Repo {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("xtask lives one level below the repository root")
            .to_owned();
        Repo { root }
    }

    /// The configuration of a stack that was started at least once.
    pub(crate) fn config(&self) -> anyhow::Result<StackConfig> {
        self.config_with(&[], Secrets::MustExist)
    }

    /// `None` when the stack was never started, which is simply a stack that is not running.
    pub(crate) fn existing_config(&self) -> anyhow::Result<Option<StackConfig>> {
        StackConfig::load_existing(&self.root, &stack::port_vars())
    }

    /// The stack that `down`, `stop`, `start` and `restart` reach through its supervisor,
    /// which keeps the configuration it was started with, and whose files `logs` reads: `None`
    /// when it was never started.
    /// When the configuration cannot be read now (a `.env` with the passwords deleted, a bad
    /// setting), the stack is still found by its state dir, and a warning says what is wrong.
    pub(crate) fn started_stack(&self) -> anyhow::Result<Option<StackConfig>> {
        let err = match self.existing_config() {
            Ok(found) => return Ok(found),
            Err(err) => err,
        };
        // A `.env` that cannot be read may name the state dir: then its error stands.
        let state_dir = StackConfig::state_dir_from(&self.root, std::env::vars())?;
        if !crate::config::was_started(&state_dir) {
            return Err(err);
        }
        eprintln!(
            "xtask: warning: {err:#}\nxtask: going on with the stack in {} as it was started",
            state_dir.display()
        );
        Ok(Some(StackConfig::located(&self.root, state_dir)))
    }

    pub(crate) fn config_with(
        &self,
        overrides: &Overrides,
        secrets: Secrets,
    ) -> anyhow::Result<StackConfig> {
        StackConfig::load_with(&self.root, &stack::port_vars(), overrides, secrets)
    }
}
