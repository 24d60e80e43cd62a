//! The job spec: everything a task needs besides its id, stored as JSON in
//! the work directory so that every host reads the same job
//! (docs/contracts.md §4). [`crate::task::job::Job`] is the spec
//! with its programs parsed.

use crate::data::codec::Codec;
use crate::data::order::Order;
use crate::data::record::KeySpec;
use crate::data::sortkey::SortKeys;
use crate::data::split::{InputStamp, Split};
use crate::error::{Error, Result};
use crate::store::workdir::{self, WorkDir};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::PathBuf;

/// Version of the work directory format; a task refuses other versions.
/// Version 2 added the job's identity, `--ok-exit` and `--task-timeout`;
/// version 3 the job's environment; version 4 splits' `codec` (gzip,
/// zstd, bzip2, xz, by their magic bytes); version 5 the job's order
/// (`sort_keys`, `total_order`, `cuts`), which a task of an older gmr would
/// ignore and sort wrongly; version 6 `by_key` (`--output-by-key`) and
/// `key.eol` (`-z`), which it would ignore and write plain parts, or read
/// NUL-ended records as lines; version 7 counted runs (a segment's
/// `text_bytes`), which it would read as lines with a count in front.
pub(crate) const FORMAT_VERSION: u32 = 7;

/// The mapper of a later step that runs inside the reducers of the step
/// before it: of a map-only step, or of a step with reducers whose map
/// tasks then read its output with `cat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ThenMap {
    /// Its mapper.
    pub(crate) mapper: String,
    /// The exit statuses of its mapper that mean success.
    pub(crate) ok_exit: Vec<i32>,
    /// Its own key (`--separator`, `--key-fields`): what
    /// `--output-by-key` files its output lines by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) key: Option<KeySpec>,
}

/// What a job runs: everything a task needs besides its id.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct JobSpec {
    /// Work directory format version.
    pub(crate) version: u32,
    /// The job's identity, unique to it (see [`new_job_id`]): every commit
    /// record and manifest line of the job carries it, so that the data of
    /// two jobs can never mix.
    pub(crate) job: String,
    /// The directory tasks run in (the user's current directory), so that
    /// relative paths in commands work on every host.
    pub(crate) cwd: PathBuf,
    /// The input files, as they were when the job was planned.
    #[serde(default)]
    pub(crate) inputs: Vec<InputStamp>,
    /// The input splits; map task `i` reads `splits[i]`.
    pub(crate) splits: Vec<Split>,
    /// The mapper command.
    pub(crate) mapper: String,
    /// The combiner command, run on each sorted map-side run.
    pub(crate) combiner: Option<String>,
    /// The reducer command (set by `gmr reduce` when stages run one by one).
    pub(crate) reducer: Option<String>,
    /// Number of reduce partitions; 0 is a map-only job.
    pub(crate) reducers: u32,
    /// How records split into key and value.
    pub(crate) key: KeySpec,
    /// `--sort-key` definitions in sort(1)'s `-k` syntax, in order: records
    /// of a partition order by them, then by the whole line. None: by key,
    /// value and line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) sort_keys: Vec<String>,
    /// `--total-order`: partitions hold consecutive ranges of the order,
    /// between `cuts`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) total_order: bool,
    /// The output is a step's, read by the next step of a job of several
    /// (`control/steps.rs`), in the work directory: its parts are not
    /// synced to disk, as the work directory's own files are not.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) intermediate: bool,
    /// The next step's mapper fused into this job's reducers (`--then -m
    /// CMD -R 0` after a reduce step, or `--then -m CMD -r CMD2` after one
    /// with its default reducers): each reducer's output goes through
    /// this mapper, whose output is the part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) then_map: Option<ThenMap>,
    /// The cut points of a total order, ascending, in hex: the ranks (see
    /// [`crate::data::order::Order::rank`]) that end partitions 0, 1, …, chosen
    /// from a sample of the mapper's output when the job was planned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) cuts: Vec<String>,
    /// Bytes of mapper output a map task sorts in memory before spilling.
    pub(crate) sort_buffer: u64,
    /// The longest record (line of mapper or combiner output) a task
    /// holds; a longer one stops the job (`--max-record`).
    #[serde(default = "default_max_record")]
    pub(crate) max_record: u64,
    /// Whether the files of a map task's split go to one mapper (rather
    /// than a mapper each, with its own `GMR_INPUT_FILE`).
    #[serde(default)]
    pub(crate) one_mapper_per_task: bool,
    /// Where parts are committed.
    pub(crate) output: PathBuf,
    /// The exit statuses of the job's commands that mean success.
    pub(crate) ok_exit: Vec<i32>,
    /// Milliseconds a command may show no sign of life before its attempt
    /// is killed; 0 for no limit.
    pub(crate) task_timeout_ms: u64,
    /// `--task-memory`: bytes each process of a command may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) task_memory: Option<u64>,
    /// `--memfree`: no attempt starts on a host with less available memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) memfree: Option<u64>,
    /// `--output-by-key`: each part's lines filed by key into
    /// `output/KEY/part-NNNNN` (`store/keyed.rs`), at most this many keys
    /// per task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) by_key: Option<u64>,
    /// How output parts are compressed (`--compress`), if they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) compress: Option<Codec>,
    /// Variables every command of the job gets, on every host: `--env`,
    /// and the locale of the user who started the job (see
    /// [`job_env`]).
    pub(crate) env: Vec<(String, String)>,
}

