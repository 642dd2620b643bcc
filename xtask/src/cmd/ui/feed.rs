//! What the view learns from the world, each source on a thread of its own sending
//! [`Update`]s to the terminal loop: the supervisor's state file with each group's CPU and
//! memory (4×/s), `status`'s probes (2×/s, so a probe that hangs holds back only the health
//! column), a request's replies, `verify`'s checks and `up`'s output. None of it signals a
//! process: requests go to the supervisor's control socket, as `restart` sends them.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use crate::cmd::status::{self, ServiceStatus};
use crate::config::StackConfig;
use crate::os::usage::{Sampler, Usage};
use crate::stack::{self, UNITS, check};
use crate::supervisor::run_state::{RunState, Status, unix_now};
use crate::supervisor::socket::{self, Request};

use super::model::{Row, Stack, Verb};

/// How often the state file and the groups' usage are read.
const STATE_INTERVAL: Duration = Duration::from_millis(250);
/// How often `status`'s probes run (each at most its own timeout).
const PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// How long a starting daemon's port gets to accept, to tell "listening" from "spawned".
const LISTEN_CHECK: Duration = Duration::from_millis(20);

pub(crate) enum Update {
    Stack {
        stack: Stack,
        rows: Vec<Row>,
    },
    Health(Vec<ServiceStatus>),
    /// A line of the supervisor's answer to the request `id`.
    Progress {
        id: u64,
        line: String,
    },
    /// The request `id` is done: what to say about it.
    Finished {
        id: u64,
        notice: String,
    },
    /// `verify`'s table, or why it could not run.
    Verified(Vec<String>),
    /// A line `up` printed (`up --ui`).
    Started(String),
}

/// Starts the threads that read the state file and probe the services; they end when the
/// loop is gone.
pub(crate) fn watch(cfg: &StackConfig, updates: &Sender<Update>) {
    std::thread::spawn({
        let (cfg, updates) = (cfg.clone(), updates.clone());
        move || {
            let mut sampler = Sampler::default();
            every(STATE_INTERVAL, || {
                let state = RunState::read_live(&cfg.state_dir);
                let groups: Vec<i32> = state
                    .iter()
                    .flat_map(|s| s.units.iter().filter_map(|u| u.pid.map(|p| p.pid)))
                    .collect();
                let usage = sampler.sample(&groups);
                let stack = match &state {
                    Some(state) => Stack::Running {
                        phase: format!("{:?}", state.phase).to_lowercase(),
                        supervisor: state.supervisor.pid,
                        contract: state.contract.as_ref().map(ToString::to_string),
                    },
                    None => Stack::NotRunning,
                };
                let rows = rows(&cfg, state.as_ref(), &usage);
                updates.send(Update::Stack { stack, rows }).is_ok()
            });
        }
    });
    std::thread::spawn({
        let (cfg, updates) = (cfg.clone(), updates.clone());
        move || {
            every(PROBE_INTERVAL, || {
                match RunState::read_live(&cfg.state_dir) {
                    Some(state) => updates
                        .send(Update::Health(status::services(&cfg, &state)))
                        .is_ok(),
                    None => true,
                }
            });
        }
    });
}

/// Runs `tick` every `interval` (or as soon as it is done, when it took longer) until it
/// returns false.
fn every(interval: Duration, mut tick: impl FnMut() -> bool) {
    loop {
        let began = Instant::now();
        if !tick() {
            return;
        }
        std::thread::sleep(interval.saturating_sub(began.elapsed()));
    }
}

