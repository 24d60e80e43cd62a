//! Host health: which hosts may take task attempts now (docs/contracts.md §5).
//!
//! A host is *good* until it has failed [`HealthPolicy::bad_after`]
//! attempts in a row for reasons of its own (connection refused or lost,
//! authentication, a remote `gmr` that cannot run: [`FailureKind::Host`]);
//! then it is *bad*: it gets no work until its back-off ends, and then one
//! slot of it tries one task — a success makes it good again, a failure
//! doubles the back-off (up to [`HealthPolicy::max_backoff`]). A host whose
//! problem cannot go away during the job (an unknown or changed host key,
//! refused authentication, no `gmr` or no shared work directory there) is
//! *dead*. When every host is bad or dead at once and nothing runs, the
//! job stops with [`Health::report`], which names each host and its last
//! error — so a job whose hosts are all gone ends in bounded time.
//!
//! A task that fails on a host that works (its command exits non-zero)
//! says nothing against the host: it resets the host's count.
//!
//! [`FailureKind::Host`]: crate::error::FailureKind::Host

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// When hosts are marked bad and retried.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HealthPolicy {
    /// Host failures in a row that make a host bad.
    pub(crate) bad_after: u32,
    /// The first back-off of a bad host.
    pub(crate) first_backoff: Duration,
    /// The longest back-off.
    pub(crate) max_backoff: Duration,
}

