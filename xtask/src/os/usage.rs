//! CPU and memory of process groups, read from `/proc` (Linux): each daemon runs in a group
//! of its own, and a server that forks (Postgres' backends) is counted whole. Elsewhere no
//! usage is known and the callers show none.

use std::collections::HashMap;
use std::time::Instant;

/// What a process group uses now.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Usage {
    /// Percent of one CPU since the previous sample (`None` on the first).
    pub(crate) cpu_percent: Option<f64>,
    /// Resident memory of all its processes.
    pub(crate) rss_bytes: u64,
}

/// The clock ticks `/proc/<pid>/stat` counts CPU time in: the kernel's `USER_HZ`, 100 on every
/// architecture Linux exports it for.
const TICKS_PER_SECOND: f64 = 100.0;

/// Samples groups again and again; CPU is the time used between two samples.
#[derive(Default)]
pub(crate) struct Sampler {
    previous: HashMap<i32, (u64, Instant)>,
}

/// One process of a group: its CPU ticks so far and its resident memory.
struct Process {
    group: i32,
    ticks: u64,
    rss_bytes: u64,
}

impl Sampler {
    /// The usage of each of `groups` (process group ids) that has a live process.
    pub(crate) fn sample(&mut self, groups: &[i32]) -> HashMap<i32, Usage> {
        let now = Instant::now();
        let mut totals: HashMap<i32, (u64, u64)> = HashMap::new();
        for process in processes_in(groups) {
            let total = totals.entry(process.group).or_default();
            total.0 += process.ticks;
            total.1 += process.rss_bytes;
        }
        let usage = totals
            .iter()
            .map(|(&group, &(ticks, rss_bytes))| {
                let cpu_percent = self.previous.get(&group).and_then(|&(before, then)| {
                    let seconds = now.duration_since(then).as_secs_f64();
                    (seconds > 0.0).then(|| {
                        ticks.saturating_sub(before) as f64 / TICKS_PER_SECOND / seconds * 100.0
                    })
                });
                let usage = Usage {
                    cpu_percent,
                    rss_bytes,
                };
                (group, usage)
            })
            .collect();
        self.previous = totals
            .into_iter()
            .map(|(group, (ticks, _))| (group, (ticks, now)))
            .collect();
        usage
    }
}

#[cfg(target_os = "linux")]
fn processes_in(groups: &[i32]) -> Vec<Process> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            entry.file_name().to_str()?.parse::<u32>().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let (group, ticks) = group_and_ticks(&stat)?;
            if !groups.contains(&group) {
                return None;
            }
            let status = std::fs::read_to_string(entry.path().join("status")).ok()?;
            Some(Process {
                group,
                ticks,
                rss_bytes: rss_bytes(&status).unwrap_or(0),
            })
        })
        .collect()
}

#[cfg(not(target_os = "linux"))]
fn processes_in(_groups: &[i32]) -> Vec<Process> {
    Vec::new()
}

/// The process group and the user plus system CPU ticks of a `/proc/<pid>/stat` line; the
/// command name in parentheses may hold spaces and parentheses, so fields count from the last
/// `)`. A zombie counts for nothing.
fn group_and_ticks(stat: &str) -> Option<(i32, u64)> {
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    let group = fields.get(2)?.parse().ok()?;
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    Some((group, user + system))
}

/// `VmRSS` of a `/proc/<pid>/status` (kernel threads have none).
fn rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_and_status_lines_give_group_ticks_and_memory() {
        let stat = "4711 (postgres: a (b)) S 1 4711 4711 0 -1 4194560 120 0 0 0 \
                    250 50 0 0 20 0 1 0 1234 1000 200 18446744073709551615";
        assert_eq!(group_and_ticks(stat), Some((4711, 300)));
        let zombie = "4712 (x) Z 1 4711 4711 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 1 0 0 0";
        assert_eq!(group_and_ticks(zombie), None);
        let status = "Name:\tpostgres\nVmPeak:\t  9000 kB\nVmRSS:\t   2048 kB\n";
        assert_eq!(rss_bytes(status), Some(2 * 1024 * 1024));
        assert_eq!(rss_bytes("Name:\tkthreadd\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_group_uses_memory_and_cpu_is_known_from_the_second_sample() {
        let group = nix::unistd::getpgrp().as_raw();
        let mut sampler = Sampler::default();
        let first = sampler.sample(&[group])[&group];
        assert!(first.rss_bytes > 0, "{first:?}");
        assert_eq!(first.cpu_percent, None);
        let second = sampler.sample(&[group])[&group];
        assert!(
            second.cpu_percent.is_some_and(|cpu| cpu >= 0.0),
            "{second:?}"
        );
    }
}
