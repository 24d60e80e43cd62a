//! Error types of the library and the exit codes they map to (docs/contracts.md §7).
//!
//! Every error carries a message that says what failed, where, and what to
//! do; `main` prints it as one `gmr: …` line and exits with [`Error::exit_code`].

use std::io;
use std::path::Path;

/// Process exit status, as documented in docs/contracts.md §7 and the man pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// The job (or command) succeeded.
    Success = 0,
    /// The job failed: a task failed too often, or no host could run tasks.
    JobFailed = 1,
    /// Usage or input error: bad flag, missing input, output exists, …
    Usage = 2,
    /// Interrupted by SIGINT or SIGTERM.
    Interrupted = 130,
}

impl ExitCode {
    /// The exit code a gmr process ended with, if it is one of gmr's (the
    /// remote task protocol reads `gmr task`'s status with this).
    pub(crate) fn from_status(code: i32) -> Option<ExitCode> {
        [
            ExitCode::Success,
            ExitCode::JobFailed,
            ExitCode::Usage,
            ExitCode::Interrupted,
        ]
        .into_iter()
        .find(|c| *c as i32 == code)
    }
}

/// The underlying error an [`Error`] keeps as its source.
pub(crate) type Cause = Box<dyn std::error::Error + Send + Sync>;

/// An error of gmr's library. The message is the one line `main` prints;
/// the cause it came from (an I/O error, a parse error) stays reachable
/// through [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The user asked for something that cannot work (exit 2). Nothing ran.
    #[error("{message}")]
    Usage {
        /// What is wrong and what to do, naming the file, host or flag.
        message: String,
        /// The error it came from.
        #[source]
        source: Option<Cause>,
    },
    /// The job ran and failed (exit 1).
    #[error("{message}")]
    Job {
        /// What failed and what to do, naming the file, host or task.
        message: String,
        /// The error it came from.
        #[source]
        source: Option<Cause>,
    },
    /// The job was interrupted by a signal (exit 130).
    #[error("interrupted; running tasks were stopped and their partial output removed")]
    Interrupted,
}

impl Error {
    /// A usage error (exit 2) with no underlying cause.
    pub(crate) fn usage(message: impl Into<String>) -> Error {
        Error::Usage {
            message: message.into(),
            source: None,
        }
    }

    /// A job failure (exit 1) with no underlying cause.
    pub(crate) fn job(message: impl Into<String>) -> Error {
        Error::Job {
            message: message.into(),
            source: None,
        }
    }

    /// The exit status this error ends the process with.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Usage { .. } => ExitCode::Usage,
            Error::Job { .. } => ExitCode::JobFailed,
            Error::Interrupted => ExitCode::Interrupted,
        }
    }

    /// The same error with `more` added to its message (its kind and cause
    /// kept).
    pub(crate) fn context(self, more: impl FnOnce(&str) -> String) -> Error {
        match self {
            Error::Usage { message, source } => Error::Usage {
                message: more(&message),
                source,
            },
            Error::Job { message, source } => Error::Job {
                message: more(&message),
                source,
            },
            Error::Interrupted => Error::Interrupted,
        }
    }

    /// An I/O error on `path` while doing `what`, as a job failure.
    pub(crate) fn io(what: &str, path: &Path, err: io::Error) -> Error {
        Error::Job {
            message: io_message(what, path, &err),
            source: Some(Box::new(err)),
        }
    }

    /// An I/O error on a user-named input, as a usage error.
    pub(crate) fn input(what: &str, path: &Path, err: io::Error) -> Error {
        Error::Usage {
            message: io_message(what, path, &err),
            source: Some(Box::new(err)),
        }
    }
}

/// "cannot read input /x/y: No such file or directory (os error 2); hint".
pub(crate) fn io_message(what: &str, path: &Path, err: &io::Error) -> String {
    let hint = match err.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => {
            "; free some space there, or give the job a larger filesystem (-o DIR for the output, --workdir DIR for the rest)"
        }
        Some(libc::EACCES) | Some(libc::EPERM) => "; check the permissions",
        Some(libc::ENOENT) => "; check the path",
        _ => "",
    };
    format!("{what} {}: {err}{hint}", path.display())
}

