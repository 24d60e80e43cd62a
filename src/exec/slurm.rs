//! The Slurm executor: inside an allocation (`salloc -N 4 gmr run --slurm
//! …`, or `gmr run --slurm` in an `sbatch` script), every task attempt is
//! a job step on one of the allocation's nodes: `srun --exclusive -N1 -n1
//! -w NODE … sh -c 'cd CWD || exit 92; exec GMR task …'`
//! (docs/contracts.md §5).
//!
//! Slots are the CPUs Slurm gave the job on each node (`SLURM_JOB_CPUS_PER_NODE`),
//! or `-j N` per node. A step that Slurm could not start or that died with
//! its node (srun's own errors, no report and no error from `gmr task`)
//! counts against the node, like a lost SSH host; a task's own failure
//! counts against the task. A cancelled attempt (a backup's loser, Ctrl-C)
//! has its srun killed and its step cancelled by name (`scancel`), so
//! nothing of gmr's is left in `squeue`.

use super::remote::{Exit, Output, interpret, read_tail, shell_quote, task_command};
use super::{Executor, Slots};
use crate::error::{Error, Result, TaskError};
use crate::exec::health::Health;
use crate::interrupt;
use crate::store::workdir::WorkDir;
use crate::task::TaskId;
use crate::task::job::Job;
use crate::task::report::TaskReport;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// The nodes of the allocation gmr runs in and the slots of each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Allocation {
    /// `SLURM_JOB_ID`.
    pub(crate) job_id: String,
    /// Each node and the task slots gmr uses on it.
    pub(crate) nodes: Vec<(String, usize)>,
}

impl Allocation {
    /// The allocation of this process, from Slurm's environment; `per_node`
    /// (`-j`) replaces the CPUs Slurm allocated on each node. None outside
    /// an allocation (no `SLURM_JOB_ID`).
    pub(crate) fn from_env(per_node: Option<usize>) -> Result<Option<Allocation>> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let Some(job_id) = var("SLURM_JOB_ID") else {
            return Ok(None);
        };
        let list = var("SLURM_JOB_NODELIST")
            .or_else(|| var("SLURM_NODELIST"))
            .ok_or_else(|| {
                Error::usage("SLURM_JOB_NODELIST is not set: is this a Slurm allocation?")
            })?;
        let names = hostnames(&list)?;
        let cpus = var("SLURM_JOB_CPUS_PER_NODE")
            .and_then(|c| parse_cpus_per_node(&c))
            .unwrap_or_default();
        let nodes = names
            .into_iter()
            .enumerate()
            .map(|(i, n)| {
                let slots = per_node.unwrap_or_else(|| cpus.get(i).copied().unwrap_or(1));
                (n, slots.max(1))
            })
            .collect();
        Ok(Some(Allocation { job_id, nodes }))
    }

    /// The job's slots.
    pub(crate) fn slots(&self) -> Slots {
        Slots {
            total: self.nodes.iter().map(|n| n.1).sum(),
            per_host: self.nodes.iter().map(|n| n.1).max().unwrap_or(1),
        }
    }
}

/// A number of `scontrol show config`'s output: `NAME = VALUE`.
pub(crate) fn config_value(config: &str, name: &str) -> Option<usize> {
    config
        .lines()
        .find_map(|l| l.trim().strip_prefix(name))
        .and_then(|rest| rest.trim().strip_prefix('='))
        .and_then(|v| v.trim().parse().ok())
}

