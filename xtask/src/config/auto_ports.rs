//! `AMTP_PORTS=auto`: ports that find themselves, so that two checkouts of the repository (two
//! worktrees, two coding agents) run side by side without anyone picking ports.
//!
//! Each state dir owns a *block* of [`BLOCK_SIZE`] consecutive ports whose place follows from a
//! hash of the state dir's path (the same FNV-1a as its socket dir): the same checkout gets the
//! same ports every time, and another checkout almost always others. The port variables take
//! the block's ports in the unit table's order (`cargo xtask __port-vars`). A block is used only
//! when no socket listens on a port the stack takes from it (read from `/proc`, never by
//! binding it, which could take it from a server of a stack starting at that moment; a port
//! bound and not listening is found by the start's own check); else the next block is tried, in
//! the same order for everyone, and `up` says which block was skipped and why. A variable the
//! user sets still wins, and is not taken from the block.
//!
//! Once a stack runs, its ports are the ones its supervisor recorded (`run/state.json`): a port
//! of the running stack is not free, yet it is this stack's.

use std::path::Path;

use crate::config::PortVar;
use crate::os::ports::{Listeners, PortInUse};
use crate::supervisor::run_state::RunState;

/// The variable that turns it on (`.env` or the environment): `AMTP_PORTS=auto`.
pub(crate) const VAR: &str = "AMTP_PORTS";

/// Ports per block: the 12 port variables of the table, with room for a few more.
pub(crate) const BLOCK_SIZE: u16 = 20;

/// The first port of the first block: above the ports development servers usually take
/// (3000, 5432, 8080, …), so that a block rarely meets one.
const FIRST_PORT: u16 = 20000;

/// Blocks from [`FIRST_PORT`] up to 32000: below Linux's ephemeral range (32768–60999), from
/// which the kernel picks the local ports of outgoing connections.
const BLOCKS: u16 = 600;

/// How many blocks are tried before giving up.
const TRIES: u16 = 10;

/// The first port of the block tried at `attempt` (0, 1, …) for `state_dir`: its home block
/// from the path's hash, then the blocks after it, wrapping around. Pure.
pub(crate) fn block_start(state_dir: &Path, attempt: u16) -> u16 {
    let home = (super::path_hash(state_dir) % u64::from(BLOCKS)) as u16;
    FIRST_PORT + ((home + attempt) % BLOCKS) * BLOCK_SIZE
}

/// The port of each of `wanted` in the block at `start`: its place among `all` (the table's
/// port variables, in order), so a variable keeps its port whichever others the user sets.
pub(crate) fn ports_in_block(
    start: u16,
    all: &[PortVar],
    wanted: &[PortVar],
) -> Vec<(&'static str, u16)> {
    wanted
        .iter()
        .map(|port| {
            let place = all
                .iter()
                .position(|p| p.var == port.var)
                .expect("a port variable of the table");
            (port.var, start + place as u16)
        })
        .collect()
}

/// Where the ports of `AMTP_PORTS=auto` came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The running stack's, as its supervisor recorded them.
    Running,
    /// The block at `start`, after the blocks in `skipped` were found taken.
    Block { start: u16, skipped: Vec<Skipped> },
}

/// A block passed over: the first port of it that was not free.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Skipped {
    pub(crate) start: u16,
    pub(crate) var: &'static str,
    pub(crate) in_use: PortInUse,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Running => write!(f, "{VAR}=auto: the running stack's ports"),
            Origin::Block { start, skipped } => {
                for skip in skipped {
                    writeln!(
                        f,
                        "{VAR}=auto: block {}-{} is taken ({} for {}); trying the next",
                        skip.start,
                        skip.start + BLOCK_SIZE - 1,
                        skip.in_use,
                        skip.var
                    )?;
                }
                write!(
                    f,
                    "{VAR}=auto: ports {start}-{} (this state dir's block{})",
                    start + BLOCK_SIZE - 1,
                    if skipped.is_empty() {
                        ""
                    } else {
                        ", moved past taken ones"
                    }
                )
            }
        }
    }
}