/// The cause of an I/O error that retrying cannot mend (an input changed
/// while the job ran): [`TaskError::io`] makes it a [`FailureKind::Fatal`]
/// failure, whatever carried it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Unrecoverable(pub String);

/// Result with gmr's [`Error`].
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// Why one attempt of a task failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The task's own work failed (a command exited non-zero, bad output):
    /// retry it, elsewhere if possible.
    Task,
    /// The place it ran failed (connection lost, host unusable): retry it
    /// elsewhere and count it against the host.
    Host,
    /// The job is being interrupted, or the attempt was cancelled because
    /// another attempt of its task won: do not retry.
    Interrupted,
    /// The task showed no sign of life for `--task-timeout` and was
    /// killed: retry it, elsewhere if possible, as a task failure.
    Timeout,
    /// Retrying cannot help (the disk is full, an input changed while the
    /// job ran): the job stops at once with this error.
    Fatal,
}

impl FailureKind {
    /// The attempt's status in the job log and the status document:
    /// `failed` (a fatal failure too), `host_failed`, `interrupted` or
    /// `timed_out`.
    pub(crate) fn status(self) -> &'static str {
        match self {
            FailureKind::Task | FailureKind::Fatal => "failed",
            FailureKind::Host => "host_failed",
            FailureKind::Interrupted => "interrupted",
            FailureKind::Timeout => "timed_out",
        }
    }
}

/// One failed attempt of a task.
#[derive(Debug, Clone, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("{message}")]
pub struct TaskError {
    /// What kind of failure it was.
    pub(crate) kind: FailureKind,
    /// What failed, in one line.
    pub(crate) message: String,
    /// The last lines the task wrote to stderr.
    #[serde(default)]
    pub(crate) stderr_tail: String,
}

impl TaskError {
    /// A failure of the task itself.
    pub fn task(message: impl Into<String>) -> TaskError {
        TaskError {
            kind: FailureKind::Task,
            message: message.into(),
            stderr_tail: String::new(),
        }
    }

    /// A failure of the host the task ran on.
    pub fn host(message: impl Into<String>) -> TaskError {
        TaskError {
            kind: FailureKind::Host,
            message: message.into(),
            stderr_tail: String::new(),
        }
    }

    /// The attempt was stopped because another attempt of its task (a
    /// backup) finished first; it is not a failure of the task.
    pub fn cancelled() -> TaskError {
        TaskError {
            kind: FailureKind::Interrupted,
            message: "cancelled: another attempt of the task finished first".into(),
            stderr_tail: String::new(),
        }
    }

    /// A failure caused by the I/O error `e`: a full disk or an exceeded
    /// quota stops the job (retrying in the same place fails the same
    /// way); anything else is a failure of the task.
    pub(crate) fn io(message: impl Into<String>, e: &io::Error) -> TaskError {
        let unrecoverable = e.get_ref().is_some_and(|c| c.is::<Unrecoverable>());
        match e.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => TaskError::fatal(message),
            _ if unrecoverable => TaskError::fatal(message),
            _ => TaskError::task(message),
        }
    }

    /// A failure that retrying cannot mend.
    pub(crate) fn fatal(message: impl Into<String>) -> TaskError {
        TaskError {
            kind: FailureKind::Fatal,
            message: message.into(),
            stderr_tail: String::new(),
        }
    }

    /// The job is being interrupted.
    pub(crate) fn interrupted() -> TaskError {
        TaskError {
            kind: FailureKind::Interrupted,
            message: "interrupted".into(),
            stderr_tail: String::new(),
        }
    }
}

impl From<Error> for TaskError {
    fn from(e: Error) -> TaskError {
        let io = match &e {
            Error::Usage { source, .. } | Error::Job { source, .. } => {
                source.as_ref().and_then(|s| s.downcast_ref::<io::Error>())
            }
            Error::Interrupted => return TaskError::interrupted(),
        };
        match io {
            // A full disk while writing a report or committing is as
            // fatal as while writing a part.
            Some(cause) => TaskError::io(e.to_string(), cause),
            None => TaskError::task(e.to_string()),
        }
    }
}
