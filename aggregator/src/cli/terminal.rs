//! The CLI's terminal: standard output that knows when its reader has
//! gone, text fitted to the terminal's width, the exit status of a failed
//! call, and the yes/no question before an operation.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use crate::tools::{self, ToolError};

/// Asks on the terminal before an operation: `--yes` answers for the
/// person; without a terminal (a script, a pipe) nobody can be asked.
pub struct TerminalConfirmer {
    /// `--yes`.
    pub yes: bool,
}

impl tools::Confirmer for TerminalConfirmer {
    fn confirm<'a>(&'a self, question: &'a str) -> tools::ConfirmFuture<'a> {
        Box::pin(async move {
            if self.yes {
                return Ok(Some(tools::Confirmation::YesFlag));
            }
            if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
                return Ok(None);
            }
            let question = question.to_string();
            let answer = tokio::task::spawn_blocking(move || {
                eprint!("\n{question} [y/N] ");
                let mut line = String::new();
                std::io::stdin().read_line(&mut line).map(|_| line)
            })
            .await
            .map_err(|e| tools::declined(&format!("the prompt failed ({e})")))?
            .map_err(|e| tools::declined(&format!("the terminal could not be read ({e})")))?;
            match answer.trim().to_ascii_lowercase().as_str() {
                "y" | "yes" => Ok(Some(tools::Confirmation::Terminal)),
                _ => Err(tools::declined("the answer at the terminal was not yes")),
            }
        })
    }
}

/// The exit status of a failed call: 2 when the arguments were wrong (a
/// usage error, as clap's own), 1 when the tool failed.
pub fn failure(e: &ToolError) -> ExitCode {
    if e.code == tools::ErrorCode::InvalidArgument {
        ExitCode::from(2)
    } else {
        ExitCode::from(1)
    }
}

/// Text for the terminal fitted to its width (or `$COLUMNS`); unchanged for
/// a pipe or a file.
pub fn fitted(text: String) -> String {
    match super::output_width(std::io::stdout().is_terminal()) {
        Some(w) => super::fit(&text, w),
        None => text,
    }
}

/// "; did you mean X?" when `name` is a near miss of a tool's name.
pub fn tool_guess(name: &str, defs: &[tools::ToolDef]) -> String {
    let names: Vec<&str> = defs.iter().map(|t| t.name).collect();
    tools::did_you_mean(name, &names)
        .map(|n| format!("; did you mean {n:?}?"))
        .unwrap_or_default()
}

/// Standard output for the CLI's answers. When its reader has gone
/// (`labscope call … | head`), a write fails with [`StdoutClosed`], and
/// `main` ends quietly, where the standard tools end by SIGPIPE. SIGPIPE
/// itself stays ignored, as in every Rust program: a connection to an agent
/// or an API that breaks must fail as an error, not end the process.
pub struct Out<W>(pub W);

impl Out<std::io::StdoutLock<'static>> {
    /// Standard output, locked.
    pub fn stdout() -> Self {
        Out(std::io::stdout().lock())
    }
}

impl<W: Write> Write for Out<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf).map_err(closed)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush().map_err(closed)
    }
}

/// Standard output's reader has gone.
#[derive(Debug, thiserror::Error)]
#[error("standard output was closed")]
pub struct StdoutClosed;

fn closed(e: std::io::Error) -> std::io::Error {
    match e.kind() {
        std::io::ErrorKind::BrokenPipe => {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, StdoutClosed)
        }
        _ => e,
    }
}

/// Whether `e` is a write to standard output whose reader has gone.
pub fn is_stdout_closed(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .is_some_and(|inner| inner.is::<StdoutClosed>())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_reader_is_recognised_through_the_chain() {
        let mut out = Out(Broken);
        let e = anyhow::Error::from(out.write(b"x").unwrap_err()).context("printing");
        assert!(is_stdout_closed(&e));
        let other = anyhow::Error::from(std::io::Error::other("disk full"));
        assert!(!is_stdout_closed(&other));
    }

    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
