//! Port checks before anything starts, naming the process that holds a taken port.

use std::collections::BTreeSet;
use std::fs;
use std::net::TcpListener;

/// The process listening on a port, as `/proc` names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PortHolder {
    pub(crate) pid: i32,
    /// Its command name (`comm`); empty when `/proc` does not say.
    pub(crate) command: String,
}

impl std::fmt::Display for PortHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {}, {}", self.pid, self.command)
    }
}

/// A port 127.0.0.1 cannot bind, with its holder when the OS tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PortInUse {
    pub(crate) port: u16,
    pub(crate) holder: Option<PortHolder>,
}

impl PortInUse {
    /// ` (pid 4711, postgres)`, or nothing when the holder is unknown.
    pub(crate) fn holder_in_parentheses(&self) -> String {
        self.holder
            .as_ref()
            .map(|holder| format!(" ({holder})"))
            .unwrap_or_default()
    }
}

impl std::fmt::Display for PortInUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "port {} is already in use{}",
            self.port,
            self.holder_in_parentheses()
        )
    }
}

impl std::error::Error for PortInUse {}

/// `Ok` if 127.0.0.1:`port` can be bound; otherwise who holds it, when the OS tells.
pub(crate) fn check_free(port: u16) -> Result<(), PortInUse> {
    match TcpListener::bind(("127.0.0.1", port)) {
        Ok(_) => Ok(()),
        Err(_) => Err(PortInUse {
            port,
            holder: holder(port),
        }),
    }
}

/// The kernel's tables of TCP sockets, IPv4 and IPv6.
const TCP_TABLES: [&str; 2] = ["/proc/net/tcp", "/proc/net/tcp6"];

/// Whether something listens on TCP `port`, as `/proc/net/tcp*` says (false where there is
/// no such file).
pub(crate) fn listening(port: u16) -> bool {
    Listeners::now()
        .ports
        .is_some_and(|ports| ports.contains(&port))
}

/// The ports sockets listen on, as `/proc/net/tcp*` lists them, read once: a look at ports
/// that binds none of them, so it cannot take one from a server binding it at that moment
/// (`AMTP_PORTS=auto` looks at every command, while `up` may be starting the stack).
pub(crate) struct Listeners {
    /// `None` where `/proc` does not say (macOS).
    ports: Option<BTreeSet<u16>>,
}

impl Listeners {
    pub(crate) fn now() -> Listeners {
        let tables: Vec<String> = TCP_TABLES
            .iter()
            .filter_map(|path| fs::read_to_string(path).ok())
            .collect();
        let ports = (!tables.is_empty()).then(|| {
            tables
                .iter()
                .flat_map(|table| listening_ports(table))
                .collect()
        });
        Listeners { ports }
    }

    /// `Ok` if no socket listens on `port`, on any address; without the tables, a bind as
    /// [`check_free`] does.
    pub(crate) fn check(&self, port: u16) -> Result<(), PortInUse> {
        match &self.ports {
            None => check_free(port),
            Some(ports) if !ports.contains(&port) => Ok(()),
            Some(_) => Err(PortInUse {
                port,
                holder: holder(port),
            }),
        }
    }
}

/// The process listening on `port`, found through `/proc/net/tcp*` and the fds of `/proc/*`.
fn holder(port: u16) -> Option<PortHolder> {
    let inode = TCP_TABLES
        .iter()
        .filter_map(|path| fs::read_to_string(path).ok())
        .find_map(|table| listening_inode(&table, port))?;
    let target = format!("socket:[{inode}]");
    fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
        let owns = fs::read_dir(entry.path().join("fd"))
            .ok()?
            .flatten()
            .any(|fd| {
                fs::read_link(fd.path()).is_ok_and(|link| link.as_os_str() == target.as_str())
            });
        owns.then(|| PortHolder {
            pid,
            command: crate::os::process::command_name(pid).unwrap_or_default(),
        })
    })
}

