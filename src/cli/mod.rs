//! The command line: clap's definitions of every flag ([`flags`]), the one
//! source of `--help`, the man pages and the completions ([`gendoc`]), and
//! [`parse`], which cuts `gmr run`'s steps at `--then` before clap reads
//! each part.

pub(crate) mod flags;
pub(crate) mod gendoc;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, Parser};
use flags::{Cli, Command, StepCli};
use std::ffi::OsString;

/// Parses gmr's command line. `gmr run A --then B --then C` is the job and
/// its first step (A: every job flag, the first step's flags, the inputs),
/// then a step per `--then`: clap alone could not tell a step's `-m` from
/// the next one's, so the line is cut at each `--then` first.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Cli, clap::Error> {
    let args: Vec<OsString> = args.into_iter().collect();
    let is_run = args.get(1).is_some_and(|a| a == "run");
    let mut parts = args.split(|a| is_run && a == "--then");
    let first = parts.next().unwrap_or_default();
    let mut cli = Cli::try_parse_from(first)?;
    let Command::Run(run) = &mut cli.command else {
        return Ok(cli);
    };
    let parts: Vec<&[OsString]> = parts.collect();
    for (n, part) in parts.iter().enumerate() {
        let step = n + 2;
        if part.is_empty() {
            return Err(usage(format!(
                "--then needs the flags of a step after it (-m CMD, and -r CMD or -R 0); step {step} has none"
            )));
        }
        let mut parsed = StepCli::try_parse_from(*part).map_err(|e| in_wrong_place(e, step))?;
        // Inputs after the last step are the job's: `STEP --then STEP INPUT...`.
        let inputs = std::mem::take(&mut parsed.step.inputs);
        if let Some(first) = inputs.first() {
            if n + 1 < parts.len() {
                return Err(usage(format!(
                    "`{}` in step {step}: the inputs go after the last step (or before the first --then)",
                    first.display()
                )));
            }
            if !run.input.inputs.is_empty() {
                return Err(usage(format!(
                    "inputs before the first --then and after the last step ({}): give them in one place",
                    first.display()
                )));
            }
            run.input.inputs = inputs;
        }
        run.steps.push(parsed.step);
    }
    Ok(cli)
}

/// A usage error with gmr's message, as clap prints its own.
fn usage(message: String) -> clap::Error {
    Cli::command().error(ErrorKind::ArgumentConflict, message)
}

/// A step's parse error; for a job flag or an input after `--then`, one
/// that says where it belongs.
fn in_wrong_place(e: clap::Error, step: usize) -> clap::Error {
    let Some(ContextValue::String(word)) = e.get(ContextKind::InvalidArg) else {
        return e;
    };
    if e.kind() != ErrorKind::UnknownArgument {
        return e;
    }
    let name = word.split('=').next().unwrap_or(word);
    let cli = Cli::command();
    let run = cli.find_subcommand("run").expect("gmr run");
    let job_flag = run.get_arguments().any(|a| {
        a.get_long()
            .is_some_and(|l| name.strip_prefix("--") == Some(l))
            || a.get_short().is_some_and(|c| name == format!("-{c}"))
    });
    match job_flag {
        true => usage(format!(
            "{name} (in step {step}) is the job's, not a step's: give it before the first --then"
        )),
        false => e,
    }
}
