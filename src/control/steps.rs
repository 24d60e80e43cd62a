//! Jobs of several steps, `gmr run A --then B --then C`: one job, one work
//! directory. Each step is a job of its own in `WORKDIR/step-N`, reading
//! the step before's output, which lives in `WORKDIR/intermediate/step-N`
//! (or `--keep-intermediate DIR`'s `DIR/step-N`); the last step writes the
//! job's output. `WORKDIR/steps.json` records each step's flags, so that
//! `--resume` reuses what committed in the steps that did not change and
//! runs again a step whose flags changed and every step after it.
//!
//! Steps fuse where the work allows (docs/guide.md, "Jobs of several
//! steps"): a map-only step after a step with reducers runs inside them
//! (its mapper reads their output through a pipe, and its output is their
//! parts); the mapper of a step with reducers after a step with reducers
//! runs inside those too, so that it starts on each partition as it is
//! made, and the step's own map tasks read its output with `cat`, which
//! starts no process.

use crate::cli::flags::RunArgs;
use crate::error::{Error, Result};
use crate::observe::status::{JobStatus, State};
use crate::observe::tracker;
use crate::store::history::History;
use crate::store::spec::ThenMap;
use crate::store::workdir::WorkDir;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Which step of how many a run is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepOf {
    /// From 1.
    pub(crate) number: usize,
    pub(crate) of: usize,
}

/// `WORKDIR/steps.json`: the steps of the job.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Steps {
    pub(crate) steps: Vec<Step>,
}

/// One step as `steps.json` has it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Step {
    /// Its commands, as people read them: `-m CMD -r CMD`.
    pub(crate) commands: String,
    /// Every flag of the step: what `--resume` compares.
    pub(crate) flags: String,
    /// A map-only step that runs inside the reducers of the step before
    /// (it has no work directory of its own).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) fused: bool,
    /// A step with reducers whose mapper runs inside the reducers of the
    /// step before; its own map tasks read that mapper's output.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) mapper_fused: bool,
}

/// The file that lists the steps.
fn steps_path(root: &Path) -> PathBuf {
    WorkDir::new(root.to_path_buf()).steps_path()
}

/// The work directory of step `n` (from 1).
fn step_dir(root: &Path, n: usize) -> PathBuf {
    WorkDir::new(root.to_path_buf())
        .step(n)
        .root()
        .to_path_buf()
}

/// The arguments of step `k` (from 0) of the job: the job's flags and
/// inputs, with the step's own flags, its work directory, its input (the
/// step before's output) and its output (the job's, for the last).
fn step_args(job: &RunArgs, k: usize, root: &Path, between: &Path) -> RunArgs {
    let n = job.steps.len() + 1;
    let mut a = job.clone();
    a.steps.clear();
    if k > 0 {
        let s = &job.steps[k - 1];
        a.map = s.map.clone();
        a.reduce = s.reduce.clone();
        a.key = s.key.clone();
        a.exec.ok_exit = s.ok_exit.clone().unwrap_or_default();
        a.input.inputs = vec![between.join(format!("step-{k}"))];
        // Splits of a step's input: sized for it, not for the job's input.
        a.input.split_size = None;
    }
    a.workdir = Some(step_dir(root, k + 1));
    if k + 1 < n {
        a.output.output = Some(between.join(format!("step-{}", k + 1)));
        // A step that runs again replaces its old output.
        a.output.force = true;
        a.intermediate = true;
        a.output.compress = None;
        a.output.output_by_key = false;
    }
    a
}

/// A command as the user would type it after a flag: shell-quoted, in
/// double quotes rather than single ones when it holds single quotes and
/// nothing double quotes would change (`"tr -s ' ' '\n'"` reads better
/// than its `'\''` form).
fn quoted(cmd: &str) -> String {
    let plain_in_double =
        !cmd.contains(['"', '$', '`', '\n']) && !cmd.contains("\\\\") && !cmd.ends_with('\\');
    match cmd.contains('\'') && plain_in_double {
        true => format!("\"{cmd}\""),
        false => crate::exec::remote::shell_quote(cmd),
    }
}

/// What step `k` is made of, for `steps.json`.
fn describe(a: &RunArgs) -> Step {
    let mut commands = format!("-m {}", quoted(&a.map.mapper));
    if let Some(c) = &a.map.combiner {
        commands.push_str(&format!(" -c {}", quoted(c)));
    }
    match (&a.reduce.reducer, a.map.reducers) {
        (_, Some(0)) => commands.push_str(" -R 0"),
        (Some(r), _) => commands.push_str(&format!(" -r {}", quoted(r))),
        (None, _) => {}
    }
    Step {
        commands,
        flags: format!("{:?}", (&a.map, &a.reduce, &a.key, &a.exec.ok_exit)),
        fused: false,
        mapper_fused: false,
    }
}

