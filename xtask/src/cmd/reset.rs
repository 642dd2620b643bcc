//! `cargo xtask reset SERVICE`: empties one service's data, after a yes, leaving the other
//! services and their data alone. On a running stack the service (and what depends on it) is
//! stopped, its data dirs swapped for nothing, and started again: Postgres makes a fresh
//! cluster and the migrations run again, Garage a fresh node with its bucket and key. (`reset`
//! alone, which deletes the whole state dir, is `down --volumes`: cmd/down.rs.)

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::bail;

use crate::cmd::snapshot::swap::{self, Part, Pause};
use crate::repo::Repo;
use crate::stack;

/// `reset SERVICE`'s value parser: the units that keep data on disk.
pub(crate) fn service_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(
        crate::cmd::snapshot::data_units().map(|unit| unit.name),
    )
}

pub(crate) fn run(repo: &Repo, service: &str, yes: bool) -> anyhow::Result<ExitCode> {
    let unit = stack::unit(service).expect("clap checked the service's name");
    let Some(cfg) = repo.existing_config()? else {
        println!("the stack was never started: {service} has no data to delete");
        return Ok(ExitCode::SUCCESS);
    };
    if !yes {
        confirm(service)?;
    }
    let began = Instant::now();
    let _one_at_a_time = swap::exclusive(&cfg)?;
    swap::finish_interrupted(&cfg)?;
    let parts: Vec<Part> = unit
        .data_dirs(&cfg)
        .into_iter()
        .map(|live| Part::new(live, None))
        .collect();
    let pause = Pause::stop(&cfg, &[service])?;
    let ran = pause.stopped(service);
    let started = pause.services().join(", ");
    swap::replace(&cfg, &parts, pause)?;
    if ran {
        println!(
            "reset {service} in {:.2} s: its data is new; started again: {started}",
            began.elapsed().as_secs_f64()
        );
    } else {
        println!("deleted {service}'s data; its next start (`cargo xtask up`) makes it afresh");
    }
    Ok(ExitCode::SUCCESS)
}

/// Asks on the terminal; without one, refuses and names `--yes`.
fn confirm(service: &str) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "reset {service} deletes its data for good and asks first, but there is no terminal \
             to ask on; pass --yes to go ahead without asking"
        );
    }
    print!(
        "reset {service}: delete all of its data for good (`cargo xtask snapshot` keeps a copy \
         first)? [y/N] "
    );
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if !matches!(answer.trim().to_lowercase().as_str(), "y" | "yes") {
        bail!("reset {service} cancelled: nothing was deleted");
    }
    Ok(())
}
