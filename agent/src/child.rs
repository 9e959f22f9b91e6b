//! Running a fixed program inside bounds: a deadline and a cap on its output.
//! Past either, the child is killed and reaped; it is also killed if the
//! caller unwinds. Its output counts against the agent's memory limit (the
//! same cgroup), so an unbounded read is an OOM kill waiting to happen.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The bounds of one run.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Wall-clock time the program may take.
    pub timeout: Duration,
    /// Bytes of standard output kept; more is an error.
    pub max_stdout: usize,
}

/// Standard error kept for messages; the rest is read and dropped.
const MAX_STDERR: usize = 16 * 1024;

/// What a run printed.
#[derive(Debug)]
pub struct Output {
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// The start of standard error.
    pub stderr: Vec<u8>,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The program could not be started.
    #[error("could not start: {0}")]
    Spawn(#[source] std::io::Error),
    /// It ran past its deadline and was killed.
    #[error("still running after {0:?}; killed")]
    TimedOut(Duration),
    /// It printed more than the cap and was killed.
    #[error("printed more than {0} bytes; killed")]
    OutputTooLarge(usize),
    /// Waiting for it failed.
    #[error("waiting for it: {0}")]
    Wait(#[source] std::io::Error),
}

/// Kills and reaps the child unless it was reaped already.
struct Reaper(Option<Child>);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Reads `from` to its end, keeping at most `keep` bytes; reports whether
/// there was more.
fn read_capped(from: impl Read, keep: usize, stop_at_cap: bool) -> (Vec<u8>, bool) {
    // Straight into the vector (no bounce buffer), one byte past the cap to
    // tell a full output from a longer one. A read error ends the output.
    let mut out = Vec::new();
    let mut limited = from.take(keep as u64 + 1);
    let _ = limited.read_to_end(&mut out);
    let over = out.len() > keep;
    out.truncate(keep);
    if over && !stop_at_cap {
        // Drained and dropped, so that the child never blocks on a full pipe.
        let _ = std::io::copy(&mut limited.into_inner(), &mut std::io::sink());
    }
    (out, over)
}

/// A pipe this large holds a kube-proxy nat table's save output whole: the
/// tool writes without waiting for the reader, and the reader wakes once
/// per megabyte instead of once per 64 KiB. Best effort (the kernel caps it
/// at /proc/sys/fs/pipe-max-size for the unprivileged).
const PIPE_SIZE: i32 = 1 << 20;

/// Runs `program args…` with an empty environment and no standard input,
/// inside `limits`.
pub fn run(program: &Path, args: &[&str], limits: Limits) -> Result<Output, Error> {
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(Error::Spawn)?;
    let stdout = child.stdout.take();
    if let Some(out) = stdout.as_ref().filter(|_| limits.max_stdout > (64 << 10)) {
        let want = PIPE_SIZE.min(i32::try_from(limits.max_stdout).unwrap_or(i32::MAX));
        let _ = nix::fcntl::fcntl(out, nix::fcntl::FcntlArg::F_SETPIPE_SZ(want));
    }
    let stderr = child.stderr.take();
    let mut reaper = Reaper(Some(child));

    // Readers on their own threads: a full pipe must never stall the child
    // while this thread waits, and the deadline must hold while they block.
    let (done_tx, done_rx) = mpsc::channel::<(Vec<u8>, bool)>();
    let max_stdout = limits.max_stdout;
    if let Some(out) = stdout {
        std::thread::spawn(move || {
            let _ = done_tx.send(read_capped(out, max_stdout, true));
        });
    }
    let err_reader =
        stderr.map(|e| std::thread::spawn(move || read_capped(e, MAX_STDERR, false).0));

    let remaining = limits.timeout.saturating_sub(started.elapsed());
    let (stdout, over) = match done_rx.recv_timeout(remaining) {
        Ok(read) => read,
        Err(mpsc::RecvTimeoutError::Timeout) => return Err(Error::TimedOut(limits.timeout)),
        Err(mpsc::RecvTimeoutError::Disconnected) => (Vec::new(), false),
    };
    if over {
        return Err(Error::OutputTooLarge(limits.max_stdout));
    }
    // Standard output is closed; the child is normally gone or going. Wait
    // for it within what is left of the deadline, polling soon at first.
    let mut pause = Duration::from_micros(50);
    let status = loop {
        let child = reaper.0.as_mut().ok_or(Error::TimedOut(limits.timeout))?;
        if let Some(status) = child.try_wait().map_err(Error::Wait)? {
            reaper.0 = None;
            break status;
        }
        if started.elapsed() >= limits.timeout {
            return Err(Error::TimedOut(limits.timeout));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(2));
    };
    let stderr = err_reader.and_then(|r| r.join().ok()).unwrap_or_default();
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn bin(name: &str) -> PathBuf {
        ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(name))
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("{name} not found"))
    }

    const ROOMY: Limits = Limits {
        timeout: Duration::from_secs(10),
        max_stdout: 1 << 20,
    };

    #[test]
    fn output_and_status_come_back() {
        let out = run(&bin("echo"), &["hello"], ROOMY).unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, b"hello\n");
        let out = run(&bin("ls"), &["/no/such/path"], ROOMY).unwrap();
        assert!(!out.status.success());
        assert!(!out.stderr.is_empty(), "ls says why");
    }

    #[test]
    fn a_program_past_its_deadline_is_killed() {
        let started = Instant::now();
        let limits = Limits {
            timeout: Duration::from_millis(300),
            ..ROOMY
        };
        let err = run(&bin("sleep"), &["30"], limits).unwrap_err();
        assert!(matches!(err, Error::TimedOut(_)), "{err}");
        // Killed, not waited for: nowhere near the 30 s it asked for.
        assert!(started.elapsed() < Duration::from_secs(20));
    }

    #[test]
    fn a_program_that_prints_too_much_is_killed() {
        let limits = Limits {
            max_stdout: 64 * 1024,
            ..ROOMY
        };
        // `yes` prints forever: only the cap can end it.
        let err = run(&bin("yes"), &[], limits).unwrap_err();
        assert!(matches!(err, Error::OutputTooLarge(65536)), "{err}");
    }

    #[test]
    fn a_missing_program_is_a_spawn_error() {
        let err = run(Path::new("/no/such/tool"), &[], ROOMY).unwrap_err();
        assert!(matches!(err, Error::Spawn(_)), "{err}");
    }

    #[test]
    fn output_up_to_the_cap_comes_back_whole_and_stderr_never_blocks() {
        // Exactly the cap (several times the pipe) is not too much.
        let limits = Limits {
            max_stdout: 3 << 20,
            ..ROOMY
        };
        let size = (3 << 20).to_string();
        let out = run(&bin("head"), &["-c", &size, "/dev/zero"], limits).unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout.len(), 3 << 20);
        assert!(out.stdout.iter().all(|&b| b == 0));
        let err = run(
            &bin("head"),
            &["-c", &(3 << 20 | 1).to_string(), "/dev/zero"],
            limits,
        )
        .unwrap_err();
        assert!(matches!(err, Error::OutputTooLarge(_)), "{err}");
        // A flood on stderr (past its cap and the pipe) is drained: the
        // program finishes and what it printed first is kept.
        let out = run(
            &bin("sh"),
            &["-c", "head -c 300000 /dev/zero | tr '\\0' e >&2; echo done"],
            ROOMY,
        )
        .unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, b"done\n");
        assert_eq!(out.stderr.len(), MAX_STDERR);
        assert!(out.stderr.iter().all(|&b| b == b'e'));
    }
}
