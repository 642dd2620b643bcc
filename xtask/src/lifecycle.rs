//! `up`, `down` and `reset`: start the supervisor and watch it until the stack is healthy, or
//! ask it to stop and wait until every process is gone.

use std::collections::BTreeMap;
use std::fs;
use std::io::IsTerminal;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use nix::sys::signal::Signal;

use crate::cli::{Attach, Output};
use crate::config::{Overrides, Secrets, StackConfig};
use crate::control::{self, Request};
use crate::logfile::Echo;
use crate::process::{self, ProcessId};
use crate::repo::Repo;
use crate::run_state::{Phase, RunState, Status, UnitState};
use crate::stack;

/// A file that marks a directory as a state dir of this tool: `down --volumes` deletes only
/// directories that carry it.
const STATE_MARKER: &str = ".amtp-state";
/// How long `down` waits for the supervisor to stop everything.
const DOWN_TIMEOUT: Duration = Duration::from_secs(60);

/// What a second `up` does about services that changed since they started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Recreate {
    /// Restart them, one line each saying why.
    Changed,
    /// Leave them be (`--no-recreate`), saying what changed.
    Never,
}

pub(crate) fn up(
    repo: &Repo,
    services: &[String],
    attach: Attach,
    recreate: Recreate,
) -> anyhow::Result<ExitCode> {
    let began = Instant::now();
    let root = repo.root.as_path();
    let cfg = repo.config_with(&[], Secrets::Generate)?;
    if let Some(state) = RunState::read_live(&cfg.state_dir) {
        match state.phase {
            Phase::Starting => {
                println!(
                    "the stack is starting (supervisor pid {}); waiting until it is ready",
                    state.supervisor.pid
                );
                watch_start(&cfg, state.supervisor, began)?;
                return converge(repo, &cfg, services, recreate);
            }
            Phase::Running => return converge(repo, &cfg, services, recreate),
            Phase::Stopping | Phase::Stopped | Phase::Failed => {
                println!("the stack is stopping; starting it again once it has stopped");
                let processes: Vec<ProcessId> = state.processes().collect();
                if !wait_gone(&processes, DOWN_TIMEOUT) {
                    bail!(
                        "the stack did not stop within {DOWN_TIMEOUT:?}; see {}",
                        cfg.log_file("supervisor").display()
                    );
                }
            }
        }
    }
    clean_leftovers(&cfg)?;
    let marker = cfg.state_dir.join(STATE_MARKER);
    fs::write(&marker, "").with_context(|| format!("cannot write {}", marker.display()))?;
    build_apps(root)?;
    if attach == Attach::Attached {
        render_docs(&cfg);
        return supervise(&cfg, services, Echo::Yes);
    }
    // Beside the start, off its critical path (nginx answers its probe without the site;
    // each page is written whole, by rename); done before `up` returns.
    let docs = std::thread::spawn({
        let cfg = cfg.clone();
        move || render_docs(&cfg)
    });
    let started = start_supervisor(&cfg, Supervision::Detached(services), &[])
        .and_then(|supervisor| watch_start(&cfg, supervisor, began));
    let _ = docs.join();
    started?;
    Ok(ExitCode::SUCCESS)
}

/// `up` on a running stack: builds the apps if their sources changed, then asks the supervisor
/// to start what is not running and to restart what changed; prints the status.
fn converge(
    repo: &Repo,
    cfg: &StackConfig,
    services: &[String],
    recreate: Recreate,
) -> anyhow::Result<ExitCode> {
    build_apps(&repo.root)?;
    let request = Request::Up {
        services: services.to_vec(),
        start: true,
        recreate: recreate == Recreate::Changed,
        env: std::env::vars().collect(),
    };
    control::call(cfg, &request)?;
    match RunState::read_live(&cfg.state_dir) {
        Some(state) => crate::status::print(cfg, &state, Output::Table),
        None => bail!(
            "the supervisor stopped; see {}",
            cfg.log_file("supervisor").display()
        ),
    }
}

