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

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::config::StackConfig;
use crate::supervisor::run_state::RunState;

/// The longest request line read: a second `up` carries its caller's environment (kilobytes);
/// a longer line is refused before it is parsed, so no caller can make the supervisor's memory
/// grow.
pub(crate) const MAX_REQUEST_BYTES: usize = 1 << 20;
/// How long a caller has to send its whole request line, from its connection: one that says
/// nothing, or trickles a byte at a time, is answered with an error and hung up on.
pub(crate) const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
/// Callers read at once, each on a thread of its own (a slow one never holds up the others);
/// one more is told that the supervisor is busy.
const MAX_CALLERS_READ: usize = 256;
/// How long one reply may take to send: a caller that stops reading must not stall the
/// supervisor's loop, which writes the replies.
const REPLY_DEADLINE: Duration = Duration::from_secs(1);

/// How long a caller waits for a starting supervisor to bind its socket.
const SOCKET_WAIT: Duration = Duration::from_secs(30);

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
    fn of(stream: UnixStream) -> Caller {
        let _ = stream.set_write_timeout(Some(REPLY_DEADLINE));
        Caller(stream)
    }

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
    let reading = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            if reading.fetch_add(1, Ordering::SeqCst) >= MAX_CALLERS_READ {
                reading.fetch_sub(1, Ordering::SeqCst);
                let caller = Caller::of(stream);
                caller.done(Some(format!(
                    "busy: {MAX_CALLERS_READ} callers are sending requests at once; try again"
                )));
                continue;
            }
            let (calls, reading) = (calls.clone(), Arc::clone(&reading));
            std::thread::spawn(move || {
                let call = accept(stream, owner);
                reading.fetch_sub(1, Ordering::SeqCst);
                if let Some(call) = call {
                    // An error means the supervisor is gone: nobody is left to answer.
                    let _ = calls.send(call.into());
                }
            });
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
    let caller = Caller::of(stream);
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
    let parsed = read_request_line(&caller.0).and_then(|line| {
        serde_json::from_slice::<Request>(&line).context("not a request of this version")
    });
    match parsed {
        Ok(request) => Some(Call { request, caller }),
        Err(err) => {
            caller.done(Some(format!("bad request: {err:#}")));
            None
        }
    }
}

