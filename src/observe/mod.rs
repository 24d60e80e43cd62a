//! What people and scripts see of a running job: observers of task
//! attempts (the [`observer::Observer`] trait the coordinator calls), the progress
//! display ([`progress`]), the job log ([`joblog`]), the status document
//! and `gmr status` ([`status`], kept by [`tracker`]), the HTML report
//! ([`htmlreport`]), and the units all of them write ([`units`]).

pub(crate) mod htmlreport;
pub(crate) mod joblog;
pub(crate) mod observer;
pub(crate) mod progress;
pub(crate) mod status;
pub(crate) mod summary;
pub(crate) mod tracker;
pub(crate) mod units;
