//! `cargo xtask wait [SERVICE…] [--timeout 60s]`: returns once the running stack's services
//! (those named, or all it runs) are ready, for a CI step or script that started the stack in
//! the background (`cargo xtask up &`). It reads what the supervisor records (`run/state.json`)
//! and, once that says ready, probes the services as `status` does; it fails at once on what no
//! wait can mend (a service stopped on request, a start that failed), and at the timeout names
//! the service that is not ready and why.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;

use crate::cmd::status;
use crate::os::poll;
use crate::repo::Repo;
use crate::supervisor::run_state::{Phase, RunState, Status, unix_now};

/// `--timeout`'s value: a duration such as `60s`, `2m` or `1m30s`.
pub(crate) fn parse_timeout(text: &str) -> Result<Duration, String> {
    crate::cmd::logs::parse_duration(text)
        .and_then(|delta| delta.to_std().ok())
        .ok_or_else(|| format!("{text:?} is not a duration; give one such as `60s` or `2m`"))
}

/// What `run/state.json` says at one look.
#[derive(Clone, Copy)]
enum Seen<'a> {
    /// A supervisor runs: what it publishes.
    Live(&'a RunState),
    /// None runs: what the last one left, if any, and whether it began after this wait did
    /// (a start of `up &` that failed, not an old one).
    Gone {
        last: Option<&'a RunState>,
        since_wait: bool,
    },
}

/// Where the stack stands, for one look.
#[derive(Debug, PartialEq, Eq)]
enum Look {
    /// Every chosen service is ready (the supervisor says so): these.
    Ready(Vec<String>),
    /// Not yet: why, to say at the timeout.
    NotYet(String),
    /// It will not be: why, said at once.
    Never(String),
}

/// What the supervisor's state says about `services` (all that the stack runs when empty).
/// Pure: the state is read by the caller.
fn look(seen: Seen<'_>, services: &[String]) -> Look {
    let state = match seen {
        Seen::Live(state) => state,
        Seen::Gone { last, since_wait } => {
            // A supervisor that gave up leaves why (`up` reads it the same way).
            return match last.and_then(|last| last.error.as_deref()) {
                Some(why) if since_wait => Look::Never(format!("the stack did not start: {why}")),
                Some(why) => Look::NotYet(format!(
                    "the stack is not running; its last start failed: {why}"
                )),
                None => Look::NotYet(
                    "the stack is not running (no supervisor yet); start it with `cargo xtask \
                     up`"
                    .to_owned(),
                ),
            };
        }
    };
    match state.phase {
        Phase::Starting | Phase::Running => {}
        Phase::Failed | Phase::Stopping | Phase::Stopped => {
            let why = state.error.as_deref().unwrap_or("the stack is stopping");
            return Look::Never(format!("the stack did not start: {why}"));
        }
    }
    let chosen: Vec<_> = if services.is_empty() {
        state
            .units
            .iter()
            .filter(|unit| unit.status != Status::Stopped)
            .collect()
    } else {
        let mut chosen = Vec::new();
        for name in services {
            match state.units.iter().find(|unit| &unit.name == name) {
                Some(unit) => chosen.push(unit),
                None => {
                    return Look::Never(format!(
                        "{name} is not a service of this stack (it runs {})",
                        names(state.units.iter().map(|u| u.name.as_str()))
                    ));
                }
            }
        }
        chosen
    };
    for unit in &chosen {
        match unit.status {
            Status::Ready => {}
            Status::Stopped => {
                return Look::Never(format!(
                    "{} is stopped; start it with `cargo xtask start {}`",
                    unit.name, unit.name
                ));
            }
            Status::Failed if state.phase == Phase::Running => {
                return Look::Never(format!(
                    "{} is {}; see `cargo xtask logs {}`",
                    unit.name,
                    status::not_ready(unit),
                    unit.name
                ));
            }
            _ => {
                return Look::NotYet(format!("{} is {}", unit.name, status::not_ready(unit)));
            }
        }
    }
    Look::Ready(chosen.iter().map(|unit| unit.name.clone()).collect())
}

fn names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names.collect::<Vec<_>>().join(", ")
}

