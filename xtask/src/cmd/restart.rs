//! `cargo xtask restart|stop|start SERVICE…`: asks the running supervisor and waits for its
//! answer.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::bail;

use crate::repo::Repo;
use crate::supervisor::run_state::RunState;
use crate::supervisor::socket::{self, Request};

/// `restart`, `stop` and `start`: asks the running supervisor and waits for its answer.
pub(crate) fn run(repo: &Repo, request: Request) -> anyhow::Result<ExitCode> {
    let began = Instant::now();
    let running = repo
        .started_stack()?
        .filter(|cfg| RunState::read_live(&cfg.state_dir).is_some());
    let Some(cfg) = running else {
        bail!("the stack is not running; start it with `cargo xtask up`");
    };
    let (done, services) = match &request {
        Request::Restart { services } => ("restarted", services),
        Request::Stop { services } => ("stopped", services),
        Request::Start { services } => ("started", services),
        Request::Up { services, .. } => ("started", services),
    };
    socket::call(&cfg, &request)?;
    println!(
        "{done} {} in {:.2} s",
        services.join(", "),
        began.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
