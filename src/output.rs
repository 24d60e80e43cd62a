//! The job's output (docs/dev/architecture.md §3): the output directory checked and
//! made ready before anything runs, and, once every part is committed,
//! `_SUCCESS` written last, or the parts copied to standard output in
//! partition order.

use crate::error::{Error, Result};
use crate::workdir::{output_part, success_marker};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Checks the output directory `dir` and makes it ready (empty); returns
/// its absolute path, or None when the output goes to stdout. Nothing in
/// an existing non-empty directory is touched unless `force`.
pub fn prepare(dir: Option<&Path>, force: bool) -> Result<Option<PathBuf>> {
    let Some(dir) = dir else {
        return Ok(None);
    };
    if let Ok(mut entries) = fs::read_dir(dir) {
        if entries.next().is_some() {
            if !force {
                return Err(Error::usage(format!(
                    "output directory {} exists and is not empty; remove it, choose another, or pass --force to replace it",
                    dir.display()
                )));
            }
            fs::remove_dir_all(dir)
                .map_err(|e| Error::input("cannot replace output directory", dir, e))?;
        }
    } else if dir.exists() {
        return Err(Error::usage(format!(
            "output {} exists and is not a directory",
            dir.display()
        )));
    }
    fs::create_dir_all(dir).map_err(|e| Error::input("cannot create output directory", dir, e))?;
    std::path::absolute(dir)
        .map(Some)
        .map_err(|e| Error::input("bad output directory", dir, e))
}

/// Writes `_SUCCESS` into `output`, the last file of a finished job.
pub fn mark_success(output: &Path) -> Result<()> {
    let marker = success_marker(output);
    File::create(&marker)
        .map(drop)
        .map_err(|e| Error::io("cannot write", &marker, e))
}

/// Copies the `parts` parts of `output` to stdout, in order. A closed
/// stdout (`| head`) is not an error.
pub fn copy_to_stdout(output: &Path, parts: usize) -> Result<()> {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    for p in 0..parts {
        let path = output_part(output, p);
        let mut f = File::open(&path).map_err(|e| Error::io("cannot read part", &path, e))?;
        match io::copy(&mut f, &mut out) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(Error::io("cannot copy to stdout", &path, e)),
        }
    }
    match out.flush() {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(Error::Job {
            message: format!("cannot write stdout: {e}"),
            source: Some(Box::new(e)),
        }),
        _ => Ok(()),
    }
}
