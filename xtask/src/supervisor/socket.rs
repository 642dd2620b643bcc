//! The control channel of a running supervisor: a Unix socket in the stack's runtime dir that
//! `restart`, `stop`, `start` and a second `up` talk to, so that the supervisor stays the only
//! code that spawns, signals and reaps.
//!
//! The socket lives in a directory of its own (mode 0700, the invoker's) and is itself mode
//! 0600; the supervisor also reads each caller's uid from the kernel and refuses any other
//! account, root included unless the stack is root's.
//!
//! The protocol is one JSON [`Request`] line from the caller, then [`Reply`] lines until the
//! last, [`Reply::Done`]: the supervisor answers once the action is complete (the service ready
//! again, or failed, with why).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::time::Duration;

use anyhow::Context;

use crate::config::StackConfig;

/// What a command asks the supervisor.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Request {
    /// Stop these services and leave them stopped until `start`.
    Stop { services: Vec<String> },
    /// Start these services (and the stopped services they depend on).
    Start { services: Vec<String> },
    /// Stop and start these services; done when they are ready again.
    Restart { services: Vec<String> },
    /// A second `up`: start `services` (all when empty) and their dependencies, or none
    /// ([`Start::Nothing`]); restart each of them that runs and whose configuration, flags,
    /// program or binary changed since it started, or only say so ([`Recreate::Never`]).
    /// `env` is the caller's environment, from which the configuration is read again.
    Up {
        services: Vec<String>,
        start: Start,
        recreate: Recreate,
        env: Vec<(String, String)>,
    },
}

/// Which services a second `up` starts. On the wire a bool (`true`: [`Start::Asked`]), as it
/// was before it had a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(from = "bool", into = "bool")]
pub(crate) enum Start {
    /// Those it names (all when it names none) and their dependencies, where not running.
    Asked,
    /// None: `watch` restarts the changed apps and starts none that the user stopped.
    Nothing,
}

/// What a second `up` does about services that changed since they started. On the wire a
/// bool (`true`: [`Recreate::Changed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(from = "bool", into = "bool")]
pub(crate) enum Recreate {
    /// Restart them, one line each saying why.
    Changed,
    /// Leave them be (`--no-recreate`), saying what changed.
    Never,
}

impl From<bool> for Start {
    fn from(start: bool) -> Start {
        if start { Start::Asked } else { Start::Nothing }
    }
}

impl From<Start> for bool {
    fn from(start: Start) -> bool {
        start == Start::Asked
    }
}

impl From<bool> for Recreate {
    fn from(recreate: bool) -> Recreate {
        if recreate {
            Recreate::Changed
        } else {
            Recreate::Never
        }
    }
}

impl From<Recreate> for bool {
    fn from(recreate: Recreate) -> bool {
        recreate == Recreate::Changed
    }
}

/// What the supervisor answers, one line at a time.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Reply {
    /// Progress, printed as it comes.
    Line(String),
    /// The last line: `None` when everything asked is done, else why not.
    Done(Option<String>),
}

/// A request that reached the supervisor, with the connection to answer on.
pub(crate) struct Call {
    pub(crate) request: Request,
    pub(crate) caller: Caller,
}

/// The connection of one caller; lines are best effort (a caller that went away misses them).
pub(crate) struct Caller(UnixStream);

impl Caller {
    pub(crate) fn say(&mut self, line: impl Into<String>) {
        self.send(&Reply::Line(line.into()));
    }

    /// Ends the call.
    pub(crate) fn done(mut self, error: Option<String>) {
        self.send(&Reply::Done(error));
    }

    /// A caller and the other end of its connection, for the supervisor's tests.
    #[cfg(test)]
    pub(crate) fn pair() -> (Caller, UnixStream) {
        let (ours, theirs) = UnixStream::pair().expect("a socket pair");
        (Caller(ours), theirs)
    }

    fn send(&mut self, reply: &Reply) {
        let mut line = serde_json::to_vec(reply).expect("a reply serialises");
        line.push(b'\n');
        let _ = self.0.write_all(&line);
    }
}

/// `<runtime>/control/supervisor.sock`.
pub(crate) fn socket_path(cfg: &StackConfig) -> PathBuf {
    cfg.runtime_dir.join("control").join("supervisor.sock")
}

/// Binds the socket (replacing one a dead supervisor left) and accepts callers on a thread of
/// its own, handing each request to the supervisor over `calls` (its event channel).
pub(crate) fn listen<E: From<Call> + Send + 'static>(
    cfg: &StackConfig,
    calls: Sender<E>,
) -> anyhow::Result<()> {
    let path = socket_path(cfg);
    let dir = path.parent().expect("the socket is in a directory");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    // An existing directory keeps its mode: make sure it is ours alone.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot make {} owner-only", dir.display()))?;
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)
        .with_context(|| format!("cannot listen on {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot make {} owner-only", path.display()))?;
    let owner = nix::unistd::Uid::effective();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            if let Some(call) = accept(stream, owner)
                && calls.send(call.into()).is_err()
            {
                return; // the supervisor is gone
            }
        }
    });
    Ok(())
}

