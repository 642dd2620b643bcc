//! The log files in `<state>/logs`: every line the supervisor writes there starts with the UTC
//! time it was read (`2026-12-02T01:02:03.456Z `), whatever the program printed, so `logs` can
//! merge services in time order; a file that passes its size limit is rotated.
//!
//! A daemon's stdout and stderr are the write end of one pipe (so its lines keep the order in
//! which it wrote them); a *pump* thread of the supervisor reads the other end as fast as the
//! program writes, so no program ever blocks on a full pipe, and appends whole lines. Programs
//! that fork (Postgres' backends) hand the pipe on; the pump ends at end-of-file, when the
//! last of them is gone, after writing a partial last line with a newline of its own. Bytes
//! are written as they came (non-UTF-8 included); `logs` reads them lossily.
//!
//! All pumps of one process that write the same file share one [`LogFile`], so rotation and
//! appends never race within the supervisor.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;

/// Bytes of the timestamp that starts each line, without the blank after it.
pub(crate) const TIMESTAMP_LEN: usize = "2026-12-02T01:02:03.456Z".len();
/// The variable that sets the size at which a log is rotated.
pub(crate) const MAX_BYTES_VAR: &str = "AMTP_LOG_MAX_BYTES";
/// 10 MiB: days of a busy dev stack, and quick to read back.
pub(crate) const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// Rotated files kept beside the current one: `name.log.1` (newest) to `name.log.3`.
pub(crate) const KEEP: usize = 3;
/// A line longer than this is cut into several, so a program that never ends its line cannot
/// grow the pump's buffer without bound.
const MAX_LINE: usize = 64 * 1024;

/// The current UTC time as a log line starts with it.
pub(crate) fn timestamp() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// The timestamp a line of ours starts with, if it does: the fixed-width UTC form sorts in
/// time order as plain bytes.
pub(crate) fn timestamp_of(line: &[u8]) -> Option<[u8; TIMESTAMP_LEN]> {
    let stamp = line.get(..TIMESTAMP_LEN)?;
    let shape = b"0000-00-00T00:00:00.000Z";
    let fits = stamp.iter().zip(shape).all(|(byte, want)| match want {
        b'0' => byte.is_ascii_digit(),
        _ => byte == want,
    });
    (fits && line.get(TIMESTAMP_LEN) == Some(&b' ')).then(|| stamp.try_into().expect("length"))
}

/// The text of a line without our timestamp (unchanged if it has none).
pub(crate) fn without_timestamp(line: &[u8]) -> &[u8] {
    match timestamp_of(line) {
        Some(_) => &line[TIMESTAMP_LEN + 1..],
        None => line,
    }
}

/// When a log file is rotated, and how many old ones are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rotation {
    pub(crate) max_bytes: u64,
    pub(crate) keep: usize,
}

impl Default for Rotation {
    fn default() -> Rotation {
        Rotation {
            max_bytes: DEFAULT_MAX_BYTES,
            keep: KEEP,
        }
    }
}

/// The rotation of this process's log files, set once by the supervisor from its
/// configuration ([`MAX_BYTES_VAR`]); the default until then.
static ROTATION: OnceLock<Rotation> = OnceLock::new();

pub(crate) fn set_rotation(rotation: Rotation) {
    let _ = ROTATION.set(rotation);
}

fn rotation() -> Rotation {
    ROTATION.get().copied().unwrap_or_default()
}