/// `restart`, `stop` and `start`: asks the running supervisor and waits for its answer.
pub(crate) fn control(repo: &Repo, request: Request) -> anyhow::Result<ExitCode> {
    let began = Instant::now();
    let cfg = repo.config()?;
    if RunState::read_live(&cfg.state_dir).is_none() {
        bail!("the stack is not running; start it with `cargo xtask up`");
    }
    let (done, services) = match &request {
        Request::Restart { services } => ("restarted", services),
        Request::Stop { services } => ("stopped", services),
        Request::Start { services } => ("started", services),
        Request::Up { services, .. } => ("started", services),
    };
    control::call(&cfg, &request)?;
    println!(
        "{done} {} in {:.2} s",
        services.join(", "),
        began.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs the supervisor (`xtask __supervise`, or `up --attach` in the foreground) with its own
/// stdout and stderr timestamped into `supervisor.log` like every service's lines, shown
/// where they went before as well with [`Echo::Yes`]. An error is printed while the output is
/// still captured, so it lands in the log too.
pub(crate) fn supervise(
    cfg: &StackConfig,
    services: &[String],
    echo: Echo,
) -> anyhow::Result<ExitCode> {
    crate::logfile::set_rotation(crate::logfile::Rotation {
        max_bytes: cfg.log_max_bytes,
        keep: crate::logfile::KEEP,
    });
    fs::create_dir_all(cfg.log_dir())
        .with_context(|| format!("cannot create {}", cfg.log_dir().display()))?;
    let output = crate::logfile::capture_own_output(&cfg.log_file("supervisor"), echo)?;
    let result = crate::supervisor::run(cfg, services);
    if let Err(err) = &result {
        eprintln!("xtask: {err:#}");
    }
    output.finish();
    Ok(if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Renders the docs site nginx serves. A broken page is said loudly but does not stop the
/// stack from starting: nginx serves the last good build (`cargo xtask docs` shows the error).
pub(crate) fn render_docs(cfg: &StackConfig) {
    let root = stack::nginx::docs_root(cfg);
    if let Err(err) = crate::docs::build_site(&cfg.repo_root, &root) {
        eprintln!(
            "warning: the docs site was not rebuilt ({err:#}); nginx serves the last build; \
             fix the page and run `cargo xtask docs --out {}`",
            root.display()
        );
    }
}

/// Builds the workspace's services when their sources changed since the last build.
///
/// Even a no-op `cargo build` takes over a second on a small machine (it fingerprints every
/// dependency), which would double a warm `up`; a scan of the workspace's own sources takes
/// milliseconds. Cargo stays the judge whenever anything is newer.
///
/// `AMTP_SKIP_BUILD=1` runs what is built (a CI job that built before, the integration tests
/// while `watch`'s test edits a source).
pub(crate) fn build_apps(root: &Path) -> anyhow::Result<()> {
    let stamp = apps_built_stamp()?;
    let skip = std::env::var_os("AMTP_SKIP_BUILD").is_some_and(|v| v == "1");
    if apps_are_fresh(root, &stamp) || skip {
        return Ok(());
    }
    if !stamp.exists() {
        println!(
            "building the workspace: the first build takes a few minutes (it compiles every \
             dependency once; `cargo test` and later builds reuse them)"
        );
    }
    let began = SystemTime::now();
    anyhow::ensure!(
        cargo_build_apps(root)?,
        "cannot build the stack's services (see above)"
    );
    record_apps_built(began)
}

/// Builds the workspace's services (`up` and `watch`); false when the build failed (Cargo
/// printed why).
///
/// The same feature unification as `cargo test --workspace`, so the two share every compiled
/// dependency: examples, like tests, turn on the dev-dependencies' features (with `--bins`
/// alone, tokio, reqwest, rmcp and the apps would be compiled a second time). Cargo's own
/// progress on a terminal, never `--quiet`: a build can take minutes.
pub(crate) fn cargo_build_apps(root: &Path) -> anyhow::Result<bool> {
    let status = crate::binaries::cargo(root)
        .args(["build", "--workspace", "--bins", "--examples"])
        .status()
        .context("cannot run cargo build")?;
    Ok(status.success())
}

/// Notes that the services were built from the sources as they were at `began` (before the
/// build: a file saved while it ran still counts as newer). `cargo xtask test` calls it after
/// its `cargo test --workspace` build, which builds the services' binaries too.
pub(crate) fn record_apps_built(began: SystemTime) -> anyhow::Result<()> {
    let stamp = apps_built_stamp()?;
    fs::File::create(&stamp)
        .and_then(|file| file.set_modified(began))
        .with_context(|| format!("cannot write {}", stamp.display()))
}

fn apps_built_stamp() -> anyhow::Result<std::path::PathBuf> {
    Ok(crate::binaries::workspace_target_dir()?.join(APPS_BUILT_STAMP))
}

/// Written next to the binaries after each successful build of the services.
const APPS_BUILT_STAMP: &str = "amtp-apps-built.stamp";

/// True when the services are built and no source of the workspace changed since.
fn apps_are_fresh(root: &Path, stamp: &Path) -> bool {
    let modified = |path: &Path| fs::metadata(path).and_then(|m| m.modified()).ok();
    let binaries_exist = stack::workspace_programs().all(|(_, binary)| {
        crate::binaries::built_by_workspace(binary).is_ok_and(|path| path.is_file())
    });
    let Some(built) = modified(stamp).filter(|_| binaries_exist) else {
        return false;
    };
    let sources = ["apps", "crates"]
        .iter()
        .flat_map(|dir| ignore::WalkBuilder::new(root.join(dir)).build().flatten())
        .map(|entry| entry.into_path())
        .chain([root.join("Cargo.toml"), root.join("Cargo.lock")]);
    sources
        .filter_map(|path| modified(&path))
        .all(|time| time <= built)
}

/// How the supervisor runs beside the command that starts it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Supervision<'a> {
    /// In its own session, so a closed terminal does not stop it (`up`), running only these
    /// services and their dependencies (all when empty).
    Detached(&'a [String]),
    /// As our child with a parent-death signal, so that it dies with us whatever happens
    /// (`cargo xtask test`).
    Child,
}

/// Starts `xtask __supervise` with the same configuration: our environment plus `overrides`.
pub(crate) fn start_supervisor(
    cfg: &StackConfig,
    supervision: Supervision<'_>,
    overrides: &Overrides,
) -> anyhow::Result<ProcessId> {
    let exe = crate::binaries::built_by_workspace(env!("CARGO_BIN_NAME"))?;
    let log = cfg.log_file("supervisor");
    fs::create_dir_all(cfg.log_dir())
        .with_context(|| format!("cannot create {}", cfg.log_dir().display()))?;
    let child = match supervision {
        Supervision::Child => {
            let launch = overrides
                .iter()
                .fold(process::Launch::new(&exe), |launch, (k, v)| {
                    launch.env(k, v)
                })
                .arg("__supervise");
            process::spawn(&launch, &log)?
        }
        Supervision::Detached(services) => {
            let out = fs::File::options()
                .create(true)
                .append(true)
                .open(&log)
                .with_context(|| format!("cannot open {}", log.display()))?;
            let mut command = Command::new(exe);
            command
                .arg("__supervise")
                .args(services)
                .envs(overrides.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(
                    out.try_clone()
                        .with_context(|| format!("cannot open {}", log.display()))?,
                )
                .stderr(out);
            // SAFETY: setsid is async-signal-safe.
            unsafe {
                command.pre_exec(|| nix::unistd::setsid().map(drop).map_err(Into::into));
            }
            command.spawn().context("cannot start the supervisor")?
        }
    };
    ProcessId::of(child.id()).context("the supervisor exited at once")
}

/// Follows the supervisor's progress until the stack is ready, printing each service's time
/// to ready (one live line per service on a terminal).
pub(crate) fn watch_start(
    cfg: &StackConfig,
    supervisor: ProcessId,
    began: Instant,
) -> anyhow::Result<()> {
    let mut display = Display::new(std::io::stderr().is_terminal());
    loop {
        let state = RunState::read(&cfg.state_dir).filter(|s| s.supervisor == supervisor);
        if let Some(state) = &state {
            display.update(state);
            match state.phase {
                Phase::Running => {
                    display.finish();
                    println!("stack ready in {:.2} s", began.elapsed().as_secs_f64());
                    print_drift(state);
                    return Ok(());
                }
                Phase::Failed | Phase::Stopped | Phase::Stopping => {
                    display.finish();
                    wait_gone(&[supervisor], DOWN_TIMEOUT);
                    let error = RunState::read(&cfg.state_dir)
                        .and_then(|s| s.error)
                        .unwrap_or_else(|| "the supervisor stopped".into());
                    bail!("the stack did not start; everything was stopped\n{error}");
                }
                Phase::Starting => {}
            }
        }
        if !supervisor.is_alive() {
            display.finish();
            bail!(
                "the supervisor exited; its log ({}):\n{}",
                cfg.log_file("supervisor").display(),
                process::log_tail(&cfg.log_file("supervisor"), 20)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Differences from the documented contract, said loudly.
fn print_drift(state: &RunState) {
    for unit in &state.units {
        for drift in unit.installed.iter().flat_map(|i| &i.drift) {
            eprintln!("warning: {} differs from the contract: {drift}", unit.name);
        }
    }
}

/// One line per service: indicatif spinners on a terminal, plain lines otherwise.
struct Display {
    multi: Option<MultiProgress>,
    bars: BTreeMap<String, ProgressBar>,
    printed: BTreeMap<String, Status>,
}

impl Display {
    fn new(terminal: bool) -> Display {
        Display {
            multi: terminal.then(MultiProgress::new),
            bars: BTreeMap::new(),
            printed: BTreeMap::new(),
        }
    }

    fn update(&mut self, state: &RunState) {
        for unit in &state.units {
            let line = describe(unit);
            let Some(multi) = &self.multi else {
                let done = matches!(unit.status, Status::Ready | Status::Failed);
                if done && self.printed.get(&unit.name) != Some(&unit.status) {
                    println!("{line}");
                    self.printed.insert(unit.name.clone(), unit.status);
                }
                continue;
            };
            let bar = self.bars.entry(unit.name.clone()).or_insert_with(|| {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {msg}").expect("valid template"),
                );
                bar.enable_steady_tick(Duration::from_millis(80));
                bar
            });
            if unit.status == Status::Ready {
                bar.finish_with_message(line);
            } else {
                bar.set_message(line);
            }
        }
    }

    fn finish(&self) {
        for bar in self.bars.values().filter(|bar| !bar.is_finished()) {
            bar.abandon();
        }
    }
}

fn describe(unit: &UnitState) -> String {
    let version = unit
        .installed
        .as_ref()
        .map(|i| format!(" {}", i.version))
        .unwrap_or_default();
    match unit.status {
        Status::Ready => match (&unit.message, unit.daemon) {
            (Some(message), false) => format!(
                "{:<15} {message} ({} ms)",
                unit.name,
                unit.ready_ms.unwrap_or(0)
            ),
            _ => format!(
                "{:<15} ready in {} ms{version}, 127.0.0.1:{}",
                unit.name,
                unit.ready_ms.unwrap_or(0),
                unit.port.unwrap_or(0)
            ),
        },
        Status::Failed => format!("{:<15} failed", unit.name),
        Status::Stopped => format!("{:<15} not started", unit.name),
        Status::Starting => format!("{:<15} starting{version}", unit.name),
        _ => format!("{:<15} waiting", unit.name),
    }
}

/// What `down` does with the state dir.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Volumes {
    Keep,
    /// `down --volumes` and `reset`: the database, generated passwords and logs go.
    Delete,
}

/// `down` and `reset`: a stack that was never started has nothing to stop.
pub(crate) fn down_if_started(repo: &Repo, volumes: Volumes) -> anyhow::Result<ExitCode> {
    match repo.existing_config()? {
        Some(cfg) => down(&cfg, volumes),
        None => {
            println!("the stack is not running (it was never started): nothing to stop");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `cargo xtask migrate`: the running stack's database by default (straight to Postgres, as
/// `flyway.url` does), `--url` for any other.
pub(crate) fn migrate(
    repo: &Repo,
    args: &amtp_migrate::cli::MigrateArgs,
) -> anyhow::Result<ExitCode> {
    let url = repo
        .config()
        .ok()
        .filter(|cfg| RunState::read_live(&cfg.state_dir).is_some())
        .map(|cfg| stack::migrations::settings(&cfg).url);
    let defaults = amtp_migrate::cli::Defaults {
        url,
        location: repo.root.join("migrations/sql"),
    };
    amtp_migrate::cli::run(args, &defaults)?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn down(cfg: &StackConfig, volumes: Volumes) -> anyhow::Result<ExitCode> {
    let began = Instant::now();
    match RunState::read(&cfg.state_dir) {
        Some(state) if state.supervisor.is_alive() => {
            let processes: Vec<ProcessId> = state.processes().collect();
            state.supervisor.signal(Signal::SIGTERM);
            if !wait_gone(&processes, DOWN_TIMEOUT) {
                bail!(
                    "the stack did not stop within {DOWN_TIMEOUT:?}; see {}",
                    cfg.log_file("supervisor").display()
                );
            }
            let starting = if state.phase == Phase::Starting {
                " (it was still starting: the `up` that started it stops too, and says so)"
            } else {
                ""
            };
            println!(
                "stack stopped in {} ms{starting}",
                began.elapsed().as_millis()
            );
        }
        _ => {
            let cleaned = clean_leftovers(cfg)?;
            println!(
                "the stack is not running{}",
                if cleaned > 0 {
                    format!(" ({cleaned} leftover processes stopped)")
                } else {
                    String::new()
                }
            );
        }
    }
    // The sockets' dir in /tmp, empty once the servers are gone (kept if anything is left);
    // a supervisor that was killed left its control socket.
    control::close(cfg);
    let _ = fs::remove_dir(&cfg.runtime_dir);
    if volumes == Volumes::Delete {
        delete_state(cfg)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// After a crash of the supervisor: stops the processes the state file names, if they are
/// still the very processes it recorded (pid and start time), and nothing else.
fn clean_leftovers(cfg: &StackConfig) -> anyhow::Result<usize> {
    fs::create_dir_all(&cfg.state_dir)
        .with_context(|| format!("cannot create the state dir {}", cfg.state_dir.display()))?;
    let Some(state) = RunState::read(&cfg.state_dir) else {
        return Ok(0);
    };
    let leftovers: Vec<ProcessId> = state.processes().filter(ProcessId::is_alive).collect();
    for process in &leftovers {
        process.signal_group(Signal::SIGKILL);
    }
    wait_gone(&leftovers, Duration::from_secs(5));
    Ok(leftovers.len())
}

fn wait_gone(processes: &[ProcessId], timeout: Duration) -> bool {
    crate::poll::wait_until(timeout, || processes.iter().all(|p| !p.is_alive()))
}

fn delete_state(cfg: &StackConfig) -> anyhow::Result<()> {
    if !cfg.state_dir.exists() {
        return Ok(());
    }
    if !cfg.state_dir.join(STATE_MARKER).exists() {
        bail!(
            "{} does not look like a state dir of this tool (no {STATE_MARKER}); delete it yourself if you mean to",
            cfg.state_dir.display()
        );
    }
    fs::remove_dir_all(&cfg.state_dir)
        .with_context(|| format!("cannot delete {}", cfg.state_dir.display()))?;
    let _ = fs::remove_dir_all(&cfg.runtime_dir);
    println!("deleted {}", cfg.state_dir.display());
    Ok(())
}
