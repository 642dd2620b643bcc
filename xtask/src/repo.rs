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

    pub(crate) fn config_with(
        &self,
        overrides: &Overrides,
        secrets: Secrets,
    ) -> anyhow::Result<StackConfig> {
        StackConfig::load_with(&self.root, &stack::port_vars(), overrides, secrets)
    }
}