/// `cargo xtask wait`: 0 once ready; an error naming the service and why otherwise.
pub(crate) fn run(repo: &Repo, services: &[String], timeout: Duration) -> anyhow::Result<ExitCode> {
    let began = unix_now();
    let mut last = String::new();
    let outcome = poll::wait_for(timeout, || {
        // The stack may not have been started yet: `up &` reads its configuration first.
        let cfg = match repo.existing_config() {
            Ok(Some(cfg)) => cfg,
            Ok(None) => {
                last = "the stack was never started; start it with `cargo xtask up`".to_owned();
                return None;
            }
            Err(err) => return Some(Err(err)),
        };
        let state = RunState::read(&cfg.state_dir);
        let live = state.as_ref().filter(|state| state.supervisor.is_alive());
        let seen = match live {
            Some(state) => Seen::Live(state),
            None => Seen::Gone {
                last: state.as_ref(),
                since_wait: state
                    .as_ref()
                    .is_some_and(|state| state.started_at >= began),
            },
        };
        match look(seen, services) {
            Look::Never(why) => Some(Err(anyhow::anyhow!(why))),
            Look::NotYet(why) => {
                last = why;
                None
            }
            Look::Ready(names) => {
                // The supervisor saw them ready; a fresh probe (status's) sees that they
                // still answer.
                let state = live.expect("a ready stack has a state");
                let chosen = RunState {
                    units: state
                        .units
                        .iter()
                        .filter(|unit| names.contains(&unit.name))
                        .cloned()
                        .collect(),
                    ..state.clone()
                };
                let unhealthy = status::services(&cfg, &chosen)
                    .into_iter()
                    .find(|service| !service.healthy);
                match unhealthy {
                    None => Some(Ok(names)),
                    Some(service) => {
                        last = format!(
                            "{} is {}: {}",
                            service.name,
                            service.health,
                            service.reason.unwrap_or_default()
                        );
                        None
                    }
                }
            }
        }
    });
    match outcome {
        Some(Ok(names)) => {
            println!("ready: {}", names.join(", "));
            Ok(ExitCode::SUCCESS)
        }
        Some(Err(err)) => Err(err),
        None => bail!("not ready after {timeout:?}: {last}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::status::tests::unit;
    use crate::os::process::ProcessId;
    use crate::supervisor::run_state::UnitState;

    fn state(phase: Phase, units: Vec<UnitState>) -> RunState {
        RunState {
            supervisor: ProcessId::of(std::process::id()).expect("this process"),
            phase,
            error: None,
            started_at: 0,
            units,
            contract: None,
            ports: Default::default(),
        }
    }

    fn named(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn ready_services_are_ready_and_the_others_are_not_yet() {
        let running = state(
            Phase::Starting,
            vec![
                unit("postgres", Status::Ready, None),
                unit("valkey", Status::Starting, Some("spawned")),
                unit("nginx", Status::Stopped, None),
            ],
        );
        assert_eq!(
            look(Seen::Live(&running), &named(&["postgres"])),
            Look::Ready(named(&["postgres"]))
        );
        assert_eq!(
            look(Seen::Live(&running), &[]),
            Look::NotYet("valkey is starting: spawned".into())
        );
        let nothing = Seen::Gone {
            last: None,
            since_wait: false,
        };
        assert!(matches!(look(nothing, &[]), Look::NotYet(why) if why.contains("not running")));
    }

    #[test]
    fn a_stopped_or_failed_service_or_stack_is_never_ready() {
        let running = state(
            Phase::Running,
            vec![
                unit("postgres", Status::Ready, None),
                unit("valkey", Status::Stopped, None),
                unit("garage", Status::Failed, Some("exited (code 1)")),
            ],
        );
        assert_eq!(
            look(Seen::Live(&running), &named(&["valkey"])),
            Look::Never("valkey is stopped; start it with `cargo xtask start valkey`".into())
        );
        assert_eq!(
            look(Seen::Live(&running), &named(&["garage"])),
            Look::Never("garage is failed: exited (code 1); see `cargo xtask logs garage`".into())
        );
        assert!(matches!(
            look(Seen::Live(&running), &named(&["github-standin"])),
            Look::Never(why) if why.starts_with("github-standin is not a service of this stack")
        ));
        let mut failed = state(Phase::Failed, Vec::new());
        failed.error = Some("postgres: initdb failed".into());
        assert_eq!(
            look(Seen::Live(&failed), &[]),
            Look::Never("the stack did not start: postgres: initdb failed".into())
        );
        // Its supervisor gone: a start since the wait began failed; an older one may be
        // followed by the start the wait is waiting for.
        let now = Seen::Gone {
            last: Some(&failed),
            since_wait: true,
        };
        assert_eq!(
            look(now, &[]),
            Look::Never("the stack did not start: postgres: initdb failed".into())
        );
        let before = Seen::Gone {
            last: Some(&failed),
            since_wait: false,
        };
        assert_eq!(
            look(before, &[]),
            Look::NotYet(
                "the stack is not running; its last start failed: postgres: initdb failed".into()
            )
        );
        let mut stopped = state(Phase::Stopped, Vec::new());
        stopped.error = None;
        let down = Seen::Gone {
            last: Some(&stopped),
            since_wait: true,
        };
        assert!(matches!(look(down, &[]), Look::NotYet(why) if why.contains("no supervisor yet")));
    }

    #[test]
    fn a_timeout_is_a_duration() {
        assert_eq!(parse_timeout("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_timeout("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse_timeout("soon").is_err());
    }
}