/// Removes the socket and its directory (the supervisor is done).
pub(crate) fn close(cfg: &StackConfig) {
    let path = socket_path(cfg);
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_dir(path.parent().expect("the socket is in a directory"));
}

/// Reads the request of one caller of the right account.
fn accept(stream: UnixStream, owner: nix::unistd::Uid) -> Option<Call> {
    let caller = Caller(stream);
    match peer_uid(&caller.0) {
        Ok(uid) if uid == owner => {}
        Ok(uid) => {
            caller.done(Some(format!(
                "refused: this stack belongs to uid {owner}, the caller is uid {uid}"
            )));
            return None;
        }
        Err(err) => {
            caller.done(Some(format!("refused: cannot tell who is calling ({err})")));
            return None;
        }
    }
    // A caller that connects and says nothing must not hold the acceptor.
    let _ = caller.0.set_read_timeout(Some(Duration::from_secs(5)));
    let mut line = String::new();
    let read = BufReader::new(&caller.0).read_line(&mut line);
    match read.map_err(anyhow::Error::from).and_then(|_| {
        serde_json::from_str::<Request>(&line).context("not a request of this version")
    }) {
        Ok(request) => Some(Call { request, caller }),
        Err(err) => {
            caller.done(Some(format!("bad request: {err:#}")));
            None
        }
    }
}

/// The uid of the process at the other end, from the kernel.
fn peer_uid(stream: &UnixStream) -> nix::Result<nix::unistd::Uid> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let creds =
            nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::PeerCredentials)?;
        Ok(nix::unistd::Uid::from_raw(creds.uid()))
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let (uid, _gid) = nix::unistd::getpeereid(stream)?;
        Ok(uid)
    }
}

/// Sends `request` to the supervisor of the stack in `cfg`, prints its progress lines, and
/// returns once it is done; an error says why the action did not complete.
pub(crate) fn call(cfg: &StackConfig, request: &Request) -> anyhow::Result<()> {
    call_with(cfg, request, |line| println!("{line}"))
}

/// As [`call`], each progress line handed to `on_line` instead of printed (`ui`'s pane).
pub(crate) fn call_with(
    cfg: &StackConfig,
    request: &Request,
    on_line: impl FnMut(&str),
) -> anyhow::Result<()> {
    call_at(&socket_path(cfg), request, on_line)
}

fn call_at(path: &Path, request: &Request, mut on_line: impl FnMut(&str)) -> anyhow::Result<()> {
    let mut stream = UnixStream::connect(path).with_context(|| {
        format!(
            "cannot reach the supervisor at {}; is the stack running (`cargo xtask status`)?",
            path.display()
        )
    })?;
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    stream
        .write_all(&line)
        .context("cannot send the request to the supervisor")?;
    for line in BufReader::new(stream).lines() {
        let line = line.context("lost the connection to the supervisor")?;
        match serde_json::from_str::<Reply>(&line)
            .with_context(|| format!("the supervisor answered something else: {line}"))?
        {
            Reply::Line(text) => on_line(&text),
            Reply::Done(None) => return Ok(()),
            Reply::Done(Some(error)) => anyhow::bail!("{error}"),
        }
    }
    anyhow::bail!("the supervisor closed the connection before it was done (did it stop?)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_answered_line_by_line_until_done() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path();
        let mut cfg = crate::config::tests::config_in(dir);
        cfg.runtime_dir = dir.join("run");
        let (calls, received) = std::sync::mpsc::channel();
        listen(&cfg, calls).unwrap();

        let path = socket_path(&cfg);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(mode(&path), 0o600);

        let supervisor = std::thread::spawn(move || {
            let Call {
                request,
                mut caller,
            } = received.recv().unwrap();
            let Request::Restart { services } = request else {
                panic!("not the request sent: {request:?}")
            };
            caller.say(format!("{}: restarting", services[0]));
            caller.done(Some("healthcheck: not ready".into()));
        });
        let mut lines = Vec::new();
        let request = Request::Restart {
            services: vec!["healthcheck".into()],
        };
        let err = call_at(&path, &request, |line| lines.push(line.to_owned())).unwrap_err();
        supervisor.join().unwrap();
        assert_eq!(lines, ["healthcheck: restarting"]);
        assert_eq!(err.to_string(), "healthcheck: not ready");
    }

    #[test]
    fn a_second_up_says_what_to_start_and_recreate_as_bools_on_the_wire() {
        let request = Request::Up {
            services: vec!["nginx".into()],
            start: Start::Nothing,
            recreate: Recreate::Changed,
            env: Vec::new(),
        };
        let line = serde_json::to_string(&request).unwrap();
        assert_eq!(
            line,
            r#"{"up":{"services":["nginx"],"start":false,"recreate":true,"env":[]}}"#
        );
        let Request::Up {
            start, recreate, ..
        } = serde_json::from_str(&line.replace("false", "true")).unwrap()
        else {
            panic!("not an up")
        };
        assert_eq!((start, recreate), (Start::Asked, Recreate::Changed));
    }

    #[test]
    fn without_a_supervisor_the_error_says_how_to_look() {
        let err = call_at(
            Path::new("/nonexistent/supervisor.sock"),
            &Request::Stop { services: vec![] },
            |_| {},
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("is the stack running"),
            "{err:#}"
        );
    }
}