/// `path` with `.N` appended: rotated file number `n` (1 is the newest).
pub(crate) fn rotated(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// One log file, appended to line by line and rotated by size.
pub(crate) struct LogFile {
    path: PathBuf,
    file: File,
    size: u64,
    rotation: Rotation,
}

impl LogFile {
    pub(crate) fn open(path: &Path, rotation: Rotation) -> io::Result<LogFile> {
        let file = File::options().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(LogFile {
            path: path.to_owned(),
            file,
            size,
            rotation,
        })
    }

    /// Appends `line` (without its newline) with `stamp` before it, in one write, so that
    /// other appenders of the file (the guardian) never cut into it.
    pub(crate) fn append(&mut self, stamp: &str, line: &[u8]) -> io::Result<()> {
        let mut record = Vec::with_capacity(stamp.len() + line.len() + 2);
        record.extend_from_slice(stamp.as_bytes());
        record.push(b' ');
        record.extend_from_slice(line);
        record.push(b'\n');
        if self.size > 0 && self.size + record.len() as u64 > self.rotation.max_bytes {
            self.rotate()?;
        }
        if let Err(err) = self.file.write_all(&record) {
            // A full disk took part of the line: cut it off, so the next line (once there is
            // room) starts a line of its own, with its timestamp first.
            let _ = self.file.set_len(self.size);
            return Err(err);
        }
        self.size += record.len() as u64;
        Ok(())
    }

    /// `name.log` becomes `name.log.1`, each older one moves up a number, the oldest beyond
    /// `keep` is deleted, and a new `name.log` is started.
    fn rotate(&mut self) -> io::Result<()> {
        let keep = self.rotation.keep;
        if keep == 0 {
            self.file.set_len(0)?;
        } else {
            let _ = fs::remove_file(rotated(&self.path, keep));
            for n in (1..keep).rev() {
                let from = rotated(&self.path, n);
                if from.exists() {
                    fs::rename(&from, rotated(&self.path, n + 1))?;
                }
            }
            fs::rename(&self.path, rotated(&self.path, 1))?;
            self.file = File::options().create(true).append(true).open(&self.path)?;
        }
        self.size = 0;
        Ok(())
    }
}

/// Cuts a byte stream into lines: complete lines as they end, the rest when the stream does.
#[derive(Default)]
pub(crate) struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Hands each line that `chunk` completes to `line`, without its newline (nor a `\r`
    /// before it).
    pub(crate) fn feed(&mut self, chunk: &[u8], mut line: impl FnMut(&[u8])) {
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            self.pending.extend_from_slice(&rest[..end]);
            if self.pending.last() == Some(&b'\r') {
                self.pending.pop();
            }
            line(&self.pending);
            self.pending.clear();
            rest = &rest[end + 1..];
        }
        self.pending.extend_from_slice(rest);
        while self.pending.len() >= MAX_LINE {
            let tail = self.pending.split_off(MAX_LINE);
            line(&self.pending);
            self.pending = tail;
        }
    }

    /// The partial last line, if the stream ended without a newline.
    pub(crate) fn finish(&mut self, line: impl FnMut(&[u8])) {
        if !self.pending.is_empty() {
            let mut line = line;
            line(&self.pending);
            self.pending.clear();
        }
    }
}

/// The open log files of this process, by path, while a pump writes to them.
static OPEN: Mutex<Option<HashMap<PathBuf, Weak<Mutex<LogFile>>>>> = Mutex::new(None);

/// The shared [`LogFile`] of `path`, opened if no pump has it open.
fn shared(path: &Path) -> anyhow::Result<Arc<Mutex<LogFile>>> {
    let mut open = OPEN.lock().unwrap_or_else(PoisonError::into_inner);
    let open = open.get_or_insert_with(HashMap::new);
    if let Some(log) = open.get(path).and_then(Weak::upgrade) {
        return Ok(log);
    }
    let log = LogFile::open(path, rotation())
        .with_context(|| format!("cannot open log {}", path.display()))?;
    let log = Arc::new(Mutex::new(log));
    open.retain(|_, log| log.strong_count() > 0);
    open.insert(path.to_owned(), Arc::downgrade(&log));
    Ok(log)
}

