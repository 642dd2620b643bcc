//! The flags a service binary answers before it reads its configuration: `--version`, and
//! `--health`, which is what a container's `HEALTHCHECK` runs (a slim runtime image has no
//! curl or wget). Without arguments the binary serves; anything else is a usage error.
//!
//! The version is the package's, with the commit it was built from when the build had
//! `AMTP_GIT_SHA` set (the images' `GIT_SHA` build argument): `0.1.0+3f2c…`. [`version!`]
//! reads both at compile time in the calling crate.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

/// How long `--health` waits for the connection and for each read; a container healthcheck's
/// own timeout (the images say 3 s) is longer.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// The calling crate's version: `CARGO_PKG_VERSION`, plus `+<sha>` when it was compiled with
/// `AMTP_GIT_SHA` set.
#[macro_export]
macro_rules! version {
    () => {
        $crate::flags::version_text(env!("CARGO_PKG_VERSION"), option_env!("AMTP_GIT_SHA"))
    };
}

/// `package`, or `package+sha` (SemVer build metadata) when a commit is known.
pub fn version_text(package: &str, git_sha: Option<&str>) -> String {
    match git_sha.map(str::trim).filter(|sha| !sha.is_empty()) {
        Some(sha) => format!("{package}+{sha}"),
        None => package.to_owned(),
    }
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Mode {
    Serve,
    Version,
    Health,
    Help,
}

/// Reads the arguments after the program name.
pub fn mode(args: impl IntoIterator<Item = OsString>) -> Result<Mode, String> {
    let args: Vec<OsString> = args.into_iter().collect();
    let [arg] = args.as_slice() else {
        return match args.len() {
            0 => Ok(Mode::Serve),
            _ => Err(format!("expected at most one argument, got {args:?}")),
        };
    };
    match arg.to_str() {
        Some("--version" | "-V") => Ok(Mode::Version),
        Some("--health") => Ok(Mode::Health),
        Some("--help" | "-h") => Ok(Mode::Help),
        _ => Err(format!("unknown argument {arg:?}")),
    }
}

/// Answers `--version`, `--help` and `--health` for the binary `name`, or says that it should
/// serve (`None`). `listen` gives the address the server listens on, from the same
/// configuration; `--health` asks it for `GET /health`, at loopback when it listens on all
/// addresses. Exit codes: 0 healthy, 1 not (Docker's meaning), 2 a usage error.
pub fn answer(
    name: &str,
    version: &str,
    listen: impl FnOnce() -> Result<SocketAddr, String>,
) -> Option<ExitCode> {
    let usage = format!(
        "usage: {name} [--version | --health]\n\
         Without arguments, serve HTTP, configured by the environment (see the README).\n\
         \x20 --version  print the version\n\
         \x20 --health   GET /health on the configured port: exit 0 on 200, else 1 (for a \
         container HEALTHCHECK)"
    );
    match mode(std::env::args_os().skip(1)) {
        Ok(Mode::Serve) => None,
        Ok(Mode::Version) => {
            println!("{name} {version}");
            Some(ExitCode::SUCCESS)
        }
        Ok(Mode::Help) => {
            println!("{usage}");
            Some(ExitCode::SUCCESS)
        }
        Ok(Mode::Health) => {
            let checked = listen().and_then(|addr| check_health(probe_addr(addr), HEALTH_TIMEOUT));
            Some(match checked {
                Ok(body) => {
                    println!("{body}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("{name}: unhealthy: {error}");
                    ExitCode::FAILURE
                }
            })
        }
        Err(error) => {
            eprintln!("{name}: {error}\n{usage}");
            Some(ExitCode::from(2))
        }
    }
}

/// Where a client reaches a server listening on `listen`: loopback for an unspecified address.
pub fn probe_addr(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// `GET /health` at `addr` over HTTP/1.0 (so the answer is neither chunked nor kept alive):
/// the body on 200, else the status line and body as the error.
pub fn check_health(addr: SocketAddr, timeout: Duration) -> Result<String, String> {
    let exchange = || -> std::io::Result<Vec<u8>> {
        let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        // One write: `write!` on a socket sends each formatted piece on its own, and a server
        // that answers after its first read and closes resets the connection over the bytes
        // it did not read, which loses its answer.
        stream.write_all(format!("GET /health HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())?;
        let mut response = Vec::new();
        stream.take(64 * 1024).read_to_end(&mut response)?;
        Ok(response)
    };
    let response = exchange().map_err(|err| format!("GET http://{addr}/health: {err}"))?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status_line = head.lines().next().unwrap_or_default();
    match status_line.split_whitespace().nth(1) {
        Some("200") => Ok(body.trim_end().to_owned()),
        _ => Err(format!(
            "GET http://{addr}/health: {status_line:?} {}",
            body.trim_end()
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_version_carries_the_commit_only_when_one_is_given() {
        assert_eq!(version_text("0.1.0", None), "0.1.0");
        assert_eq!(version_text("0.1.0", Some("")), "0.1.0");
        assert_eq!(version_text("0.1.0", Some("3f2c9ab")), "0.1.0+3f2c9ab");
    }

    #[test]
    fn no_argument_serves_and_unknown_ones_are_refused() {
        assert_eq!(mode(args(&[])), Ok(Mode::Serve));
        assert_eq!(mode(args(&["--version"])), Ok(Mode::Version));
        assert_eq!(mode(args(&["-V"])), Ok(Mode::Version));
        assert_eq!(mode(args(&["--health"])), Ok(Mode::Health));
        assert_eq!(mode(args(&["--help"])), Ok(Mode::Help));
        assert_eq!(
            mode(args(&["--port"])),
            Err("unknown argument \"--port\"".to_owned())
        );
        assert!(mode(args(&["--health", "--version"])).is_err());
    }

    #[test]
    fn an_unspecified_listen_address_is_probed_on_loopback() {
        let all: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(probe_addr(all), "127.0.0.1:8080".parse().unwrap());
        let all6: SocketAddr = "[::]:8080".parse().unwrap();
        assert_eq!(probe_addr(all6), "[::1]:8080".parse().unwrap());
        let one: SocketAddr = "10.0.0.5:8090".parse().unwrap();
        assert_eq!(probe_addr(one), one);
    }

    /// A one-shot server answering `response` and handing back the request it read.
    fn answer_once(response: &'static str) -> (SocketAddr, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            // The whole request before the answer, as an HTTP server reads it: closing with
            // unread bytes would reset the connection under the client's read.
            let mut request = Vec::new();
            let mut chunk = [0u8; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                let read = stream.read(&mut chunk).unwrap();
                assert!(read > 0, "the client closed before the end of its request");
                request.extend_from_slice(&chunk[..read]);
            }
            stream.write_all(response.as_bytes()).unwrap();
            String::from_utf8_lossy(&request).into_owned()
        });
        (addr, server)
    }

    #[test]
    fn a_200_is_healthy_with_its_body() {
        let (addr, server) =
            answer_once("HTTP/1.0 200 OK\r\ncontent-length: 15\r\n\r\n{\"status\":\"ok\"}");
        assert_eq!(
            check_health(addr, HEALTH_TIMEOUT),
            Ok("{\"status\":\"ok\"}".to_owned())
        );
        assert!(
            server
                .join()
                .unwrap()
                .starts_with("GET /health HTTP/1.0\r\n")
        );
    }

    #[test]
    fn a_503_or_no_server_is_unhealthy() {
        let (addr, _server) = answer_once("HTTP/1.0 503 Service Unavailable\r\n\r\ndown");
        let error = check_health(addr, HEALTH_TIMEOUT).unwrap_err();
        assert!(error.contains("503 Service Unavailable") && error.ends_with("down"));
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(check_health(closed, HEALTH_TIMEOUT).is_err());
    }
}