/// `--max-record`'s default, also for specs saved before it existed.
pub(crate) const DEFAULT_MAX_RECORD: u64 = 64 << 20;

fn default_max_record() -> u64 {
    DEFAULT_MAX_RECORD
}

impl JobSpec {
    /// Reads the job spec of `wd` and its digest (SHA-256 of `job.json`,
    /// hex), of the same bytes: remote tasks get the digest on their
    /// command line and refuse a spec that changed since (whoever could
    /// write the work directory could otherwise make every host run their
    /// commands).
    pub(crate) fn load_with_digest(wd: &WorkDir) -> Result<(JobSpec, String)> {
        let path = wd.spec_path();
        let bytes =
            fs::read(&path).map_err(|e| wd_error(wd, Error::io("cannot read", &path, e)))?;
        Ok((JobSpec::parse(wd, &bytes)?, hex_sha256(&bytes)))
    }

    /// Reads the job spec of `wd`, which must have the digest `want`: the
    /// bytes checked are the bytes parsed.
    pub(crate) fn load_checked(wd: &WorkDir, want: &str) -> Result<JobSpec> {
        let (spec, have) = JobSpec::load_with_digest(wd)?;
        if have != want {
            return Err(Error::usage(format!(
                "the job spec {} changed since the job started (digest {have}, the job's {want}): refusing to run it",
                wd.spec_path().display()
            )));
        }
        Ok(spec)
    }

    /// Reads the job spec of the work directory `wd`.
    pub(crate) fn load(wd: &WorkDir) -> Result<JobSpec> {
        JobSpec::load_with_digest(wd).map(|(spec, _)| spec)
    }

    fn parse(wd: &WorkDir, bytes: &[u8]) -> Result<JobSpec> {
        let spec: JobSpec = serde_json::from_slice(bytes).map_err(|e| {
            wd_error(
                wd,
                Error::job(format!("cannot parse {}: {e}", wd.spec_path().display())),
            )
        })?;
        if spec.version != FORMAT_VERSION {
            return Err(Error::usage(format!(
                "work directory {} has format {}, this gmr reads format {FORMAT_VERSION}; \
                 rerun the job with this version",
                wd.root().display(),
                spec.version
            )));
        }
        Ok(spec)
    }

    /// The bytes by which `job.json` names this job, within its first 256
    /// bytes (`version` and `job` are the spec's first fields): what a
    /// task's fence looks for without parsing the whole spec.
    pub(crate) fn identity_mark(&self) -> String {
        format!("\"job\": \"{}\"", self.job)
    }

    /// Output part `p`: `part-NNNNN` in the output directory, with the
    /// extension of `--compress`.
    pub(crate) fn part_path(&self, p: usize) -> PathBuf {
        let ext = self.compress.map_or("", Codec::extension);
        workdir::output_part(&self.output, p, ext)
    }

    /// The order of the job's map output: its key, sort keys and cuts.
    pub(crate) fn order(&self) -> Result<Order> {
        let mut order = Order::new(self.key);
        if !self.sort_keys.is_empty() {
            let keys =
                SortKeys::parse(&self.sort_keys, self.key.separator).map_err(Error::usage)?;
            order = order.with_sort_keys(keys);
        }
        if self.total_order {
            let cuts = self
                .cuts
                .iter()
                .map(|c| from_hex(c))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| Error::job("the job spec's cut points are not hex"))?;
            order = order.with_cuts(cuts);
        }
        Ok(order)
    }

    /// Whether records of one key are consecutive in a partition's order:
    /// by default, or when the sort keys start with the key's fields
    /// compared as plain bytes. Only then may records be combined by key
    /// before they all meet (a combiner would otherwise see a key's
    /// records in groups that depend on the splits).
    pub(crate) fn keys_consecutive(&self) -> bool {
        match self.sort_keys.is_empty() {
            true => true,
            false => SortKeys::parse(&self.sort_keys, self.key.separator)
                .is_ok_and(|k| k.starts_with_fields(self.key.key_fields)),
        }
    }

    /// The longest record a task takes (`--max-record`), in memory's terms.
    pub(crate) fn max_record_len(&self) -> usize {
        usize::try_from(self.max_record).unwrap_or(usize::MAX)
    }

    /// How long a command may show no sign of life, if limited.
    pub(crate) fn task_timeout(&self) -> Option<std::time::Duration> {
        (self.task_timeout_ms > 0).then(|| std::time::Duration::from_millis(self.task_timeout_ms))
    }

    /// Writes the job spec into `wd` (atomically, replacing an older one).
    /// Returns the digest of the bytes written (SHA-256, as
    /// [`JobSpec::load_with_digest`] reads it).
    pub(crate) fn save(&self, wd: &WorkDir) -> Result<String> {
        let path = wd.spec_path();
        let tmp = workdir::attempt_path(&path, 0);
        let bytes = crate::files::json_bytes(self);
        crate::files::write_new(&tmp, &bytes)?;
        fs::rename(&tmp, &path)
            .and_then(|()| crate::files::sync_dir(wd.root()))
            .map_err(|e| Error::io("cannot write job spec", &path, e))?;
        Ok(hex_sha256(&bytes))
    }
}