/// Runs the job of several steps in `args`, each step with `run_step`.
pub(crate) fn run(args: RunArgs, run_step: &dyn Fn(RunArgs, StepOf) -> Result<()>) -> Result<()> {
    let started = std::time::Instant::now();
    let n = args.steps.len() + 1;
    let temporary = args.workdir.is_none();
    let root = match &args.workdir {
        Some(dir) => {
            std::path::absolute(dir).map_err(|e| Error::input("bad work directory", dir, e))?
        }
        None => crate::store::workdir::new_temp_dir()?,
    };
    let wd = WorkDir::new(root.clone());
    wd.check_owner()?;
    std::fs::create_dir_all(&root)
        .map_err(|e| Error::io("cannot create work directory", &root, e))?;
    if wd.spec_path().exists() {
        return Err(Error::usage(format!(
            "work directory {} holds a job of one step; remove it or choose another --workdir",
            root.display()
        )));
    }
    let _lock = wd.lock()?;
    let recorded: Option<Steps> = match steps_path(&root).exists() {
        true => Some(crate::files::read_json(&steps_path(&root))?),
        false => None,
    };
    match (&recorded, args.resume) {
        (Some(_), false) => {
            return Err(Error::usage(format!(
                "work directory {} already holds a job; continue it with --resume, remove it, or choose another --workdir",
                root.display()
            )));
        }
        (None, true) => {
            return Err(Error::usage(format!(
                "nothing to resume: {} holds no job of several steps",
                root.display()
            )));
        }
        _ => {}
    }
    let between = args
        .keep_intermediate
        .clone()
        .map(|d| std::path::absolute(&d).unwrap_or(d))
        .unwrap_or_else(|| root.join("intermediate"));
    let all: Vec<RunArgs> = (0..n)
        .map(|k| step_args(&args, k, &root, &between))
        .collect();
    let mut steps = Steps {
        steps: all.iter().map(describe).collect(),
    };
    // A map-only step after a reduce step runs inside its reducers; so
    // does the mapper of a step with reducers, where nothing keeps the
    // step before's own output.
    let kept = args.keep_intermediate.is_some();
    for k in 1..n {
        steps.steps[k].fused = fuses(&all[k - 1], &all[k]) && !steps.steps[k - 1].fused;
        steps.steps[k].mapper_fused = !kept && fuses_mapper(&all[k - 1], &all[k]);
    }
    // The first step that changed runs again, and so does every one after
    // it: its output, their input, is not the one they committed on.
    let changed = recorded.as_ref().map_or(0, |old| {
        (0..n)
            .find(|&k| old.steps.get(k) != Some(&steps.steps[k]))
            .unwrap_or(n)
    });
    // A fused step runs in the reducers of the step before it: when only
    // its flags changed, that step's map tasks are reused and its reducers
    // run again (plan.rs); when it was fused and is no more, or the
    // other way round, the step before runs again whole.
    let was_fused = |k: usize| {
        recorded
            .as_ref()
            .and_then(|old| old.steps.get(k))
            .is_some_and(|s| s.fused)
    };
    let changed = match steps.steps.get(changed) {
        Some(s) if s.fused != was_fused(changed) => changed - 1,
        _ => changed,
    };
    // The work directory of the run that writes the job's output.
    let last_dir = step_dir(&root, n - usize::from(steps.steps[n - 1].fused));
    // A last step that runs again replaces what it wrote into the job's
    // output (the parts of this very job).
    let mut all = all;
    if changed < n
        && let (Ok(old), Some(out)) = (
            crate::store::spec::JobSpec::load(&WorkDir::new(last_dir)),
            &args.output.output,
        )
        && std::path::absolute(out).is_ok_and(|o| o == old.output)
    {
        all[n - 1].output.force = true;
    }
    for k in changed..n {
        crate::files::remove_path(&step_dir(&root, k + 1));
    }
    // A new file renamed over the old: a crash leaves one or the other.
    let new = root.join("steps.json.new");
    crate::files::remove_path(&new);
    crate::files::write_private(&new, &crate::files::json_bytes(&steps))
        .and_then(|()| std::fs::rename(&new, steps_path(&root)))
        .map_err(|e| Error::io("cannot write", &steps_path(&root), e))?;
    let entry = History::new().and_then(|h| h.record(&root));
    let quiet = args.exec.quiet;
    if temporary && !quiet {
        eprintln!(
            "gmr: a job of {n} steps in {} (removed after success; `gmr status` shows it)",
            root.display()
        );
    }
    let mut runs: Vec<(usize, RunArgs)> = Vec::new();
    for (k, mut a) in all.into_iter().enumerate() {
        let step = &steps.steps[k];
        match runs.last_mut() {
            // The fused step's mapper reads the reducers' output, and its
            // output is theirs.
            Some((_, before)) if step.fused => {
                before.then_map = Some(ThenMap {
                    mapper: a.map.mapper.clone(),
                    ok_exit: a.exec.ok_exit.0.clone(),
                    key: Some(crate::data::record::KeySpec {
                        separator: a.key.separator,
                        key_fields: a.key.key_fields,
                        partition_fields: None,
                        eol: a.input.eol(),
                    }),
                });
                before.output = a.output;
                before.intermediate = a.intermediate;
            }
            // The step's mapper makes the reducers' output before it, which
            // its map tasks take as it is.
            Some((_, before)) if step.mapper_fused => {
                before.then_map = Some(ThenMap {
                    mapper: std::mem::replace(&mut a.map.mapper, "cat".into()),
                    ok_exit: a.exec.ok_exit.0.clone(),
                    key: None,
                });
                runs.push((k, a));
            }
            _ => runs.push((k, a)),
        }
    }
    for (k, mut a) in runs {
        let step = &steps.steps[k];
        let fused = steps.steps.get(k + 1).is_some_and(|s| s.fused);
        a.resume =
            args.resume && k < changed && WorkDir::new(step_dir(&root, k + 1)).spec_path().exists();
        // "step 2 of 3 (-m A -r B)", or with the step in its reducers
        // "steps 2 and 3 of 3 (-m A -r B, then -m C -R 0)", or with the
        // next step's mapper in its reducers "step 2 of 3 (-m A -r B, then
        // step 3's mapper)", and that step "step 3 of 3 (-m C -r D, its
        // mapper in step 2's reducers)".
        let mapper_after = steps.steps.get(k + 1).is_some_and(|s| s.mapper_fused);
        let which = match fused {
            true => format!(
                "steps {} and {} of {n} ({}, then {})",
                k + 1,
                k + 2,
                step.commands,
                steps.steps[k + 1].commands
            ),
            false => {
                let mut which = format!("step {} of {n} ({}", k + 1, step.commands);
                if step.mapper_fused {
                    which.push_str(&format!(", its mapper in step {k}'s reducers"));
                }
                if mapper_after {
                    which.push_str(&format!(", then step {}'s mapper", k + 2));
                }
                which + ")"
            }
        };
        if !quiet {
            eprintln!("gmr: {which}");
            if k > 0 && steps.steps[k - 1].commands.ends_with("-R 0") {
                eprintln!(
                    "gmr: step {k} is map-only: step {} partitions and sorts its output anew",
                    k + 1
                );
            }
        }
        if k > 0 && !quiet && is_empty_output(&between.join(format!("step-{k}"))) {
            match step.mapper_fused {
                true => eprintln!(
                    "gmr: step {}'s mapper, in step {k}'s reducers, wrote no records: step {} runs on nothing",
                    k + 1,
                    k + 1
                ),
                false => eprintln!(
                    "gmr: step {k} wrote no records: step {} runs on nothing",
                    k + 1
                ),
            }
        }
        run_step(
            a,
            StepOf {
                number: k + 1,
                of: n,
            },
        )
        .inspect_err(|e| {
            if matches!(e, Error::Interrupted) {
                eprintln!(
                    "gmr: the work directory is kept; continue the job with --resume --workdir {}",
                    root.display()
                );
            }
        })
        .map_err(|e| {
            e.context(|msg| {
                format!(
                    "{which}: {msg}\n  continue the job with --resume --workdir {}",
                    root.display()
                )
            })
        })?;
    }
    // The job's report, of every step: in the work directory, or for a
    // temporary one in the history, with what it is made from.
    let kept = match (&entry, temporary) {
        (Some(entry), true) => {
            for k in 1..=n {
                entry.keep_step_reports(&wd.step(k), k);
            }
            let _ = std::fs::copy(steps_path(&root), steps_path(entry.path()));
            Some(WorkDir::new(entry.path().to_path_buf()))
        }
        (_, true) => None,
        (_, false) => Some(wd.clone()),
    };
    let report = kept.and_then(|at| {
        let page = report_page(&at).ok()?;
        let path = at.report_html_path();
        crate::files::remove_path(&path);
        crate::files::write_private(&path, page.as_bytes()).ok()?;
        Some(path)
    });
    if !quiet {
        eprintln!(
            "gmr: job of {n} steps done in {:.2} s",
            started.elapsed().as_secs_f64()
        );
        if let Some(report) = report {
            eprintln!("  report: {}", report.display());
        }
    }
    // The intermediate outputs go with the work directory: a kept one
    // keeps them, for a --resume that changes a later step.
    if temporary {
        crate::files::remove_path(&root);
    }
    Ok(())
}

