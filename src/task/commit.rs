//! Whether a task committed already: its report and its whole output
//! are in place, so that a resumed job need not run it again.

use crate::store::spec::JobSpec;
use crate::store::workdir::WorkDir;
use crate::task::report::TaskReport;
use std::fs::{self};
use std::path::Path;

use crate::task::TaskId;
use crate::task::map::MapIndex;

/// The report of `task` when it committed already (its report and its
/// output exist), so that a resumed job need not run it again.
pub(crate) fn committed_report(wd: &WorkDir, spec: &JobSpec, task: TaskId) -> Option<TaskReport> {
    let writes_parts = match task {
        TaskId::Map(_) => spec.reducers == 0,
        TaskId::Shuffle(_) => false,
        TaskId::Reduce(_) => true,
    };
    if writes_parts && spec.by_key.is_some() {
        return committed_by_key(wd, spec, task);
    }
    let output = match task {
        TaskId::Map(i) if spec.reducers == 0 => spec.part_path(i),
        TaskId::Map(i) => WorkDir::map_index(&wd.map_dir(i)),
        TaskId::Shuffle(p) => wd.shuffle_part(p),
        TaskId::Reduce(p) => spec.part_path(p as usize),
    };
    if !output.exists() {
        return None;
    }
    let report: TaskReport = crate::files::read_json(&wd.report_path(&task.to_string())).ok()?;
    // A commit of another job (a work directory reused by hand) is none of
    // this job's.
    if report.job != spec.job {
        return None;
    }
    // Runs, shuffle parts and parts bound for stdout are not synced to
    // disk (see `crate::files::close_file`): after a crash of the machine, one
    // of another length than its index or report says is removed, and its
    // task redone. A file that cannot be read now is left alone (the task
    // is simply not reused).
    let len = |p: &Path| fs::metadata(p).ok().map(|m| m.len());
    let (target, whole) = match task {
        TaskId::Map(i) if spec.reducers > 0 => {
            let dir = wd.map_dir(i);
            let bytes = fs::read(&output).ok()?;
            let whole = serde_json::from_slice::<MapIndex>(&bytes)
                .ok()
                .map(|index| {
                    let end = index.segments.last().map_or(0, |s| s.end);
                    len(&WorkDir::map_out(&dir)) == Some(end)
                });
            (dir, whole.unwrap_or(false))
        }
        _ => {
            let have = len(&output)?;
            (output, have == report.part_bytes)
        }
    };
    if !whole {
        crate::files::remove_path(&target);
        return None;
    }
    Some(report)
}

/// [`committed_report`] of a task whose output is filed by key: its list
/// of files and its report are in place, and so is every file it lists, at
/// its size. A task whose files are not all there runs again (and replaces
/// those that are).
fn committed_by_key(wd: &WorkDir, spec: &JobSpec, task: TaskId) -> Option<TaskReport> {
    let name = task.to_string();
    let made: Vec<(String, u64)> = crate::files::read_json(&wd.keys_path(&name)).ok()?;
    let report: TaskReport = crate::files::read_json(&wd.report_path(&name)).ok()?;
    if report.job != spec.job {
        return None;
    }
    let p = match task {
        TaskId::Map(i) => i,
        TaskId::Shuffle(p) | TaskId::Reduce(p) => p as usize,
    };
    let part = spec.part_path(p);
    let file = part.file_name()?.to_string_lossy();
    let whole = made.iter().all(|(key, len)| {
        let path = crate::store::keyed::committed_path(&spec.output, key, &file);
        fs::metadata(path).is_ok_and(|m| m.len() == *len)
    });
    whole.then_some(report)
}