/// The `address:port` of every TCP socket a process listens on.
pub(crate) fn listeners_of(pid: i32) -> Vec<String> {
    let inodes: Vec<String> = fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|fd| {
            let link = fs::read_link(fd.path()).ok()?;
            let link = link.to_str()?;
            Some(link.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|path| fs::read_to_string(path).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .filter_map(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    let inode = *fields.get(9)?;
                    let listening = *fields.get(3)? == "0A" && inodes.iter().any(|i| i == inode);
                    listening.then(|| decode_address(fields.get(1)?)).flatten()
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `0100007F:1538` → `127.0.0.1:5432`; IPv6 addresses as `[hex]:port`.
fn decode_address(field: &str) -> Option<String> {
    let (address, port) = field.rsplit_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    if address.len() == 8 {
        let ip = u32::from_str_radix(address, 16).ok()?;
        // /proc prints the network-order address as a host-order integer.
        let ip = std::net::Ipv4Addr::from(ip.to_ne_bytes());
        return Some(format!("{ip}:{port}"));
    }
    Some(format!("[{address}]:{port}"))
}

/// The `st` of a listening socket in a `/proc/net/tcp` table.
const LISTEN: &str = "0A";

/// The listening sockets of a `/proc/net/tcp` table: each one's port and inode.
fn listening_sockets(table: &str) -> impl Iterator<Item = (u16, u64)> + '_ {
    table.lines().skip(1).filter_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if *fields.get(3)? != LISTEN {
            return None;
        }
        let port = u16::from_str_radix(fields.get(1)?.rsplit_once(':')?.1, 16).ok()?;
        Some((port, fields.get(9)?.parse().ok()?))
    })
}

/// The ports of the listening sockets of a `/proc/net/tcp` table.
fn listening_ports(table: &str) -> impl Iterator<Item = u16> + '_ {
    listening_sockets(table).map(|(port, _)| port)
}

/// The inode of the socket listening on `port` in a `/proc/net/tcp` table.
fn listening_inode(table: &str, port: u16) -> Option<u64> {
    listening_sockets(table).find_map(|(listening, inode)| (listening == port).then_some(inode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_of_a_taken_port_is_named() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(listening(port), "the kernel's table shows the listener");
        let err = check_free(port).unwrap_err();
        let holder = err.holder.clone().expect("this process is named");
        assert_eq!(holder.pid, std::process::id() as i32);
        assert_eq!(
            err.to_string(),
            format!(
                "port {port} is already in use (pid {}, {})",
                holder.pid, holder.command
            )
        );
        drop(listener);
        // A child another test forks at this moment holds a copy of the socket until its exec
        // closes it (close-on-exec), so the port may take a moment to be free again.
        let freed = crate::os::poll::wait_until(std::time::Duration::from_secs(2), || {
            check_free(port).is_ok()
        });
        assert!(
            freed,
            "port {port} still taken after the listener was dropped"
        );
    }

    #[test]
    fn a_listening_port_is_seen_without_binding_it() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let err = Listeners::now().check(port).unwrap_err();
        assert_eq!(err.port, port);
        assert_eq!(
            err.holder.map(|holder| holder.pid),
            Some(std::process::id() as i32)
        );
    }

    #[test]
    fn addresses_are_decoded() {
        assert_eq!(
            decode_address("0100007F:1538").as_deref(),
            Some("127.0.0.1:5432")
        );
        assert_eq!(
            decode_address("00000000:1F90").as_deref(),
            Some("0.0.0.0:8080")
        );
    }

    #[test]
    fn listening_sockets_are_found_in_the_table() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
                     \x20  0: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   101        0 4242 1\n";
        assert_eq!(listening_inode(table, 5432), Some(4242));
        assert_eq!(listening_inode(table, 6432), None);
        assert_eq!(listening_ports(table).collect::<Vec<_>>(), [5432]);
    }
}
