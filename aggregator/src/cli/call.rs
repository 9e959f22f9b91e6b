//! `labscope call TOOL`: one tool run in-process and printed — text fitted
//! to the terminal for a person, JSON for a pipe — page after page with
//! `--all`, an operation asked about on the terminal first.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;

use serde_json::Value;

use super::terminal::{Out, TerminalConfirmer, failure};
use crate::config::AgentOptions;
use crate::server::mcp::error_text;
use crate::tools::{self, Call, JsonForm, ToolDef, ToolError, ToolOutput};

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// The structured result as JSON.
    Json,
    /// A compact text table that fits the terminal.
    Table,
}

/// What `labscope call` was asked, past the tool's name.
#[derive(Debug, Clone)]
pub struct Request {
    /// Arguments as key=value.
    pub args: Vec<String>,
    /// Arguments as one JSON object.
    pub json: Option<String>,
    /// `--output`.
    pub output: Output,
    /// `--pretty`.
    pub pretty: bool,
    /// `--yes`.
    pub yes: bool,
    /// `--all`.
    pub all: bool,
}

/// Runs `def` as `r` asks and prints its answer; the exit status says how
/// it went (2 for arguments that could not run, 1 for a failed tool).
pub async fn run(
    options: &AgentOptions,
    defs: &[ToolDef],
    def: &ToolDef,
    r: &Request,
) -> anyhow::Result<ExitCode> {
    let mut args = match super::parse_call_args(def, &r.args, r.json.as_deref()) {
        Ok(map) => map,
        Err(e) => {
            eprintln!("{}", error_text(&e));
            return Ok(ExitCode::from(2));
        }
    };
    if r.all
        && let Err(e) = super::prepare_all(def, &mut args)
    {
        eprintln!("{}", error_text(&e));
        return Ok(ExitCode::from(2));
    }
    let ctx = options.context().await?;
    let progress = super::StderrProgress::start(def.name);
    let mut pages = Pages {
        def,
        request: r,
        out: Out::stdout(),
        width: super::output_width(std::io::stdout().is_terminal()),
        printed: 0,
    };
    // The answers are printed in a block of their own: when a write fails
    // (the reader has gone), the services still log out.
    let printed: anyhow::Result<ExitCode> = async {
        let code = loop {
            let result = tools::call(
                ctx.clone(),
                defs,
                def.name,
                args.clone(),
                pages.call(&progress),
            )
            .await;
            match pages.print(result)? {
                Step::Next(cursor) => args.insert("cursor".into(), Value::String(cursor)),
                Step::Done(code) => break code,
            };
            if pages.printed > 1 && pages.printed.is_multiple_of(10) {
                progress.note(format!("{}: {} pages", def.name, pages.printed));
            }
        };
        pages.out.flush()?;
        Ok(code)
    }
    .await;
    ctx.services.shutdown().await;
    progress.finish();
    printed
}

/// What comes after a page.
enum Step {
    /// Ask for the page at this cursor.
    Next(String),
    /// Finished, with this exit status.
    Done(ExitCode),
}

/// The pages of one `call`, printed as they arrive.
struct Pages<'a, W: Write> {
    def: &'a ToolDef,
    request: &'a Request,
    out: Out<W>,
    /// The terminal's width, when printing to one.
    width: Option<usize>,
    /// Pages answered so far.
    printed: usize,
}

impl<W: Write> Pages<'_, W> {
    /// The next page's call: asked on the terminal for an operation; for a
    /// read, only the rendering that is printed is built.
    fn call(&self, progress: &super::StderrProgress) -> Call {
        let r = self.request;
        let mut call = progress.call().by("cli");
        if self.def.mutates() {
            call = call.confirmed_by(Arc::new(TerminalConfirmer { yes: r.yes }));
        } else {
            call = match r.output {
                // One JSON object per line with --all.
                Output::Json if r.pretty && !r.all => call.json_only(JsonForm::Pretty),
                Output::Json => call.json_only(JsonForm::Compact),
                Output::Table => call.text_only(),
            };
        }
        if self.printed > 0 {
            call = call.continued();
        }
        call
    }

    /// Prints one page's answer (or the error that ended the pages).
    fn print(&mut self, result: Result<ToolOutput, ToolError>) -> anyhow::Result<Step> {
        self.printed += 1;
        let r = self.request;
        match (result, r.output) {
            (Ok(out), Output::Json) => self.json(out),
            (Ok(out), Output::Table) => self.table(out),
            (Err(e), Output::Json) => {
                if r.all || !r.pretty {
                    // Still one object per line.
                    serde_json::to_writer(&mut self.out, &e.to_json())?;
                    writeln!(self.out)?;
                } else {
                    writeln!(self.out, "{}", serde_json::to_string_pretty(&e.to_json())?)?;
                }
                Ok(Step::Done(failure(&e)))
            }
            (Err(e), Output::Table) => {
                self.out.flush()?;
                if self.printed > 1 {
                    eprintln!(
                        "labscope: page {} failed; the pages before it are printed above",
                        self.printed
                    );
                }
                eprintln!("{}", error_text(&e));
                Ok(Step::Done(failure(&e)))
            }
        }
    }

    fn json(&mut self, out: ToolOutput) -> anyhow::Result<Step> {
        let r = self.request;
        match (&out.json, r.all) {
            (Some(json), true) => writeln!(self.out, "{json}")?,
            (None, true) => {
                serde_json::to_writer(&mut self.out, &out.structured)?;
                writeln!(self.out)?;
            }
            (Some(json), false) => writeln!(self.out, "{json}")?,
            (None, false) if r.pretty => writeln!(
                self.out,
                "{}",
                serde_json::to_string_pretty(&out.structured)?
            )?,
            (None, false) => writeln!(self.out, "{}", out.structured)?,
        }
        Ok(match out.next_cursor {
            Some(c) if r.all => Step::Next(c),
            _ => Step::Done(ExitCode::SUCCESS),
        })
    }

    fn table(&mut self, out: ToolOutput) -> anyhow::Result<Step> {
        let all = self.request.all;
        let text = if all {
            super::without_cursor_line(out.text)
        } else {
            out.text
        };
        let text = match self.width {
            Some(w) => super::fit(&text, w),
            None => text,
        };
        let text = text.trim_end_matches('\n');
        if !text.is_empty() {
            writeln!(self.out, "{text}")?;
        }
        Ok(match out.next_cursor {
            Some(c) if all => Step::Next(c),
            _ => Step::Done(ExitCode::SUCCESS),
        })
    }
}