/// Whether an output directory holds no record: every part empty.
fn is_empty_output(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .all(|e| {
            !e.file_name().to_string_lossy().starts_with("part-")
                || e.metadata().is_ok_and(|m| m.len() == 0)
        })
}

/// The HTML report of the job of several steps in `wd`: each step's
/// report in one page.
pub(crate) fn report_page(wd: &WorkDir) -> Result<String> {
    let steps: Steps = crate::files::read_json(&wd.steps_path())?;
    let docs = (1..=steps.steps.len())
        .map(|k| {
            let step = wd.step(k);
            match step.status_path().exists() {
                true => JobStatus::load(&step)
                    .map(|doc| Some(tracker::with_attempts(doc, &step.attempts_path()))),
                false => Ok(None),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let pairs: Vec<(String, Option<JobStatus>)> = steps
        .steps
        .into_iter()
        .enumerate()
        .map(|(k, s)| match (s.fused, s.mapper_fused) {
            (true, _) => format!("{} (in step {k}'s reducers)", s.commands),
            (false, true) => format!("{} (its mapper in step {k}'s reducers)", s.commands),
            (false, false) => s.commands,
        })
        .zip(docs)
        .collect();
    Ok(crate::observe::htmlreport::render_steps(&pairs))
}

/// Whether step `b`, after `a`, runs inside `a`'s reducers: it is
/// map-only, and `a` is not.
fn fuses(a: &RunArgs, b: &RunArgs) -> bool {
    a.map.reducers != Some(0) && b.map.reducers == Some(0)
}

/// Whether the mapper of step `b`, which has reducers, runs inside the
/// reducers of step `a` before it: `a` has its default reducers (two per
/// slot: the mapper runs on at least as many as a map phase would), `b`'s mapper
/// is a command (`cat` needs no process), and `b` does not sample its
/// mapper's output for cut points (`--total-order`: the sample would be
/// of another input).
fn fuses_mapper(a: &RunArgs, b: &RunArgs) -> bool {
    use crate::task::program::Program;
    a.map.reducers.is_none()
        && b.map.reducers != Some(0)
        && !b.key.total_order
        && matches!(
            Program::parse_flag(&b.map.mapper, "-m"),
            Ok(Program::Shell(_))
        )
}

/// What `gmr status` shows of a job of several steps in `wd`: a line per
/// step, then the status of the step running (or the last one that ran),
/// whose document is returned; `json`: `{"steps": [...]}`, each step with
/// its commands and its status document (null before it ran).
pub(crate) fn status(wd: &WorkDir, json: bool) -> Result<(JobStatus, String)> {
    use std::fmt::Write as _;
    let steps: Steps = crate::files::read_json(&wd.steps_path())?;
    let docs: Vec<Option<JobStatus>> = (1..=steps.steps.len())
        .map(|n| {
            let step = wd.step(n);
            step.status_path()
                .exists()
                .then(|| JobStatus::load(&step))
                .transpose()
        })
        .collect::<Result<_>>()?;
    let current = docs.iter().rposition(Option::is_some);
    let shown = current.and_then(|i| docs[i].clone()).unwrap_or_default();
    if json {
        let list: Vec<serde_json::Value> = steps
            .steps
            .iter()
            .zip(&docs)
            .map(|(s, d)| serde_json::json!({"commands": s.commands, "status": d}))
            .collect();
        let doc = serde_json::json!({ "steps": list });
        let text = String::from_utf8(crate::files::json_bytes(&doc)).expect("JSON is UTF-8");
        return Ok((shown, text));
    }
    let n = steps.steps.len();
    let mut t = String::new();
    let _ = writeln!(t, "job of {n} steps in {}:", wd.root().display());
    for (k, (s, d)) in steps.steps.iter().zip(&docs).enumerate() {
        let state = match (d, s.fused) {
            (_, true) => format!("in step {k}'s reducers"),
            (Some(d), _) => d.state.map_or("unknown", State::name).to_string(),
            (None, _) => "not started".into(),
        };
        let whose = match s.mapper_fused {
            true => format!(" (its mapper in step {k}'s reducers)"),
            false => String::new(),
        };
        let _ = writeln!(t, "  step {}  {state:<12} {}{whose}", k + 1, s.commands);
    }
    if let Some(i) = current {
        let _ = writeln!(t, "step {} of {n}:", i + 1);
        t.push_str(&shown.text());
    }
    Ok((shown, t))
}
