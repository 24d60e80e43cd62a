//! [`Job`]: a job spec with its programs parsed once, and what follows
//! from them decided once: how map tasks combine, and which reducer
//! actually runs (docs/contracts.md §2, combiners).

use crate::data::builtin::Builtin;
use crate::data::order::Order;
use crate::data::sort::Distinct;
use crate::error::Result;
use crate::store::spec::JobSpec;
use crate::task::program::Program;
use std::sync::atomic::{AtomicU64, Ordering};

/// How a map task combines its output before writing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Combiner {
    /// Not at all.
    None,
    /// In a hash table as records arrive: a built-in with a merge form.
    Table(Builtin),
    /// A command run on each sorted run, while it pays.
    Command(Program),
}

/// Runs a command combiner is applied to before its payoff decides.
const COMBINER_TRIALS: u64 = 2;

/// What a command combiner did to the runs of this process's map tasks,
/// which decides whether it runs on the next. A map task groups repeated
/// lines itself (a word count's twelve million `word<TAB>1` are its few
/// hundred thousand distinct lines, each with a count), and the combiner
/// must read every copy: when its output has about as many records as the
/// run had distinct lines, it only added a pass over the data. The
/// contract lets it run zero times, so it is not run then (docs/contracts.md §2).
#[derive(Debug, Default)]
pub(crate) struct CombinerPayoff {
    runs: AtomicU64,
    /// Distinct records of the runs given to it.
    distinct_in: AtomicU64,
    /// Records it printed for them.
    out: AtomicU64,
}

impl CombinerPayoff {
    /// Whether a run with `run`'s distinct lines and keys is to be
    /// combined. Not when it has nearly a line per key (a word
    /// count's `word<TAB>1`): a combiner prints a record per key, so it
    /// could not remove a fifth of them, and would not be run even on
    /// trial. Otherwise always for the first [`COMBINER_TRIALS`] runs,
    /// then while the combiner removed a fifth of the distinct records or
    /// more.
    pub(crate) fn worth_running(&self, run: Distinct) -> bool {
        if run.keys.saturating_mul(5) > run.lines.saturating_mul(4) {
            return false;
        }
        if self.runs.load(Ordering::Relaxed) < COMBINER_TRIALS {
            return true;
        }
        let out = self.out.load(Ordering::Relaxed);
        let distinct = self.distinct_in.load(Ordering::Relaxed);
        out.saturating_mul(5) <= distinct.saturating_mul(4)
    }

    /// Notes one run combined: its distinct lines (`run`) became the
    /// combiner's (`out`).
    pub(crate) fn record(&self, run: Distinct, out: Distinct) {
        self.distinct_in
            .fetch_add(run.lines as u64, Ordering::Relaxed);
        self.out.fetch_add(out.lines as u64, Ordering::Relaxed);
        self.runs.fetch_add(1, Ordering::Relaxed);
    }
}

impl Clone for CombinerPayoff {
    /// A job's copy starts its own tally.
    fn clone(&self) -> CombinerPayoff {
        CombinerPayoff::default()
    }
}

/// A job spec with its programs parsed once, and what follows from them
/// decided: how map tasks combine, and which reducer actually runs.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    /// The spec as stored.
    pub(crate) spec: JobSpec,
    /// The order of its map output.
    pub(crate) order: Order,
    /// The mapper.
    pub(crate) mapper: Program,
    /// The map-side combiner.
    pub(crate) combiner: Combiner,
    /// The reducer that runs, once the job has one: a built-in whose own
    /// table combined map-side gets partial results, so it runs its merge
    /// form (`@count` partials are summed).
    pub(crate) reducer: Option<Program>,
    /// What its command combiner achieved so far in this process.
    pub(crate) combiner_payoff: CombinerPayoff,
    /// The mapper of a map-only step fused into the reducers, which reads
    /// each reducer's output.
    pub(crate) then_mapper: Option<Program>,
}

impl Job {
    /// Parses the programs of `spec`.
    pub(crate) fn new(spec: JobSpec) -> Result<Job> {
        let parse = Program::parse_flag;
        let mapper = parse(&spec.mapper, "-m")?;
        let combiner = spec
            .combiner
            .as_deref()
            .map(|c| parse(c, "-c"))
            .transpose()?;
        let reducer = spec
            .reducer
            .as_deref()
            .map(|r| parse(r, "-r"))
            .transpose()?;
        let reducer = match (reducer, &combiner) {
            (Some(Program::Builtin(r)), Some(Program::Builtin(c))) if r == *c => {
                Some(Program::Builtin(r.merge_form().unwrap_or(r)))
            }
            (reducer, _) => reducer,
        };
        let combiner = match combiner {
            None => Combiner::None,
            Some(Program::Builtin(b)) if b.merge_form().is_some() => Combiner::Table(b),
            // A built-in without a merge form (@identity) combines nothing.
            Some(Program::Builtin(_)) => Combiner::None,
            Some(command) => Combiner::Command(command),
        };
        let then_mapper = spec
            .then_map
            .as_ref()
            .map(|t| parse(&t.mapper, "-m"))
            .transpose()?;
        Ok(Job {
            order: spec.order()?,
            then_mapper,
            spec,
            mapper,
            combiner,
            reducer,
            combiner_payoff: CombinerPayoff::default(),
        })
    }

    /// Checks, before any task runs, that each command's program exists and
    /// is executable (relative to the job's directory), so that a typo is a
    /// usage error rather than N failed tasks.
    pub(crate) fn check(&self) -> Result<()> {
        let cwd = &self.spec.cwd;
        self.mapper.check("mapper", cwd)?;
        if let Combiner::Command(c) = &self.combiner {
            c.check("combiner", cwd)?;
        }
        if let Some(r) = &self.reducer {
            r.check("reducer", cwd)?;
        }
        Ok(())
    }
}

/// The combiner a job gets when it names none: a built-in reducer that can
/// merge partial results combines map-side too, in a hash table, which
/// leaves far fewer records to sort.
pub(crate) fn implied_combiner(
    combiner: Option<&str>,
    reducer: Option<&str>,
) -> Result<Option<String>> {
    if combiner.is_some() {
        return Ok(combiner.map(str::to_string));
    }
    Ok(
        match reducer.map(|r| Program::parse_flag(r, "-r")).transpose()? {
            Some(Program::Builtin(b)) if b.merge_form().is_some() => Some(b.name().to_string()),
            _ => None,
        },
    )
}
