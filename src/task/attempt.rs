//! One attempt of one task: what every kind of task needs (its work
//! directory, job, resources, name and number), the run that ends in a
//! commit, and the writing of part files.

use crate::data::codec::{Codec, Encoder};
use crate::data::linebuf::WRITE_BUFFER;
use crate::error::TaskError;
use crate::interrupt::io_failure;
use crate::store::keyed::{self, KeyedWriter, Refusal};
use crate::store::resources::Resources;
use crate::store::workdir::{self, AttemptGuard, WorkDir};
use crate::task::job::Job;
use crate::task::program::Context;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// One attempt of one task of a job: what every kind of task needs.
#[derive(Clone, Copy)]
pub(super) struct Attempt<'a> {
    pub(super) wd: &'a WorkDir,
    pub(super) job: &'a Job,
    pub(super) res: &'a Resources,
    /// The task's name, `map-00003`.
    pub(super) name: &'a str,
    pub(super) attempt: u32,
}

impl Attempt<'_> {
    /// Fails unless the work directory still holds this attempt's job: an
    /// attempt that outlived its job (on a host cut off from it) must
    /// never commit into a later job run in the same directory, which has
    /// another identity, or none yet.
    pub(super) fn fence(&self) -> Result<(), TaskError> {
        // The identity is near the start of job.json (see
        // `JobSpec::identity_mark`): reading its head costs the same for a
        // job of a million splits as of one.
        let mut head = [0u8; 256];
        let read = fs::File::open(self.wd.spec_path()).and_then(|f| {
            use std::os::unix::fs::FileExt;
            f.read_at(&mut head, 0)
        });
        let n = match read {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            // A read that failed says nothing of whose the directory is:
            // the attempt fails, and is retried.
            Err(e) => {
                let path = self.wd.spec_path();
                return Err(TaskError::io(
                    crate::error::io_message("cannot read", &path, &e),
                    &e,
                ));
            }
        };
        let mark = self.job.spec.identity_mark();
        let held = memchr::memmem::find(&head[..n], mark.as_bytes()).is_some();
        match held {
            true => Ok(()),
            false => Err(TaskError::fatal(format!(
                "{}: the work directory {} no longer holds job {}; this attempt of it stops without committing",
                self.name,
                self.wd.root().display(),
                self.job.spec.job
            ))),
        }
    }

    /// Fails unless the output directory is still claimed for this
    /// attempt's job (see [`crate::store::output::claim`]): the work
    /// directory's identity says nothing of an output directory that a
    /// later job, in another work directory, took over.
    pub(super) fn fence_output(&self) -> Result<(), TaskError> {
        let output = &self.job.spec.output;
        let claimed = crate::store::output::claimed_by(output).map_err(|e| {
            let marker = crate::store::workdir::claim_marker(output);
            TaskError::io(crate::error::io_message("cannot read", &marker, &e), &e)
        })?;
        match claimed {
            Some(job) if job == self.job.spec.job => Ok(()),
            _ => Err(TaskError::fatal(format!(
                "{}: the output directory {} is no longer job {}'s (another job took it over, or this one ended); this attempt stops without committing",
                self.name,
                output.display(),
                self.job.spec.job
            ))),
        }
    }

    /// How the task runs one of the job's commands: in the job's
    /// directory, with its key spec and the open-file limit commands get.
    pub(super) fn context<'a>(
        &'a self,
        role: &'a str,
        env: &'a [(String, String)],
        log: &'a Path,
    ) -> Context<'a> {
        Context {
            role,
            cwd: &self.job.spec.cwd,
            env,
            log,
            key: self.job.spec.key,
            nofile: self.res.child_nofile,
            ok_exit: &self.job.spec.ok_exit,
            timeout: self.job.spec.task_timeout(),
            memory: self.job.spec.task_memory,
            stop_feed: false,
        }
    }

    /// The environment the task's commands see (Hadoop Streaming names
    /// too); docs/contracts.md §2 lists them.
    pub(super) fn env(&self, partition: usize) -> Vec<(String, String)> {
        let (name, attempt) = (self.name, self.attempt);
        // The job's variables (`--env`, the locale) first: gmr's own come
        // after them and win.
        let mut env = self.job.spec.env.clone();
        env.extend([
            ("GMR_TASK".into(), name.into()),
            ("GMR_ATTEMPT".into(), attempt.to_string()),
            ("GMR_WORKDIR".into(), self.wd.root().display().to_string()),
            ("mapreduce_task_id".into(), name.into()),
            (
                "mapreduce_task_attempt_id".into(),
                format!("{name}_{attempt}"),
            ),
            ("mapreduce_task_partition".into(), partition.to_string()),
        ]);
        env
    }

    /// Whether output parts are synced to disk: parts in the user's output
    /// directory are; parts in the work directory, which gmr copies to
    /// stdout and removes, or the next step of the job reads, need not be
    /// (a resume redoes a part of another length than its report says).
    pub(super) fn durable_parts(&self) -> bool {
        self.job.spec.output != self.wd.default_output() && !self.job.spec.intermediate
    }

    /// The stderr log of this attempt's command in `role` (a combiner's is
    /// kept apart from the mapper's).
    pub(super) fn log(&self, role: &str) -> std::path::PathBuf {
        match role {
            "combiner" => self.wd.combiner_log_path(self.name, self.attempt),
            _ => self.wd.log_path(self.name, self.attempt),
        }
    }
}

