//! The HTML report (`report.html`, `gmr report`): one self-contained page
//! made from a status document with its attempts ([`crate::observe::status`]).
//!
//! The page needs no network: its style, its script and its data are
//! inline, and the script draws SVG. It shows the phases and their timings,
//! a timeline of every attempt per host and slot (failures, retries,
//! backups, timeouts and cancelled losers in their own colours), the size
//! of each partition (skew), the durations of the map tasks, the counters,
//! and the failed attempts with their stderr tail.
//!
//! Size is bounded: past [`MAX_BARS`] attempts, the successful ones that
//! follow each other in a slot are drawn as one bar per run of them
//! (failures and backups always get their own; a slot gets at least one
//! bar), so 10,000 tasks make a page well under 1 MB. The data is escaped so that no `</script>` in a
//! task's stderr ends the script, and the script puts text in the page as
//! text, never as markup.

use crate::observe::status::{AttemptStatus, JobStatus};
use serde::Serialize;
use std::collections::BTreeMap;

/// The most attempt bars the timeline draws.
pub(crate) const MAX_BARS: usize = 10_000;
/// The most bars of the partition chart; more partitions are grouped.
const MAX_PARTITION_BARS: usize = 500;
/// Bins of the map durations chart.
const DURATION_BINS: usize = 24;

/// What the page's script draws.
#[derive(Serialize)]
struct Data<'a> {
    doc: &'a JobStatus,
    /// Host and slot of each timeline lane.
    lanes: Vec<(String, u64)>,
    /// `[lane, start ms, duration ms, status, label, backup, count]` per
    /// bar, the start from the job's start; `count` > 1 for a run of
    /// successful attempts drawn as one bar.
    bars: Vec<Bar<'a>>,
    /// Attempts in all, and bars drawn.
    attempts: usize,
    /// `[label, bytes]` per partition or group of partitions.
    partitions: Vec<(String, u64)>,
    /// `[from s, to s, count]` of successful map attempts.
    durations: Vec<(f64, f64, u64)>,
}

