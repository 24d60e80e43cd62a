//! What people and scripts see of a running job: observers of task
//! attempts (the [`observer::Observer`] trait the coordinator calls), the progress
//! display ([`progress`]), the job log ([`joblog`]), the status document
//! and `gmr status` ([`status`], kept by [`tracker`]), the HTML report
//! ([`htmlreport`]).

pub mod htmlreport;
pub mod joblog;
pub mod observer;
pub mod progress;
pub mod status;
pub mod summary;
pub mod tracker;