/// A spec that cannot be read: the user's (a wrong --workdir), or on a
/// host, a work directory the host does not see: exit 2 either way, which
/// the SSH executor counts against the host.
fn wd_error(wd: &WorkDir, e: Error) -> Error {
    match e {
        Error::Job { message, source } | Error::Usage { message, source } => Error::Usage {
            message: format!(
                "{message}; is {} the work directory of a gmr job?",
                wd.root().display()
            ),
            source,
        },
        e => e,
    }
}

/// `bytes` in hex, two lower-case digits a byte.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of `to_hex`'s output; None for anything else.
fn from_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// SHA-256 of `bytes`, in hex.
fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    to_hex(&sha2::Sha256::digest(bytes))
}

/// A new job identity: unique across hosts, processes and time (16 hex
/// digits of a hash of the host, the process, the clock and a counter).
pub(crate) fn new_job_id() -> String {
    use std::hash::Hasher;
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = twox_hash::XxHash3_64::with_seed(0);
    h.write(workdir::hostname().as_bytes());
    h.write_u32(std::process::id());
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(now);
    format!("{:016x}", h.finish())
}

/// Variables of the user's environment every command gets by default, on
/// every host, besides `LC_*`: the locale (so that `sort`, `awk` and
/// `grep` compare and classify bytes alike everywhere) and the time zone.
pub(crate) const FORWARDED_BY_DEFAULT: &[&str] = &["LANG", "LANGUAGE", "TZ"];

/// The variables of a job: the locale (`LC_*` and those of
/// [`FORWARDED_BY_DEFAULT`]) as gmr was started with them, then each
/// `--env` flag: `NAME=VALUE`, or `NAME` for its value here (a `NAME` that
/// is not set is a usage error). Later values win; names are sorted, so
/// the spec is the same however the flags were ordered.
pub(crate) fn job_env(flags: &[String]) -> Result<Vec<(String, String)>> {
    let mut env = std::collections::BTreeMap::new();
    for (name, value) in std::env::vars_os() {
        let (Some(name), Some(value)) = (name.to_str(), value.to_str()) else {
            continue;
        };
        if name.starts_with("LC_") || FORWARDED_BY_DEFAULT.contains(&name) {
            env.insert(name.to_string(), value.to_string());
        }
    }
    for flag in flags {
        let (name, value) = match flag.split_once('=') {
            Some((name, value)) => (name, value.to_string()),
            None => {
                let value = std::env::var(flag).map_err(|_| {
                    Error::usage(format!(
                        "--env {flag}: {flag} is not set here; give its value (--env {flag}=VALUE) or export it"
                    ))
                })?;
                (flag.as_str(), value)
            }
        };
        let valid = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(Error::usage(format!(
                "--env {flag}: `{name}` is not a variable name (letters, digits and _)"
            )));
        }
        env.insert(name.to_string(), value);
    }
    Ok(env.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_is_at_the_head_of_job_json() {
        let split = Split {
            path: "/a".into(),
            start: 0,
            end: 9,
            codec: None,
            more: Vec::new(),
            origin: None,
        };
        let spec = JobSpec {
            version: FORMAT_VERSION,
            job: new_job_id(),
            cwd: "/a/very/long/current/directory/".repeat(20).into(),
            inputs: Vec::new(),
            splits: vec![split; 1000],
            mapper: "m".repeat(1000),
            combiner: None,
            reducer: None,
            reducers: 1,
            key: KeySpec::default(),
            sort_keys: Vec::new(),
            total_order: false,
            intermediate: false,
            then_map: None,
            cuts: Vec::new(),
            sort_buffer: 1,
            max_record: DEFAULT_MAX_RECORD,
            one_mapper_per_task: false,
            output: "/o".into(),
            ok_exit: vec![0],
            task_timeout_ms: 0,
            task_memory: None,
            memfree: None,
            by_key: None,
            compress: None,
            env: vec![("LANG".into(), "C".repeat(1000))],
        };
        let bytes = crate::files::json_bytes(&spec);
        let head = String::from_utf8_lossy(&bytes[..256]);
        assert!(head.contains(&spec.identity_mark()), "{head}");
        assert_ne!(new_job_id(), spec.job);
    }
}