/// An attempt of a part file being written (compressed with
/// `--compress`): write errors name the file.
pub(super) struct PartOut {
    pub(super) out: Encoder<BufWriter<File>>,
    pub(super) path: std::path::PathBuf,
}

impl Write for PartOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf).map_err(|e| self.named(e))
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.out.write_all(buf).map_err(|e| self.named(e))
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush().map_err(|e| self.named(e))
    }
}

impl PartOut {
    /// `e`, its message naming the file (its kind kept: a full disk still
    /// reads as one).
    pub(super) fn named(&self, e: io::Error) -> io::Error {
        io::Error::new(
            e.kind(),
            crate::error::io_message("cannot write", &self.path, &e),
        )
    }
}

/// Writes an attempt of the file `target` with `write` (compressed with
/// `codec`), closes it (synced to disk when `durable`: a part of the
/// user's output directory), then commits it: a part is never committed
/// short. Returns what `write` returned and the file's length.
pub(super) fn write_part<T>(
    target: &Path,
    at: &Attempt,
    (durable, codec): (bool, Option<Codec>),
    write: impl FnOnce(&mut PartOut) -> Result<T, TaskError>,
) -> Result<(T, u64), TaskError> {
    let guard = AttemptGuard::new(workdir::attempt_path(target, at.attempt));
    // A part of the user's output directory gets the umask's permissions;
    // anything in the work directory stays private.
    let create = if durable {
        crate::files::create_output
    } else {
        crate::files::create_new
    };
    let file = create(guard.path()).map_err(io_failure("cannot create", guard.path()))?;
    let encoder = Encoder::new(codec, BufWriter::with_capacity(WRITE_BUFFER, file))
        .map_err(io_failure("cannot write", guard.path()))?;
    let mut out = PartOut {
        out: encoder,
        path: guard.path().to_path_buf(),
    };
    let value = write(&mut out)?;
    let file = out
        .out
        .finish()
        .map_err(io_failure("cannot write", guard.path()))?
        .into_inner()
        .map_err(|e| e.into_error())
        .map_err(io_failure("cannot write", guard.path()))?;
    let len = file
        .metadata()
        .map_err(io_failure("cannot write", guard.path()))?
        .len();
    crate::files::close_file(file, durable).map_err(io_failure("cannot write", guard.path()))?;
    at.fence()?;
    if durable {
        at.fence_output()?;
    }
    workdir::commit(guard.path(), target)?;
    guard.keep();
    Ok((value, len))
}