/// The table's rows: each unit of the state file, or before there is one (`up --ui` builds
/// first) each unit of the table this configuration runs, waiting.
pub(crate) fn rows(
    cfg: &StackConfig,
    state: Option<&RunState>,
    usage: &HashMap<i32, Usage>,
) -> Vec<Row> {
    let Some(state) = state else {
        return UNITS
            .iter()
            .filter(|unit| (unit.enabled)(cfg))
            .map(|unit| Row {
                name: unit.name.to_owned(),
                status: Status::Waiting,
                pid: None,
                ports: unit.ports().into_iter().map(|var| cfg.port(var)).collect(),
                uptime_s: None,
                restarts: 0,
                message: None,
                waiting_on: Vec::new(),
                listening: false,
                usage: None,
            })
            .collect();
    };
    let now = unix_now();
    let ready = |name: &str| {
        state
            .units
            .iter()
            .any(|u| u.name == name && u.status == Status::Ready)
    };
    state
        .units
        .iter()
        .map(|unit| {
            let row = stack::unit(&unit.name);
            let pid = unit.pid.filter(|p| p.is_alive()).map(|p| p.pid);
            // The port it listens on first (it may not have moved yet), then the others.
            let more = row.map(|r| r.ports()).unwrap_or_default();
            let ports = unit
                .port
                .into_iter()
                .chain(more.into_iter().skip(1).map(|var| cfg.port(var)))
                .collect();
            let waiting_on = match (unit.status, row) {
                (Status::Waiting, Some(row)) => row
                    .depends_on
                    .iter()
                    .filter(|name| !ready(name))
                    .map(|name| (*name).to_owned())
                    .collect(),
                _ => Vec::new(),
            };
            let listening =
                unit.status == Status::Starting && pid.is_some() && unit.port.is_some_and(accepts);
            Row {
                name: unit.name.clone(),
                status: unit.status,
                pid,
                ports,
                uptime_s: unit
                    .started_at
                    .filter(|_| unit.daemon && pid.is_some())
                    .map(|t| now.saturating_sub(t)),
                restarts: unit.restarts,
                message: unit.message.clone(),
                waiting_on,
                listening,
                usage: pid.and_then(|pid| usage.get(&pid).copied()),
            }
        })
        .collect()
}

/// Whether something accepts connections on the port (every listener is on 127.0.0.1).
fn accepts(port: u16) -> bool {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&address, LISTEN_CHECK).is_ok()
}

/// Sends `restart`/`stop`/`start SERVICE` to the supervisor, as those commands do, on a
/// thread; its lines and its end come back as updates of `id`.
pub(crate) fn request(
    cfg: &StackConfig,
    updates: &Sender<Update>,
    id: u64,
    verb: Verb,
    service: String,
) {
    let (cfg, updates) = (cfg.clone(), updates.clone());
    std::thread::spawn(move || {
        let began = Instant::now();
        let services = vec![service.clone()];
        let request = match verb {
            Verb::Restart => Request::Restart { services },
            Verb::Stop => Request::Stop { services },
            Verb::Start => Request::Start { services },
        };
        let result = socket::call_with(&cfg, &request, |line| {
            let _ = updates.send(Update::Progress {
                id,
                line: line.to_owned(),
            });
        });
        let command = verb.command();
        let notice = match result {
            Ok(()) => format!(
                "{command} {service}: done in {:.2} s",
                began.elapsed().as_secs_f64()
            ),
            Err(err) => format!("{command} {service} failed: {err:#}"),
        };
        let _ = updates.send(Update::Finished { id, notice });
    });
}

/// Runs `verify`'s checks on a thread; the table comes back as an update.
pub(crate) fn verify(cfg: &StackConfig, updates: &Sender<Update>) {
    let (cfg, updates) = (cfg.clone(), updates.clone());
    std::thread::spawn(move || {
        let lines = match RunState::read_live(&cfg.state_dir) {
            Some(state) => {
                let checks = crate::cmd::verify::live_checks(&cfg, &state);
                let summary = check::ContractSummary::of(&checks).to_string();
                std::iter::once(summary)
                    .chain(crate::cmd::verify::table(&checks))
                    .collect()
            }
            None => vec!["the stack is not running; nothing to verify".to_owned()],
        };
        let _ = updates.send(Update::Verified(lines));
    });
}

/// Sends each line `output` gives as [`Update::Started`] (`up`'s stdout and stderr).
pub(crate) fn lines_of(output: impl Read + Send + 'static, updates: &Sender<Update>) {
    let updates = updates.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            if updates.send(Update::Started(line)).is_err() {
                return;
            }
        }
    });
}