/// `&`, `<`, `>` and `"` as entities: text or an attribute's value.
fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The report of a job of several steps: a line per step (its commands,
/// state and time), then each step's own report page ([`render`]), whole,
/// in a frame of the page (`srcdoc`), so that it stays one self-contained
/// file. `steps`: each step's commands and document (with its attempts),
/// None for a step that has not run.
pub(crate) fn render_steps(steps: &[(String, Option<JobStatus>)]) -> String {
    use std::fmt::Write as _;
    let n = steps.len();
    let mut rows = String::new();
    let mut frames = String::new();
    for (k, (commands, doc)) in steps.iter().enumerate() {
        let (state, seconds) = doc.as_ref().map_or(("not started", 0.0), |d| {
            (d.state.map_or("unknown", |s| s.name()), d.seconds)
        });
        let _ = write!(
            rows,
            "<tr><td class=\"l\">{}</td><td class=\"l\"><code>{}</code></td><td class=\"l\">{state}</td><td>{}</td></tr>",
            k + 1,
            escape_html(commands),
            crate::observe::units::human_duration(seconds)
        );
        if let Some(doc) = doc {
            let _ = writeln!(
                frames,
                "<section><h2>step {} of {n}: <code>{}</code></h2>\
                 <iframe title=\"step {}\" srcdoc=\"{}\"></iframe></section>",
                k + 1,
                escape_html(commands),
                k + 1,
                escape_html(&render(doc))
            );
        }
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>gmr job of {n} steps</title>\n<style>{STYLE}\n\
         iframe {{ width: 100%; height: 90vh; border: 1px solid #ccc; }}</style></head>\n\
         <body><main id=\"page\"><h1>gmr job of {n} steps</h1>\n\
         <table><tr><th class=\"l\">step</th><th class=\"l\">commands</th>\
         <th class=\"l\">state</th><th>time</th></tr>{rows}</table>\n{frames}</main></body></html>\n"
    )
}

/// The report page for `doc` (with its `attempts`).
pub(crate) fn render(doc: &JobStatus) -> String {
    let mut slim = doc.clone();
    let attempts = slim.attempts.take().unwrap_or_default();
    let data = Data {
        lanes: Vec::new(),
        bars: Vec::new(),
        attempts: attempts.len(),
        partitions: partitions(doc.partitions.as_deref().unwrap_or_default()),
        durations: durations(&attempts),
        doc: &slim,
    };
    let (lanes, bars) = timeline(&attempts, doc.started);
    let data = Data {
        lanes,
        bars,
        ..data
    };
    let json = serde_json::to_string(&data)
        .expect("serializable")
        // Inside a script element: no `</script>` or `<!--` may appear.
        .replace('<', "\\u003c");
    // From the document, which gmr report reads from any work directory:
    // escaped like everything else that reaches the page.
    let title = escape_html(&format!(
        "gmr job {}",
        crate::observe::status::short(&doc.job)
    ));
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>{STYLE}</style></head>\n\
         <body><main id=\"page\"><h1>{title}</h1><noscript>This report draws its charts with \
         JavaScript; report.json holds the same data.</noscript></main>\n\
         <script type=\"application/json\" id=\"data\">{json}</script>\n\
         <script>{SCRIPT}</script></body></html>\n"
    )
}

/// A timeline bar: `[lane, start ms, duration ms, status, label, backup,
/// count]`, as the page's script reads it.
type Bar<'a> = (usize, u64, u64, &'a str, String, bool, u64);

/// Lanes (host, slot) in order, and the bars: each attempt, or past
/// [`MAX_BARS`] each run of successful attempts in a lane.
fn timeline(attempts: &[AttemptStatus], t0: f64) -> (Vec<(String, u64)>, Vec<Bar<'_>>) {
    let mut lane_of: BTreeMap<(&str, u64), usize> = BTreeMap::new();
    for a in attempts {
        lane_of.insert((&a.host, a.slot), 0);
    }
    for (i, v) in lane_of.values_mut().enumerate() {
        *v = i;
    }
    let lanes = lane_of.keys().map(|(h, s)| (h.to_string(), *s)).collect();
    let ms = |t: f64| ((t - t0).max(0.0) * 1000.0).round() as u64;
    let plain = |a: &AttemptStatus| a.status == "ok" && !a.backup;
    let special = attempts.iter().filter(|a| !plain(a)).count();
    // How many successful attempts in a row share a bar.
    let group = if attempts.len() <= MAX_BARS {
        1
    } else {
        let room = MAX_BARS.saturating_sub(special).max(lane_of.len()).max(1);
        (attempts.len() - special).div_ceil(room)
    };
    let mut by_lane: Vec<Vec<&AttemptStatus>> = vec![Vec::new(); lane_of.len()];
    for a in attempts {
        by_lane[lane_of[&(a.host.as_str(), a.slot)]].push(a);
    }
    let mut bars = Vec::new();
    for (lane, list) in by_lane.iter().enumerate() {
        let mut run: Vec<&AttemptStatus> = Vec::new();
        let flush = |run: &mut Vec<&AttemptStatus>, bars: &mut Vec<_>| {
            if let (Some(first), Some(last)) = (run.first(), run.last()) {
                let start = ms(first.start);
                let end = ms(last.start + last.seconds).max(start);
                let label = if run.len() == 1 {
                    format!("{} attempt {}", first.task, first.attempt)
                } else {
                    format!("{} .. {} ({} tasks)", first.task, last.task, run.len())
                };
                bars.push((
                    lane,
                    start,
                    end - start,
                    "ok",
                    label,
                    false,
                    run.len() as u64,
                ));
            }
            run.clear();
        };
        for a in list {
            if plain(a) {
                run.push(a);
                if run.len() >= group {
                    flush(&mut run, &mut bars);
                }
                continue;
            }
            flush(&mut run, &mut bars);
            let start = ms(a.start);
            bars.push((
                lane,
                start,
                ms(a.start + a.seconds).saturating_sub(start),
                a.status.as_str(),
                format!("{} attempt {}", a.task, a.attempt),
                a.backup,
                1,
            ));
        }
        flush(&mut run, &mut bars);
    }
    (lanes, bars)
}

/// One bar per partition, or per group of partitions (their largest).
fn partitions(sizes: &[u64]) -> Vec<(String, u64)> {
    let per = sizes.len().div_ceil(MAX_PARTITION_BARS).max(1);
    sizes
        .chunks(per)
        .enumerate()
        .map(|(i, c)| {
            let first = i * per;
            let label = if c.len() == 1 {
                format!("part {first}")
            } else {
                format!("parts {first}-{} (largest)", first + c.len() - 1)
            };
            (label, c.iter().copied().max().unwrap_or(0))
        })
        .collect()
}

/// A histogram of the successful map attempts' durations.
fn durations(attempts: &[AttemptStatus]) -> Vec<(f64, f64, u64)> {
    let secs: Vec<f64> = attempts
        .iter()
        .filter(|a| a.status == "ok" && a.task.starts_with("map-"))
        .map(|a| a.seconds)
        .collect();
    let Some(max) = secs.iter().copied().reduce(f64::max) else {
        return Vec::new();
    };
    let width = (max / DURATION_BINS as f64).max(1e-3);
    let mut bins = vec![0u64; DURATION_BINS];
    for s in secs {
        bins[((s / width) as usize).min(DURATION_BINS - 1)] += 1;
    }
    bins.into_iter()
        .enumerate()
        .map(|(i, n)| (i as f64 * width, (i + 1) as f64 * width, n))
        .collect()
}

const STYLE: &str = r#"
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#fafafa;color:#222}
main{max-width:1200px;margin:0 auto;padding:16px 24px}
h1{font-size:22px;margin:8px 0}h2{font-size:17px;margin:24px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f0f0f0}td.l,th.l{text-align:left}
.state{display:inline-block;padding:2px 10px;border-radius:10px;color:#fff;font-weight:600}
.state.done{background:#2e7d32}.state.failed{background:#c62828}.state.running{background:#1565c0}.state.interrupted{background:#ef6c00}
.err{color:#c62828;white-space:pre-wrap}
svg{background:#fff;border:1px solid #ddd}
svg text{font-size:11px;fill:#444}
.attempt.ok{fill:#66bb6a}.attempt.failed{fill:#e53935}.attempt.host_failed{fill:#8e24aa}
.attempt.timed_out{fill:#fb8c00}.attempt.cancelled{fill:#bdbdbd}.attempt.interrupted{fill:#757575}
.attempt.running{fill:#42a5f5}.attempt.backup{stroke:#000;stroke-width:1.5}
.legend span{display:inline-block;margin-right:14px}
.bar{fill:#5c6bc0}.phase{stroke:#999;stroke-dasharray:3 3}
pre{background:#fff;border:1px solid #ddd;padding:6px;overflow:auto;max-height:240px;margin:4px 0 12px}
.note{color:#666}
"#;

const SCRIPT: &str = r#"
"use strict";
window.onerror = function (m) { document.body.dataset.errors = String(m); };
(function () {
  var D = JSON.parse(document.getElementById("data").textContent);
  var doc = D.doc, page = document.getElementById("page");
  var NS = "http://www.w3.org/2000/svg";
  function el(tag, attrs, text, parent) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = text;
    (parent || page).appendChild(e);
    return e;
  }
  function svg(tag, attrs, parent) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    parent.appendChild(e);
    return e;
  }
  function secs(s) {
    if (s < 1) return (s * 1000).toFixed(s < 0.01 ? 1 : 0) + " ms";
    if (s < 60) return s.toFixed(s < 10 ? 2 : 1) + " s";
    if (s < 3600) return Math.floor(s / 60) + "m" + ("0" + Math.floor(s % 60)).slice(-2) + "s";
    return Math.floor(s / 3600) + "h" + ("0" + Math.floor((s % 3600) / 60)).slice(-2) + "m";
  }
  function bytes(n) {
    var u = [["TiB", 1099511627776], ["GiB", 1073741824], ["MiB", 1048576], ["KiB", 1024]];
    for (var i = 0; i < u.length; i++) if (n >= u[i][1]) return (n / u[i][1]).toFixed(1) + " " + u[i][0];
    return n + " B";
  }
  function table(head, rows, parent) {
    var t = el("table", {}, null, parent), tr = el("tr", {}, null, t);
    head.forEach(function (h, i) { el("th", i ? {} : { class: "l" }, h, tr); });
    rows.forEach(function (r) {
      var tr = el("tr", {}, null, t);
      r.forEach(function (c, i) { el("td", i ? {} : { class: "l" }, c, tr); });
    });
    return t;
  }

  var head = el("p");
  el("span", { class: "state " + doc.state }, doc.state, head);
  head.appendChild(document.createTextNode(
    "  job " + doc.job + " in " + doc.workdir + ", " + secs(doc.seconds) +
    (doc.state === "running" ? " so far" : "") + "; gmr pid " + doc.coordinator.pid + " on " + doc.coordinator.host));
  if (doc.error) el("p", { class: "err" }, doc.error);

  el("h2", {}, "Phases");
  table(["phase", "tasks", "reused", "done", "attempts", "failed attempts", "input", "wall time"],
    doc.phases.map(function (p) {
      return [p.name, p.tasks, p.reused, p.done, p.attempts, p.failed_attempts,
        p.bytes_total ? bytes(p.bytes_total) : "", secs((p.ended || doc.updated) - p.started)];
    }));
  var overhead = doc.seconds - doc.phases.reduce(function (s, p) { return s + ((p.ended || doc.updated) - p.started); }, 0);
  el("p", { class: "note" }, "Outside the phases (planning, sampling, output): " + secs(Math.max(0, overhead)) + ".");

  el("h2", {}, "Timeline");
  var legend = el("p", { class: "legend" });
  [["ok", "ok"], ["failed", "failed"], ["host_failed", "host failed"], ["timed_out", "timed out"],
   ["cancelled", "cancelled (lost to a backup)"], ["interrupted", "interrupted"], ["running", "running"]].forEach(function (s) {
    var span = el("span", {}, null, legend);
    var sw = svg("svg", { width: 12, height: 12, style: "border:0;vertical-align:-1px;margin-right:4px" }, span);
    svg("rect", { width: 12, height: 12, class: "attempt " + s[0] }, sw);
    span.appendChild(document.createTextNode(s[1]));
  });
  var bspan = el("span", {}, null, legend);
  var bsw = svg("svg", { width: 12, height: 12, style: "border:0;vertical-align:-1px;margin-right:4px" }, bspan);
  svg("rect", { x: 1, y: 1, width: 10, height: 10, class: "attempt ok backup" }, bsw);
  bspan.appendChild(document.createTextNode("backup (outlined)"));

  var lanes = D.lanes, bars = D.bars;
  var end = Math.max(1, ((doc.ended || doc.updated) - doc.started) * 1000);
  bars.forEach(function (b) { end = Math.max(end, b[1] + b[2]); });
  var left = 150, width = 1100, plot = width - left - 10, lh = lanes.length > 200 ? 3 : lanes.length > 60 ? 8 : 14;
  var height = lanes.length * lh + 44;
  var tl = svg("svg", { width: width, height: height, id: "timeline" }, page);
  var x = function (ms) { return left + plot * ms / end; };
  for (var k = 0; k <= 4; k++) {
    var tx = svg("text", { x: x(end * k / 4) - (k === 4 ? 40 : 0), y: height - 4 }, tl);
    tx.textContent = secs(end * k / 4000);
  }
  lanes.forEach(function (l, i) {
    if (lh >= 8) { var t = svg("text", { x: 4, y: 20 + i * lh + lh - 3 }, tl); t.textContent = l[0] + " #" + l[1]; }
  });
  doc.phases.forEach(function (p) {
    var px = x((p.started - doc.started) * 1000);
    svg("line", { x1: px, x2: px, y1: 12, y2: height, class: "phase" }, tl);
    var t = svg("text", { x: px + 3, y: 11 }, tl); t.textContent = p.name;
  });
  var drawn = 0;
  bars.forEach(function (b) {
    var r = svg("rect", {
      x: x(b[1]), y: 20 + b[0] * lh + 1, width: Math.max(1, plot * b[2] / end - (plot * b[2] / end > 3 ? 1 : 0)),
      height: Math.max(1, lh - 2),
      class: "attempt " + b[3] + (b[5] ? " backup" : ""), "data-count": b[6]
    }, tl);
    var t = svg("title", {}, r);
    t.textContent = b[4] + " on " + lanes[b[0]][0] + " #" + lanes[b[0]][1] + ": " + b[3] + ", " + secs(b[2] / 1000);
    drawn += 1;
  });
  el("p", { class: "note" }, D.attempts + " attempts" + (drawn !== D.attempts ?
    " (successful attempts in a row share a bar past " + drawn + " bars)" : "") + " on " + lanes.length +
    " slots over " + secs(end / 1000) + ". Hover a bar for its task.");

  function chart(title, items, label, value, fmt, integer) {
    el("h2", {}, title);
    if (!items.length) { el("p", { class: "note" }, "None."); return; }
    var w = 1100, h = 220, l = 70, bw = (w - l - 10) / items.length;
    var max = Math.max.apply(null, items.map(value).concat([1]));
    // Counts get whole ticks.
    var step = integer ? Math.ceil(max / 4) : max / 4;
    var c = svg("svg", { width: w, height: h + 20 }, page);
    for (var v = 0; v <= max + 1e-9; v += step) {
      var t = svg("text", { x: 2, y: h - (h - 10) * v / max }, c); t.textContent = fmt(v);
    }
    var first = svg("text", { x: l, y: h + 14 }, c); first.textContent = label(items[0]);
    var last = svg("text", { x: w - 10, y: h + 14, "text-anchor": "end" }, c); last.textContent = label(items[items.length - 1]);
    items.forEach(function (it, i) {
      var v = value(it), bh = (h - 10) * v / max;
      var r = svg("rect", { x: l + i * bw, y: h - bh, width: Math.max(1, bw - 1), height: bh, class: "bar" }, c);
      svg("title", {}, r).textContent = label(it) + ": " + fmt(v);
    });
    return c;
  }
  var parts = chart("Partition sizes (bytes out of each reduce task)", D.partitions,
    function (p) { return p[0]; }, function (p) { return p[1]; }, bytes);
  if (D.partitions.length && doc.reduce) {
    var mean = doc.reduce.bytes_out / Math.max(1, doc.partitions.length);
    el("p", { class: "note" }, "largest " + bytes(doc.reduce.largest_out) + ", mean " + bytes(mean) +
      " (skew " + (mean ? (doc.reduce.largest_out / mean).toFixed(2) : "0") + "x)");
  }
  chart("Map task durations (successful attempts)", D.durations,
    function (d) { return secs(d[0]) + " - " + secs(d[1]); }, function (d) { return d[2]; },
    function (n) { return String(Math.round(n)); }, true);

  el("h2", {}, "Counters");
  var cs = Object.keys(doc.counters);
  if (cs.length) table(["counter", "value"], cs.map(function (k) { return [k, doc.counters[k]]; }));
  else el("p", { class: "note" }, "None.");

  el("h2", {}, "Hosts");
  table(["host", "slots", "attempts", "failed", "state"], doc.hosts.map(function (h) {
    return [h.name, h.slots, h.attempts, h.failed_attempts, h.good ? "good" : "bad"];
  }));

  el("h2", {}, "Failed attempts" + (doc.failed_attempts > doc.failures.length ?
    " (the last " + doc.failures.length + " of " + doc.failed_attempts + ")" : ""));
  if (!doc.failures.length) el("p", { class: "note" }, "None.");
  doc.failures.forEach(function (f) {
    el("p", { class: "err" }, f.task + " attempt " + f.attempt + " on " + f.host + " (" + f.status + "): " + f.error);
    el("pre", {}, f.stderr_tail || "(its stderr was empty)");
  });
  if (doc.skipped && doc.skipped.length) {
    el("h2", {}, "Skipped map tasks (--max-failed-tasks): their input is not in the output");
    doc.skipped.forEach(function (s) {
      var inputs = s.inputs.map(function (i) {
        return i.file + " bytes " + i.start + ".." + (i.start + i.length);
      }).join(", ");
      el("p", { class: "err" }, s.task + " (" + inputs + ") after " + s.attempts + " attempts on " + s.host + ": " + s.error);
      el("pre", {}, s.stderr_tail || "(its stderr was empty)");
    });
  }
  document.body.dataset.bars = String(drawn);
  document.body.dataset.ready = "1";
})();
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(i: usize, status: &str) -> AttemptStatus {
        AttemptStatus {
            task: format!("map-{i:05}"),
            attempt: 1,
            host: format!("host{}", i % 50),
            slot: (i % 400) as u64,
            start: 1000.0 + i as f64 * 0.01,
            seconds: 1.5,
            status: status.into(),
            ..AttemptStatus::default()
        }
    }

    #[test]
    fn ten_thousand_tasks_make_a_page_under_a_megabyte() {
        let mut attempts: Vec<AttemptStatus> = (0..10_000).map(|i| attempt(i, "ok")).collect();
        attempts.extend((0..100).map(|i| attempt(i, "failed")));
        let doc = JobStatus {
            job: "0123456789abcdef".into(),
            started: 1000.0,
            attempts: Some(attempts),
            partitions: Some((0..1000).map(|i| i * 1000).collect()),
            ..JobStatus::default()
        };
        let page = render(&doc);
        assert!(page.len() < 1_000_000, "{} bytes", page.len());
        // And past the limit the bars are grouped, failures kept apart.
        let (_, bars) = timeline(doc.attempts.as_deref().unwrap(), 1000.0);
        assert!(bars.len() <= MAX_BARS, "{} bars", bars.len());
        assert_eq!(bars.iter().filter(|b| b.3 == "failed").count(), 100);
        let counted: u64 = bars.iter().map(|b| b.6).sum();
        assert_eq!(counted, 10_100, "every attempt in a bar");
    }

    #[test]
    fn no_stderr_ends_the_script() {
        let doc = JobStatus {
            job: "j".into(),
            failures: vec![crate::observe::status::Failure {
                stderr_tail: "</script><script>alert(1)</script>".into(),
                ..Default::default()
            }],
            ..JobStatus::default()
        };
        let page = render(&doc);
        assert_eq!(page.matches("</script>").count(), 2, "only the page's own");
    }
}