/// Writes output part `p` of the job with `write`: the part file itself
/// ([`write_part`]), or with `--output-by-key` its lines filed by key
/// (`store/keyed.rs`) into an attempt directory, moved into the output
/// directory once whole, its list of files kept as the task's commit
/// record ([`WorkDir::keys_path`]). Returns `write`'s value and the bytes
/// written.
pub(super) fn write_output<T>(
    at: &Attempt,
    p: usize,
    write: impl FnOnce(&mut dyn Write) -> Result<T, TaskError>,
) -> Result<(T, u64), TaskError> {
    let spec = &at.job.spec;
    let target = spec.part_path(p);
    let durable = at.durable_parts();
    let Some(limit) = spec.by_key else {
        return write_part(&target, at, (durable, spec.compress), |out| write(out));
    };
    let guard = AttemptGuard::new(workdir::attempt_path(&target, at.attempt));
    fs::create_dir(guard.path()).map_err(io_failure("cannot create", guard.path()))?;
    // A fused map-only step's lines are its mapper's: keyed as it says.
    let key = spec
        .then_map
        .as_ref()
        .and_then(|t| t.key)
        .unwrap_or(spec.key);
    let mut out = KeyedWriter::new(
        guard.path(),
        key,
        key.eol,
        (limit, spec.max_record),
        spec.compress,
        durable,
    );
    let refused = |out: &KeyedWriter| {
        out.refused().map(|why| {
            TaskError::fatal(match why {
                Refusal::TooManyKeys(n) => format!(
                    "{} wrote more than {n} keys with --output-by-key (a directory each); nothing of it is in {}: check the key (the text before the separator, --key-fields), or raise --max-output-keys",
                    at.name,
                    spec.output.display()
                ),
                Refusal::KeyTooLong(n) => format!(
                    "{} wrote a line of over {n} bytes without a separator, so no key for --output-by-key; nothing of it is in {}: raise --max-record, or check the separator",
                    at.name,
                    spec.output.display()
                ),
            })
        })
    };
    let value = match write(&mut out) {
        Ok(value) => value,
        Err(e) => return Err(refused(&out).unwrap_or(e)),
    };
    if let Some(e) = refused(&out) {
        return Err(e);
    }
    let made = out
        .finish()
        .map_err(io_failure("cannot write", guard.path()))?;
    at.fence()?;
    if durable {
        at.fence_output()?;
    }
    let file = target.file_name().unwrap_or_default().to_string_lossy();
    keyed::commit(guard.path(), &spec.output, &file, &made, durable)
        .map_err(io_failure("cannot commit the keys of", &target))?;
    let bytes = made.iter().map(|(_, len)| len).sum();
    // Written whole, then renamed over the record of an earlier attempt
    // that committed its files but not its report (a crash, a backup
    // attempt that lost): the same files, as this attempt wrote them.
    let record = at.wd.keys_path(at.name);
    let tmp = workdir::attempt_path(&record, at.attempt);
    crate::files::write_json(&tmp, &made).map_err(|e| TaskError::task(e.to_string()))?;
    fs::rename(&tmp, &record).map_err(io_failure("cannot commit", &record))?;
    Ok((value, bytes))
}

/// The Slurm job step or array element this process runs as, from
/// Slurm's environment: `JOB_INDEX` for an array element, `JOB.STEP` for
/// a step.
pub(super) fn slurm_job() -> Option<String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let (Some(job), Some(index)) = (var("SLURM_ARRAY_JOB_ID"), var("SLURM_ARRAY_TASK_ID")) {
        return Some(format!("{job}_{index}"));
    }
    let job = var("SLURM_JOB_ID")?;
    Some(match var("SLURM_STEP_ID") {
        Some(step) => format!("{job}.{step}"),
        None => job,
    })
}
