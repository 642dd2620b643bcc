//! The docs site nginx serves. Until the documentation issue lands this renders a placeholder
//! page; the files are made readable by every user (the seed's `chmod -R a+rX` rule).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::Context;

pub(crate) fn build_site(_repo_root: &Path, out: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    fs::write(
        out.join("index.html"),
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>AMTP native dev stack</title></head>\n\
         <body><h1>AMTP native dev stack</h1><p>The documentation site is not built yet.</p></body></html>\n",
    )?;
    fs::set_permissions(out, fs::Permissions::from_mode(0o755))?;
    fs::set_permissions(out.join("index.html"), fs::Permissions::from_mode(0o644))?;
    Ok(())
}