/// The caller's request line, without its newline: at most [`MAX_REQUEST_BYTES`], all of it
/// within [`REQUEST_DEADLINE`] of now.
fn read_request_line(mut stream: &UnixStream) -> anyhow::Result<Vec<u8>> {
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let mut line = Vec::new();
    let mut chunk = [0; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        anyhow::ensure!(
            !left.is_zero(),
            "no whole request line within {REQUEST_DEADLINE:?} of connecting"
        );
        stream.set_read_timeout(Some(left))?;
        let read = match stream.read(&mut chunk) {
            Ok(0) => anyhow::bail!("the connection ended before a whole request line"),
            Ok(read) => read,
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                anyhow::bail!("no whole request line within {REQUEST_DEADLINE:?} of connecting")
            }
            Err(err) => return Err(err.into()),
        };
        let chunk = &chunk[..read];
        let end = chunk.iter().position(|&b| b == b'\n');
        line.extend_from_slice(&chunk[..end.unwrap_or(read)]);
        anyhow::ensure!(
            line.len() <= MAX_REQUEST_BYTES,
            "the request line is longer than {MAX_REQUEST_BYTES} bytes"
        );
        if end.is_some() {
            return Ok(line);
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
    let path = socket_path(cfg);
    // A supervisor that is still finding programs and checking ports (a cold `up` a moment
    // ago) has not bound its socket yet: wait for it while that supervisor lives.
    crate::os::poll::wait_until(SOCKET_WAIT, || {
        path.exists() || RunState::read_live(&cfg.state_dir).is_none()
    });
    call_at(&path, request, on_line)
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

    /// What the supervisor answers on a raw connection that sent `bytes` and then hung up
    /// its writing side.
    fn answer_to(path: &Path, bytes: &[u8]) -> String {
        let mut stream = UnixStream::connect(path).unwrap();
        // The supervisor stops reading an oversized line part way: the rest may not go out.
        let _ = stream.write_all(bytes);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    }

    #[test]
    fn hostile_callers_get_an_error_and_everyone_else_is_served_meanwhile() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path();
        let mut cfg = crate::config::tests::config_in(dir);
        cfg.runtime_dir = dir.join("run");
        let (calls, received) = std::sync::mpsc::channel::<Call>();
        listen(&cfg, calls).unwrap();
        std::thread::spawn(move || {
            for call in received {
                call.caller.done(None);
            }
        });
        let path = socket_path(&cfg);
        // A hundred callers that connect and say nothing, and one that sends half a line.
        let mut idle: Vec<UnixStream> = (0..100)
            .map(|_| UnixStream::connect(&path).unwrap())
            .collect();
        let mut trickler = UnixStream::connect(&path).unwrap();
        trickler.write_all(b"{\"stop\":").unwrap();

        let began = Instant::now();
        let request = Request::Stop { services: vec![] };
        call_at(&path, &request, |_| {}).unwrap();
        assert!(
            began.elapsed() < Duration::from_secs(2),
            "a caller waited {:?} behind the idle ones",
            began.elapsed()
        );
        let bad = |bytes: &[u8]| {
            let answer = answer_to(&path, bytes);
            let reply: Reply = serde_json::from_str(answer.trim_end()).unwrap();
            let Reply::Done(Some(error)) = reply else {
                panic!("not an error: {answer}")
            };
            error
        };
        let oversized = vec![b'x'; MAX_REQUEST_BYTES + 10];
        assert_eq!(
            bad(&oversized),
            format!("bad request: the request line is longer than {MAX_REQUEST_BYTES} bytes")
        );
        assert!(bad(b"{not json\n").starts_with("bad request: not a request of this version"));
        assert!(
            bad(b"{\"explode\":{\"services\":[]}}\n").contains("unknown variant `explode`"),
            "{}",
            bad(b"{\"explode\":{}}\n")
        );
        assert!(bad(b"\xff\xfe\x00\n").starts_with("bad request: not a request"));
        assert_eq!(
            bad(b"{\"stop\":"),
            "bad request: the connection ended before a whole request line"
        );

        // The idle callers are hung up on once their time is up, with why.
        let mut answer = String::new();
        trickler
            .set_read_timeout(Some(REQUEST_DEADLINE * 2))
            .unwrap();
        trickler.read_to_string(&mut answer).unwrap();
        assert!(
            answer.contains("no whole request line within 5s"),
            "{answer}"
        );
        for stream in &mut idle {
            let mut answer = String::new();
            stream.read_to_string(&mut answer).unwrap();
            assert!(answer.contains("no whole request line"), "{answer}");
        }
        call_at(&path, &request, |_| {}).unwrap();
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

    mod generated {
        //! Control-socket requests generated at scale (seeded, a fixed number of cases).

        use crate::generated::seeded;
        use proptest::prelude::*;

        use super::super::*;

        fn names() -> impl Strategy<Value = Vec<String>> {
            prop::collection::vec("\\PC{0,8}|[a-z-]{1,12}|.*\n.*", 0..4)
        }

        fn request() -> impl Strategy<Value = Request> {
            let env = prop::collection::vec(("\\PC{0,8}", ".{0,8}"), 0..4);
            prop_oneof![
                names().prop_map(|services| Request::Stop { services }),
                names().prop_map(|services| Request::Start { services }),
                names().prop_map(|services| Request::Restart { services }),
                (names(), any::<bool>(), any::<bool>(), env).prop_map(
                    |(services, start, recreate, env)| Request::Up {
                        services,
                        start: start.into(),
                        recreate: recreate.into(),
                        env,
                    }
                ),
            ]
        }

        /// What the supervisor makes of `bytes` sent on a connection that is then closed for
        /// writing: the request, or the error it answered.
        fn accepted(bytes: &[u8]) -> Result<Request, String> {
            let (ours, mut theirs) = UnixStream::pair().unwrap();
            theirs.write_all(bytes).unwrap();
            theirs.shutdown(std::net::Shutdown::Write).unwrap();
            match accept(ours, nix::unistd::Uid::effective()) {
                Some(call) => Ok(call.request),
                None => {
                    let mut answer = String::new();
                    BufReader::new(theirs).read_line(&mut answer).unwrap();
                    match serde_json::from_str(&answer) {
                        Ok(Reply::Done(Some(error))) => Err(error),
                        other => panic!("not an error reply: {answer:?} ({other:?})"),
                    }
                }
            }
        }

        fn wire(request: &Request) -> String {
            serde_json::to_string(request).unwrap()
        }

        proptest! {
            #![proptest_config(seeded(256))]

            #[test]
            fn every_request_is_one_line_that_reads_back_as_sent(request in request()) {
                let line = wire(&request);
                prop_assert!(!line.contains('\n'));
                let read = accepted(format!("{line}\n").as_bytes()).map_err(TestCaseError::fail)?;
                prop_assert_eq!(wire(&read), line);
            }

            #[test]
            fn a_damaged_request_is_refused_with_why_never_a_panic(
                request in request(),
                cut in any::<prop::sample::Index>(),
                junk in prop::collection::vec(any::<u8>(), 0..8),
                at in any::<prop::sample::Index>(),
            ) {
                let mut bytes = wire(&request).into_bytes();
                bytes.truncate(cut.index(bytes.len() + 1));
                let at = at.index(bytes.len() + 1);
                bytes.splice(at..at, junk);
                match accepted(&bytes) {
                    // Cut or junk that leaves a whole request (a cut after the last brace,
                    // blanks): it must then be one that serialises to a valid line again.
                    Ok(read) => prop_assert!(serde_json::from_str::<Request>(&wire(&read)).is_ok()),
                    Err(error) => prop_assert!(error.starts_with("bad request: "), "{}", error),
                }
            }

            #[test]
            fn any_bytes_are_refused_with_why_never_a_panic(
                bytes in prop::collection::vec(any::<u8>(), 0..64),
            ) {
                if let Err(error) = accepted(&bytes) {
                    prop_assert!(error.starts_with("bad request: "), "{}", error);
                }
            }
        }
    }
}
