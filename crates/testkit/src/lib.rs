//! Helpers shared by the workspace's integration tests.
//!
//! Tests that need the whole stack get it from `cargo xtask test`, which exports the stack's
//! URLs. Tests that must break Valkey on purpose (stop it, fill it, change its password) start
//! their own throwaway server with [`ValkeyServer`], so they never disturb the shared stack.
//!
//! Nothing here skips a test: a missing server is a panic that says how to get one.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Environment variable through which `cargo xtask test` names the Valkey (or redis-server)
/// binary of the stack under test.
pub const VALKEY_BIN_ENV: &str = "AMTP_VALKEY_SERVER_BIN";

/// Reads a variable that `cargo xtask test` exports, failing the test with the fix when absent.
pub fn stack_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: this test needs the isolated stack; run it via `cargo xtask test` \
             (or export the variables printed by `cargo xtask env` for a running stack)"
        )
    })
}

/// Ports handed out by [`free_port`]: below Linux's ephemeral range (32768–60999), where the
/// kernel picks the local ports of outgoing connections.
const TEST_PORTS: std::ops::Range<u16> = 20000..32000;

/// A port on 127.0.0.1 that nothing uses right now, distinct from the ports this process got
/// before.
///
/// Not `bind(127.0.0.1:0)`: that port comes from the ephemeral range, where any outgoing
/// connection of a test running in parallel may take it before the server binds it. The walk
/// starts at an offset of the pid, so that test processes running at once pick apart.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let span = u32::from(TEST_PORTS.end - TEST_PORTS.start);
    let offset = std::process::id().wrapping_mul(7919) % span;
    (0..span)
        .map(|_| NEXT.fetch_add(1, Ordering::Relaxed))
        .map(|n| TEST_PORTS.start + ((offset + n) % span) as u16)
        .find(|port| TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("no free port on 127.0.0.1 in 20000..32000")
}

/// The valkey-server (or redis-server) binary the tests should run.
pub fn valkey_binary() -> PathBuf {
    if let Ok(path) = std::env::var(VALKEY_BIN_ENV) {
        return PathBuf::from(path);
    }
    ["valkey-server", "redis-server"]
        .iter()
        .find_map(|name| which_in_path(name))
        .unwrap_or_else(|| {
            panic!(
                "no valkey-server or redis-server found: run the tests via `cargo xtask test`, \
                 inside `nix develop`, or `apt-get install redis-server`"
            )
        })
}

fn which_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A throwaway Valkey on a free loopback port, killed when dropped.
pub struct ValkeyServer {
    pub port: u16,
    pub password: String,
    extra_args: Vec<String>,
    child: Option<Child>,
}

impl ValkeyServer {
    /// Starts a server with the contract's flags and the given password.
    pub fn start(password: &str) -> Self {
        Self::start_with(password, &[])
    }

    /// Starts a server with extra `--flag value` arguments after the contract's ones
    /// (later flags win, so `["--maxmemory-policy", "noeviction"]` overrides the default).
    pub fn start_with(password: &str, extra_args: &[&str]) -> Self {
        let mut server = ValkeyServer {
            port: free_port(),
            password: password.to_owned(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        server.restart();
        server
    }

    /// `redis://` URL with the password, for clients.
    pub fn url(&self) -> String {
        format!("redis://:{}@127.0.0.1:{}/", self.password, self.port)
    }

    /// Kills the server (SIGKILL) and waits for it; the port stays reserved for [`Self::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and waits until it answers.
    pub fn restart(&mut self) {
        self.stop();
        let port = self.port.to_string();
        let mut args: Vec<&str> = vec![
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--requirepass",
            &self.password,
            "--maxmemory",
            "512mb",
            "--maxmemory-policy",
            "allkeys-lru",
        ];
        args.extend(self.extra_args.iter().map(String::as_str));
        let child = Command::new(valkey_binary())
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn valkey-server");
        self.child = Some(child);
        self.wait_ready();
    }

    /// Sends one command (RESP) and returns the raw first reply line, e.g. `+OK` or `-ERR ...`.
    pub fn command(&self, args: &[&str]) -> String {
        self.try_command(args)
            .unwrap_or_else(|err| panic!("valkey on port {}: {err}", self.port))
    }

    /// [`Self::command`], its I/O error returned rather than a panic.
    fn try_command(&self, args: &[&str]) -> std::io::Result<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut request = resp_command(&["AUTH", &self.password]);
        request.extend(resp_command(args));
        stream.write_all(&request)?;
        let mut reader = BufReader::new(stream);
        let mut auth_reply = String::new();
        reader.read_line(&mut auth_reply)?;
        let mut reply = String::new();
        reader.read_line(&mut reply)?;
        Ok(reply.trim_end().to_owned())
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut last = String::from("none");
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                let mut stderr = String::new();
                if let Some(mut err) = child.stderr.take() {
                    let _ = err.read_to_string(&mut stderr);
                }
                panic!("valkey-server exited early ({status}): {stderr}");
            }
            // A server still starting may refuse or reset a connection: not ready yet.
            match self.try_command(&["PING"]) {
                Ok(reply) if reply == "+PONG" => return,
                Ok(reply) => last = reply,
                Err(err) => last = err.to_string(),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "valkey-server on port {} not ready after 10 s (last answer: {last})",
            self.port
        );
    }
}

impl Drop for ValkeyServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn resp_command(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend(format!("${}\r\n{}\r\n", arg.len(), arg).into_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resp_encoding_counts_bytes() {
        assert_eq!(
            resp_command(&["SET", "k", ""]),
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"
        );
    }

    #[test]
    fn starts_stops_and_restarts_on_the_same_port() {
        let mut server = ValkeyServer::start("s3cret");
        assert_eq!(server.command(&["SET", "k", "v"]), "+OK");
        let port = server.port;
        server.stop();
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
        server.restart();
        assert_eq!(server.port, port);
        assert_eq!(server.command(&["PING"]), "+PONG");
    }
}