/// Refuses a job of more tasks than the cluster's `MaxStepCount` allows
/// steps in one job (every attempt is a step): otherwise its steps would
/// start failing midway, and the nodes with them. Says nothing when
/// `scontrol` does not tell.
pub(crate) fn check_step_count(tasks: usize) -> Result<()> {
    let Ok(out) = Command::new("scontrol")
        .args(["show", "config"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
    else {
        return Ok(());
    };
    match config_value(&String::from_utf8_lossy(&out.stdout), "MaxStepCount") {
        Some(max) if tasks >= max => Err(Error::usage(format!(
            "the job has {tasks} tasks and this cluster allows {max} job steps in a job (MaxStepCount; every attempt is a step): \
             make fewer map tasks (a larger --split-size) or reducers (-R), or run gmr outside an allocation, where tasks run as job arrays"
        ))),
        _ => Ok(()),
    }
}

/// The node names of a Slurm node list (`node[01-04],gpu7`), as `scontrol
/// show hostnames` expands it.
fn hostnames(list: &str) -> Result<Vec<String>> {
    let out = Command::new("scontrol")
        .args(["show", "hostnames", list])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Usage {
            message: format!("cannot run scontrol to read the node list `{list}`: {e}"),
            source: Some(Box::new(e)),
        })?;
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if !out.status.success() || names.is_empty() {
        return Err(Error::usage(format!(
            "scontrol show hostnames `{list}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(names)
}

/// `SLURM_JOB_CPUS_PER_NODE`, `4(x2),2`: the CPUs of each node in order.
fn parse_cpus_per_node(text: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in text.split(',') {
        let (n, times) = match part.split_once("(x") {
            Some((n, rest)) => (n, rest.strip_suffix(')')?.parse().ok()?),
            None => (part, 1),
        };
        let n: usize = n.trim().parse().ok()?;
        cpus.extend(std::iter::repeat_n(n, times));
    }
    Some(cpus)
}

/// Runs task attempts as job steps of the allocation.
pub(crate) struct SlurmExecutor {
    job_id: String,
    /// The node of each slot.
    slots: Vec<String>,
    health: Health,
    /// The binary the steps run.
    gmr: PathBuf,
    /// The `sh -c` command line without the attempt and the task.
    command: String,
    /// `--slurm-args`, given to every srun.
    srun_args: Vec<String>,
    /// The srun of each slot's running attempt.
    running: Vec<Mutex<Option<u32>>>,
    /// What every step's name starts with: this job's steps, to cancel.
    prefix: String,
    /// Each slot's share of its node's memory, as an srun option: a step
    /// otherwise gets all of the job's memory on the node (Slurm 20.11 and
    /// later), and the node's other steps wait for it.
    mem: Vec<Option<String>>,
}

impl SlurmExecutor {
    /// An executor for `job` in `wd` (spec digest `digest`) over `alloc`,
    /// its steps running `gmr` with `srun_args`.
    pub(crate) fn new(
        alloc: &Allocation,
        wd: &WorkDir,
        job: &Job,
        digest: &str,
        gmr: (PathBuf, Option<String>),
        srun_args: Vec<String>,
    ) -> SlurmExecutor {
        let slots: Vec<String> = alloc
            .nodes
            .iter()
            .flat_map(|(node, n)| std::iter::repeat_n(node.clone(), *n))
            .collect();
        let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
        let mem = alloc
            .nodes
            .iter()
            .flat_map(|(_, n)| {
                let arg = match (var("SLURM_MEM_PER_CPU"), var("SLURM_MEM_PER_NODE")) {
                    // --task-memory is the step's memory.
                    _ if job.spec.task_memory.is_some() => slurm_mem(job.spec.task_memory),
                    (Some(per_cpu), _) => Some(format!("--mem-per-cpu={per_cpu}M")),
                    (None, Some(per_node)) => {
                        Some(format!("--mem={}M", (per_node / *n as u64).max(1)))
                    }
                    (None, None) => None,
                };
                std::iter::repeat_n(arg, *n)
            })
            .collect();
        SlurmExecutor {
            job_id: alloc.job_id.clone(),
            health: Health::new(alloc.nodes.iter().map(|n| n.0.clone())),
            command: task_command(&gmr.0, gmr.1.as_deref(), &job.spec.cwd, wd.root(), digest),
            gmr: gmr.0,
            srun_args,
            running: slots.iter().map(|_| Mutex::new(None)).collect(),
            slots,
            prefix: format!("gmr-{}", &job.spec.job[..job.spec.job.len().min(8)]),
            mem,
        }
    }

    fn step_name(&self, slot: usize) -> String {
        format!("{}-{slot}", self.prefix)
    }

    /// Cancels the steps of this job whose names match `filter`, as
    /// `squeue -s` lists them.
    fn scancel_steps(&self, filter: impl Fn(&str) -> bool) {
        let Ok(out) = Command::new("squeue")
            .args(["-h", "-s", "-j", &self.job_id, "-o", "%i %j"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
        else {
            return;
        };
        let steps: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(_, name)| filter(name.trim()))
            .map(|(id, _)| id.to_string())
            .collect();
        if !steps.is_empty() {
            let _ = Command::new("scancel")
                .args(&steps)
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }

    /// Runs one step; returns what it left.
    fn step(&self, slot: usize, script: &str) -> Result<Output, TaskError> {
        let mut child = Command::new("srun")
            .args([
                "--exclusive",
                "-N1",
                "-n1",
                "--quiet",
                "--job-name",
                &self.step_name(slot),
                "-w",
                &self.slots[slot],
            ])
            .args(self.mem[slot].iter())
            .args(&self.srun_args)
            .args(["/bin/sh", "-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| TaskError::host(format!("cannot run srun: {e}")))?;
        let pid = child.id();
        interrupt::register_child(pid as i32);
        *lock(&self.running[slot]) = Some(pid);
        let mut stderr = child.stderr.take().expect("piped");
        let err_reader = std::thread::spawn(move || read_tail(&mut stderr));
        let stdout = read_tail(child.stdout.as_mut().expect("piped"));
        let stderr = err_reader.join().unwrap_or_default();
        let status = child.wait();
        *lock(&self.running[slot]) = None;
        interrupt::unregister_child(pid as i32);
        let status = status.map_err(|e| TaskError::host(format!("srun: {e}")))?;
        let exit = match (status.code(), status.signal()) {
            (Some(c), _) => Exit::Code(c),
            (None, Some(s)) => Exit::Signal(s.to_string()),
            (None, None) => Exit::Code(-1),
        };
        Ok(Output {
            stdout,
            stderr,
            exit,
        })
    }
}

impl Executor for SlurmExecutor {
    fn slots(&self) -> usize {
        self.slots.len()
    }

    fn host_of(&self, slot: usize) -> &str {
        &self.slots[slot]
    }

    fn run(&self, slot: usize, task: TaskId, attempt: u32) -> Result<TaskReport, TaskError> {
        let script = format!(
            "{} --attempt {attempt} {}",
            self.command,
            shell_quote(&task.to_string())
        );
        let out = self.step(slot, &script)?;
        if interrupt::is_set() {
            return Err(TaskError::interrupted());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let answered = stderr
            .lines()
            .any(|l| serde_json::from_str::<TaskError>(l).is_ok());
        // srun itself killed, not by us: the node's or Slurm's doing.
        if let Exit::Signal(s) = &out.exit
            && !answered
        {
            return Err(TaskError::host(format!(
                "srun for a step on {} (job {}) was killed by signal {s}",
                self.slots[slot], self.job_id
            )));
        }
        // The step's own trouble wins over what the task said: a step
        // cancelled or lost with its node kills the task's commands, and
        // the task may live long enough to report that as its failure.
        if out.exit != Exit::Code(0)
            && let Some(trouble) = srun_trouble(&stderr)
        {
            return Err(TaskError::host(format!(
                "job step on {} (job {}): {trouble}",
                self.slots[slot], self.job_id
            )));
        }
        interpret(&self.gmr, out).map_err(|mut e| {
            e.message = format!("{} (Slurm job {})", e.message, self.job_id);
            e
        })
    }

    fn cancel(&self, slot: usize) {
        if let Some(pid) = *lock(&self.running[slot]) {
            interrupt::kill_group(pid as i32);
        }
        let name = self.step_name(slot);
        self.scancel_steps(|n| n == name);
    }

    fn health(&self) -> Option<&Health> {
        Some(&self.health)
    }
}

impl Drop for SlurmExecutor {
    /// After Ctrl-C, the steps whose srun was killed are cancelled too.
    fn drop(&mut self) {
        if interrupt::is_set() {
            let prefix = format!("{}-", self.prefix);
            self.scancel_steps(|n| n.starts_with(&prefix));
        }
    }
}

/// The last error srun or slurmstepd printed about the step itself (not
/// the task's own exit status, which srun reports too).
fn srun_trouble(stderr: &str) -> Option<String> {
    stderr
        .lines()
        .filter(|l| {
            ["srun: error:", "srun: fatal:", "slurmstepd: error:"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .rfind(|l| !l.contains("Exited with exit code"))
        .map(str::to_string)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `--task-memory` as srun's and sbatch's `--mem=NM` (MiB, rounded up).
pub(crate) fn slurm_mem(bytes: Option<u64>) -> Option<String> {
    bytes.map(|b| format!("--mem={}M", b.div_ceil(1 << 20).max(1)))
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_per_node_are_expanded() {
        assert_eq!(parse_cpus_per_node("4(x2),2"), Some(vec![4, 4, 2]));
        assert_eq!(parse_cpus_per_node("16"), Some(vec![16]));
        assert_eq!(parse_cpus_per_node("x"), None);
    }

    #[test]
    fn srun_errors_about_the_step_are_told_from_the_task_exit() {
        assert_eq!(
            srun_trouble("srun: error: n1: task 0: Exited with exit code 1\n"),
            None
        );
        assert_eq!(
            srun_trouble("srun: error: Node failure on n1\nsrun: error: n1: task 0: Exited with exit code 1\n")
                .as_deref(),
            Some("srun: error: Node failure on n1")
        );
    }
}