impl Default for HealthPolicy {
    fn default() -> HealthPolicy {
        HealthPolicy {
            bad_after: 3,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// Whether a slot of a host may take work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Availability {
    /// Yes.
    Ready,
    /// Not before this instant (the host is bad, or another of its slots is
    /// trying it after its back-off).
    WaitUntil(Instant),
    /// Never again in this job.
    Gone,
}

#[derive(Debug)]
enum Status {
    Good {
        failures_in_a_row: u32,
    },
    Bad {
        until: Instant,
        backoff: Duration,
        /// The slot trying the host after its back-off, if one is.
        prober: Option<usize>,
    },
    Dead,
}

#[derive(Debug)]
struct HostState {
    name: String,
    status: Status,
    last_error: Option<String>,
}

/// The health of every host of a job.
#[derive(Debug)]
pub struct Health {
    policy: HealthPolicy,
    hosts: Mutex<Vec<HostState>>,
    /// Where each host is in `hosts` (asked on every scheduling decision,
    /// with a thousand hosts a search was the coordinator's main cost).
    index: std::collections::HashMap<String, usize>,
}

impl Health {
    /// All `hosts` good, with the default policy.
    pub fn new<S: Into<String>>(hosts: impl IntoIterator<Item = S>) -> Health {
        Health::with_policy(hosts, HealthPolicy::default())
    }

    /// All `hosts` good.
    pub(crate) fn with_policy<S: Into<String>>(
        hosts: impl IntoIterator<Item = S>,
        policy: HealthPolicy,
    ) -> Health {
        let mut states: Vec<HostState> = Vec::new();
        for name in hosts {
            let name = name.into();
            if !states.iter().any(|h| h.name == name) {
                states.push(HostState {
                    name,
                    status: Status::Good {
                        failures_in_a_row: 0,
                    },
                    last_error: None,
                });
            }
        }
        Health {
            policy,
            index: states
                .iter()
                .enumerate()
                .map(|(i, h)| (h.name.clone(), i))
                .collect(),
            hosts: Mutex::new(states),
        }
    }

    fn with_host<T>(&self, host: &str, f: impl FnOnce(&mut HostState) -> T) -> Option<T> {
        let i = *self.index.get(host)?;
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        hosts.get_mut(i).map(f)
    }

    /// Whether `slot` of `host` may start an attempt at `now`. After a bad
    /// host's back-off, the first slot to ask becomes its prober and the
    /// others wait for the prober's result.
    pub(crate) fn availability(&self, host: &str, slot: usize, now: Instant) -> Availability {
        self.with_host(host, |h| match &mut h.status {
            Status::Good { .. } => Availability::Ready,
            Status::Dead => Availability::Gone,
            Status::Bad { until, prober, .. } => {
                if now < *until {
                    Availability::WaitUntil(*until)
                } else if prober.is_none() || *prober == Some(slot) {
                    *prober = Some(slot);
                    Availability::Ready
                } else {
                    // Ask again a little later: the probe's result decides.
                    Availability::WaitUntil(now + Duration::from_millis(200))
                }
            }
        })
        .unwrap_or(Availability::Ready)
    }

    /// An attempt on `host` got through (the task itself may have failed).
    /// Returns a message when this brings a bad host back.
    pub(crate) fn succeeded(&self, host: &str) -> Option<String> {
        self.with_host(host, |h| match h.status {
            Status::Dead => None,
            Status::Good { .. } => {
                h.status = Status::Good {
                    failures_in_a_row: 0,
                };
                None
            }
            Status::Bad { .. } => {
                h.status = Status::Good {
                    failures_in_a_row: 0,
                };
                Some(format!("host {} works again", h.name))
            }
        })
        .flatten()
    }

    /// An attempt in `slot` failed because of `host`. Returns a message
    /// when this makes the host bad, or keeps it bad for longer.
    pub(crate) fn failed(
        &self,
        host: &str,
        slot: usize,
        error: &str,
        now: Instant,
    ) -> Option<String> {
        let policy = self.policy;
        self.with_host(host, |h| {
            h.last_error = Some(error.to_string());
            match &mut h.status {
                Status::Dead => None,
                Status::Good { failures_in_a_row } => {
                    *failures_in_a_row += 1;
                    if *failures_in_a_row < policy.bad_after {
                        return None;
                    }
                    let n = *failures_in_a_row;
                    h.status = Status::Bad {
                        until: now + policy.first_backoff,
                        backoff: policy.first_backoff,
                        prober: None,
                    };
                    Some(format!(
                        "host {} failed {n} times in a row, last: {error}; its tasks go to other hosts, and it is tried again in {} s",
                        h.name,
                        policy.first_backoff.as_secs_f64()
                    ))
                }
                Status::Bad {
                    until,
                    backoff,
                    prober,
                } => {
                    // Only the probe's failure lengthens the back-off; the
                    // others are attempts that were running when it went bad.
                    if *prober != Some(slot) {
                        return None;
                    }
                    *backoff = (*backoff * 2).min(policy.max_backoff);
                    *until = now + *backoff;
                    *prober = None;
                    Some(format!(
                        "host {} still fails ({error}); tried again in {} s",
                        h.name,
                        backoff.as_secs_f64()
                    ))
                }
            }
        })
        .flatten()
    }

    /// Marks `host` bad from the start (it could not be reached when the
    /// job began): it is tried again after the first back-off.
    pub(crate) fn down(&self, host: &str, error: &str, now: Instant) {
        let backoff = self.policy.first_backoff;
        self.with_host(host, |h| {
            h.last_error = Some(error.to_string());
            h.status = Status::Bad {
                until: now + backoff,
                backoff,
                prober: None,
            };
        });
    }

    /// Marks `host` unusable for the rest of the job.
    pub(crate) fn dead(&self, host: &str, error: &str) {
        self.with_host(host, |h| {
            h.last_error = Some(error.to_string());
            h.status = Status::Dead;
        });
    }

    /// True when `host` is good (not bad, not dead).
    pub fn is_good(&self, host: &str) -> bool {
        self.with_host(host, |h| matches!(h.status, Status::Good { .. }))
            .unwrap_or(false)
    }

    /// How many hosts are good, of how many.
    pub(crate) fn up(&self) -> (usize, usize) {
        let hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        let good = hosts
            .iter()
            .filter(|h| matches!(h.status, Status::Good { .. }))
            .count();
        (good, hosts.len())
    }

    /// True when no host is good.
    pub(crate) fn all_down(&self) -> bool {
        let hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        hosts
            .iter()
            .all(|h| !matches!(h.status, Status::Good { .. }))
    }

    /// One line per host that is not good: `  HOST: LAST ERROR`.
    pub(crate) fn report(&self) -> String {
        let hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        hosts
            .iter()
            .filter(|h| !matches!(h.status, Status::Good { .. }))
            .map(|h| {
                format!(
                    "  {}: {}",
                    h.name,
                    h.last_error.as_deref().unwrap_or("unusable")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> HealthPolicy {
        HealthPolicy {
            bad_after: 2,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(3),
        }
    }

    #[test]
    fn bad_after_failures_in_a_row_then_probed_with_backoff() {
        let h = Health::with_policy(["a", "b"], policy());
        let t0 = Instant::now();
        assert!(h.failed("a", 0, "refused", t0).is_none());
        assert!(h.succeeded("a").is_none(), "a success resets the count");
        assert!(h.failed("a", 0, "refused", t0).is_none());
        let msg = h.failed("a", 1, "refused", t0).unwrap();
        assert!(msg.contains("host a failed 2 times in a row"), "{msg}");
        assert_eq!(
            h.availability("a", 0, t0),
            Availability::WaitUntil(t0 + Duration::from_secs(1))
        );
        assert!(!h.all_down(), "b is still good");

        // After the back-off one slot probes; the others wait for it.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(h.availability("a", 1, t1), Availability::Ready);
        assert!(matches!(
            h.availability("a", 0, t1),
            Availability::WaitUntil(_)
        ));
        // A failure of a non-prober does not lengthen the back-off.
        assert!(h.failed("a", 0, "refused", t1).is_none());
        assert!(h.failed("a", 1, "refused", t1).unwrap().contains("2 s"));
        let t2 = t1 + Duration::from_secs(2);
        assert_eq!(h.availability("a", 0, t2), Availability::Ready);
        assert!(h.failed("a", 0, "refused", t2).unwrap().contains("3 s"));
        let t3 = t2 + Duration::from_secs(3);
        assert_eq!(h.availability("a", 1, t3), Availability::Ready);
        assert!(h.succeeded("a").unwrap().contains("works again"));
        assert_eq!(h.availability("a", 0, t3), Availability::Ready);
    }

    #[test]
    fn all_down_and_the_report_name_every_host() {
        let h = Health::with_policy(["a", "b", "c"], policy());
        let now = Instant::now();
        h.dead("a", "host key mismatch");
        h.down("b", "connection refused", now);
        assert_eq!(h.availability("a", 0, now), Availability::Gone);
        assert!(!h.all_down());
        h.failed("c", 0, "lost the connection", now);
        h.failed("c", 1, "lost the connection", now);
        assert!(h.all_down());
        let report = h.report();
        for line in [
            "  a: host key mismatch",
            "  b: connection refused",
            "  c: lost the connection",
        ] {
            assert!(report.contains(line), "{report}");
        }
    }
}