/// Starts a pump: a thread that reads `source` to its end and appends each line to the log at
/// `path`, timestamped, copying the bytes to `echo` as well when there is one.
pub(crate) fn pump(
    source: impl Read + Send + 'static,
    path: &Path,
    echo: Option<File>,
) -> anyhow::Result<JoinHandle<()>> {
    let log = shared(path)?;
    let name = format!("log {}", path.display());
    std::thread::Builder::new()
        .name(name)
        .spawn(move || copy_lines(source, &log, echo))
        .with_context(|| format!("cannot start the writer of {}", path.display()))
}

fn copy_lines(mut source: impl Read, log: &Mutex<LogFile>, mut echo: Option<File>) {
    let mut splitter = LineSplitter::default();
    let mut buffer = vec![0; 16 * 1024];
    // Write errors (a full disk) are dropped: the pump must go on draining the pipe, or the
    // program would block on its next line, and there is nowhere better to say so.
    let mut write = |line: &[u8]| {
        let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
        // Stamped under the lock, so the lines of a file are in time order (`logs --since`
        // bisects on that) even when several pumps write it.
        let _ = log.append(&timestamp(), line);
    };
    loop {
        let read = match source.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        if let Some(out) = echo.as_mut()
            && out.write_all(&buffer[..read]).is_err()
        {
            echo = None;
        }
        splitter.feed(&buffer[..read], &mut write);
    }
    splitter.finish(&mut write);
}

/// The supervisor's own stdout and stderr while they go through pumps into its log; see
/// [`capture_own_output`].
pub(crate) struct CapturedOutput {
    /// The original stdout and stderr, put back by [`CapturedOutput::finish`].
    saved: [OwnedFd; 2],
    pumps: Vec<JoinHandle<()>>,
}

/// Whether the supervisor's own lines also go where its output went before (`up --attach`'s
/// terminal), or only into its log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Echo {
    Yes,
    No,
}

/// Puts a pipe in place of this process's stdout and of its stderr, each read by a pump that
/// writes into `log`, so every `println!`/`eprintln!` of the supervisor (and of the programs it
/// runs with inherited output) is timestamped like the services' lines.
pub(crate) fn capture_own_output(log: &Path, echo: Echo) -> anyhow::Result<CapturedOutput> {
    let stdout = io::stdout().as_fd().try_clone_to_owned();
    let stderr = io::stderr().as_fd().try_clone_to_owned();
    let saved = [
        stdout.context("cannot duplicate stdout")?,
        stderr.context("cannot duplicate stderr")?,
    ];
    let mut pumps = Vec::new();
    for (index, original) in saved.iter().enumerate() {
        let (reader, writer) = io::pipe().context("cannot create the supervisor's log pipe")?;
        let echo = match echo {
            Echo::Yes => Some(File::from(
                original
                    .try_clone()
                    .context("cannot duplicate the terminal's descriptor")?,
            )),
            Echo::No => None,
        };
        pumps.push(pump(reader, log, echo)?);
        let _ = io::stdout().flush();
        let replaced = if index == 0 {
            nix::unistd::dup2_stdout(&writer)
        } else {
            nix::unistd::dup2_stderr(&writer)
        };
        replaced.context("cannot redirect the supervisor's output to its log")?;
    }
    Ok(CapturedOutput { saved, pumps })
}