/// The ports of `wanted` (the port variables the user did not set) for the stack in
/// `state_dir`: the running stack's when it runs, else the first free block.
pub(super) fn resolve(
    state_dir: &Path,
    all: &[PortVar],
    wanted: &[PortVar],
) -> anyhow::Result<(Vec<(&'static str, u16)>, Origin)> {
    if let Some(state) = RunState::read_live(state_dir) {
        let recorded: Option<Vec<(&'static str, u16)>> = wanted
            .iter()
            .map(|port| Some((port.var, *state.ports.get(port.var)?)))
            .collect();
        if let Some(ports) = recorded {
            return Ok((ports, Origin::Running));
        }
    }
    let listeners = Listeners::now();
    let mut skipped = Vec::new();
    for attempt in 0..TRIES {
        let start = block_start(state_dir, attempt);
        let ports = ports_in_block(start, all, wanted);
        let taken = ports
            .iter()
            .find_map(|&(var, port)| listeners.check(port).err().map(|in_use| (var, in_use)));
        match taken {
            None => return Ok((ports, Origin::Block { start, skipped })),
            Some((var, in_use)) => skipped.push(Skipped { start, var, in_use }),
        }
    }
    let first = block_start(state_dir, 0);
    anyhow::bail!(
        "{VAR}=auto found no free block of ports in {TRIES} blocks from {first}: each had a port \
         in use (the last: {}); stop what holds them, or set the port variables yourself \
         (`cargo xtask __port-vars` lists them)",
        skipped
            .last()
            .map(|s| format!("{} for {}", s.in_use, s.var))
            .unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn a_state_dir_always_gets_the_same_block_and_the_next_one_after_it() {
        let dir = Path::new("/home/ann/src/amtp/.amtp");
        assert_eq!(block_start(dir, 0), block_start(dir, 0));
        assert_eq!(block_start(dir, 1), block_start(dir, 0) + BLOCK_SIZE);
        for attempt in 0..BLOCKS * 2 {
            let start = block_start(dir, attempt);
            assert!(start >= FIRST_PORT, "{start}");
            assert!(
                start + BLOCK_SIZE - 1 < 32768,
                "{start} reaches the ephemeral range"
            );
            assert_eq!(
                (start - FIRST_PORT) % BLOCK_SIZE,
                0,
                "{start} is not a block's start"
            );
        }
        assert_eq!(
            block_start(dir, BLOCKS),
            block_start(dir, 0),
            "no wrap-around"
        );
    }

    #[test]
    fn two_checkouts_get_different_blocks() {
        let starts: std::collections::BTreeSet<u16> = (0..20)
            .map(|n| block_start(&PathBuf::from(format!("/work/wt-{n}/.amtp")), 0))
            .collect();
        // 20 paths in 600 blocks: a collision or two is possible, never many.
        assert!(starts.len() >= 18, "{starts:?}");
        assert_ne!(
            block_start(Path::new("/work/main/.amtp"), 0),
            block_start(Path::new("/work/wt-autoports/.amtp"), 0)
        );
    }

    #[test]
    fn a_variable_keeps_its_place_in_the_block_whichever_others_are_set() {
        let all = crate::stack::port_vars();
        assert!(
            all.len() <= usize::from(BLOCK_SIZE),
            "{} port variables no longer fit a block of {BLOCK_SIZE}; make blocks larger",
            all.len()
        );
        let every = ports_in_block(24000, &all, &all);
        assert_eq!(every.first(), Some(&(all[0].var, 24000)));
        let ports: Vec<u16> = every.iter().map(|(_, port)| *port).collect();
        assert_eq!(ports, (24000..24000 + all.len() as u16).collect::<Vec<_>>());
        let some = ports_in_block(24000, &all, &all[3..5]);
        assert_eq!(some, every[3..5]);
    }

    #[test]
    fn a_block_with_a_port_in_use_is_passed_over_for_the_next() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path();
        let all = crate::stack::port_vars();
        let home = block_start(dir, 0);
        // Someone holds the home block's third port (if someone else does already, so be it).
        let _held = std::net::TcpListener::bind(("127.0.0.1", home + 2));
        let (ports, origin) = resolve(dir, &all, &all).unwrap();
        let Origin::Block { start, skipped } = origin else {
            panic!("{origin:?}");
        };
        assert_ne!(start, home);
        assert_eq!(skipped[0].start, home);
        assert_eq!(ports, ports_in_block(start, &all, &all));
        assert_eq!(
            resolve(dir, &all, &all).unwrap().0,
            ports,
            "another look, another block"
        );
    }

    #[test]
    fn a_skipped_block_is_said_with_its_holder() {
        let origin = Origin::Block {
            start: 20040,
            skipped: vec![Skipped {
                start: 20020,
                var: "VALKEY_PORT",
                in_use: PortInUse {
                    port: 20022,
                    holder: None,
                },
            }],
        };
        assert_eq!(
            origin.to_string(),
            "AMTP_PORTS=auto: block 20020-20039 is taken (port 20022 is already in use for \
             VALKEY_PORT); trying the next\nAMTP_PORTS=auto: ports 20040-20059 (this state dir's \
             block, moved past taken ones)"
        );
    }
}