impl CapturedOutput {
    /// Puts the original stdout and stderr back and waits (briefly: a program that inherited
    /// the pipe may still hold it) until the pumps wrote everything.
    pub(crate) fn finish(self) {
        let _ = io::stdout().flush();
        let _ = nix::unistd::dup2_stdout(&self.saved[0]);
        let _ = nix::unistd::dup2_stderr(&self.saved[1]);
        let pumps = self.pumps;
        crate::os::poll::wait_until(Duration::from_secs(2), || {
            pumps.iter().all(JoinHandle::is_finished)
        });
        for pump in pumps.into_iter().filter(JoinHandle::is_finished) {
            let _ = pump.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(chunks: &[&[u8]]) -> Vec<String> {
        let mut splitter = LineSplitter::default();
        let mut lines = Vec::new();
        let mut collect = |line: &[u8]| lines.push(String::from_utf8_lossy(line).into_owned());
        for chunk in chunks {
            splitter.feed(chunk, &mut collect);
        }
        splitter.finish(&mut collect);
        lines
    }

    #[test]
    fn lines_are_cut_at_newlines_across_chunks_and_a_partial_last_line_is_kept() {
        assert_eq!(
            lines_of(&[b"one\ntw", b"o\r\n", b"\nthree"]),
            ["one", "two", "", "three"]
        );
        assert_eq!(lines_of(&[b"a\n"]), ["a"]);
        assert!(lines_of(&[b""]).is_empty());
        let long = vec![b'x'; MAX_LINE + 10];
        let cut = lines_of(&[&long]);
        assert_eq!(
            cut.iter().map(String::len).collect::<Vec<_>>(),
            [MAX_LINE, 10]
        );
    }

    #[test]
    fn timestamps_are_utc_with_milliseconds_and_recognised() {
        let stamp = timestamp();
        assert_eq!(stamp.len(), TIMESTAMP_LEN);
        let line = format!("{stamp} hello");
        assert_eq!(
            timestamp_of(line.as_bytes()).map(|s| s.to_vec()),
            Some(stamp.clone().into_bytes())
        );
        assert_eq!(without_timestamp(line.as_bytes()), b"hello");
        for other in [
            "2026-12-02 01:02:03.456Z x",
            "2026-12-02T01:02:03.456Zx",
            "2026-12-02T01:02:03Z x",
            "LOG:  database system is ready",
            "",
        ] {
            assert_eq!(timestamp_of(other.as_bytes()), None, "{other}");
            assert_eq!(without_timestamp(other.as_bytes()), other.as_bytes());
        }
    }

    #[test]
    fn a_full_log_is_rotated_keeping_the_newest_files() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path();
        let path = dir.join("svc.log");
        let stamp = "2026-12-02T01:02:03.456Z";
        // Each record is 25 + 5 + 1 = 31 bytes: two fit in 70, the third rotates.
        let rotation = Rotation {
            max_bytes: 70,
            keep: 3,
        };
        let mut log = LogFile::open(&path, rotation).unwrap();
        for n in 0..12 {
            log.append(stamp, format!("line{n}").as_bytes()).unwrap();
        }
        let read = |path: &Path| {
            fs::read_to_string(path)
                .unwrap()
                .lines()
                .map(|l| l[TIMESTAMP_LEN + 1..].to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(read(&path), ["line10", "line11"]);
        assert_eq!(read(&rotated(&path, 1)), ["line8", "line9"]);
        assert_eq!(read(&rotated(&path, 2)), ["line6", "line7"]);
        assert_eq!(read(&rotated(&path, 3)), ["line4", "line5"]);
        assert!(!rotated(&path, 4).exists(), "the oldest is dropped");

        // A reopened log goes on from its size; a line longer than the limit stands alone.
        let mut log = LogFile::open(&path, rotation).unwrap();
        log.append(stamp, &[b'y'; 100]).unwrap();
        assert_eq!(read(&rotated(&path, 1)), ["line10", "line11"]);
        assert_eq!(read(&path).len(), 1);
    }

    #[test]
    fn a_pump_writes_every_line_timestamped_and_raw_bytes_through() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path();
        let path = dir.join("svc.log");
        let input: &[u8] = b"first\n\xff\xfe not utf-8\nno newline at the end";
        pump(input, &path, None).unwrap().join().unwrap();
        let text = fs::read(&path).unwrap();
        let lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
        assert_eq!(lines.len(), 4, "three lines, each ended: {lines:?}");
        assert!(lines[3].is_empty());
        for (line, want) in lines.iter().zip([
            &b"first"[..],
            b"\xff\xfe not utf-8",
            b"no newline at the end",
        ]) {
            assert!(timestamp_of(line).is_some(), "{line:?}");
            assert_eq!(without_timestamp(line), want);
        }
    }
}
