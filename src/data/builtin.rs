//! Built-in reducers (`@count`, `@sum`, `@min`, `@max`, `@identity`): the
//! common reductions, run inside gmr instead of as a child process, usable
//! as reducer or combiner (and `@identity` as mapper).
//!
//! Names start with `@`, which no command name does, so they cannot collide
//! with a user's program. Each reads sorted records (key, TAB, value) and
//! prints one `key<SEP>result` line per run of equal keys, exactly what the
//! equivalent awk one-liner prints.

use crate::data::record::{KeySpec, LineSplitter};
use std::fmt::Write as _;
use std::io::{self, Write};

/// A built-in reducer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Builtin {
    /// `key<SEP>N`: the number of records of each key.
    Count,
    /// `key<SEP>S`: the sum of the integer values of each key.
    Sum,
    /// `key<SEP>V`: the numerically smallest value of each key.
    Min,
    /// `key<SEP>V`: the numerically largest value of each key.
    Max,
    /// Every record unchanged (like `cat`).
    Identity,
}

impl Builtin {
    /// Every built-in, with its name and what it does (for help and errors).
    pub(crate) const ALL: [(Builtin, &'static str, &'static str); 5] = [
        (Builtin::Count, "@count", "records per key: key<TAB>count"),
        (
            Builtin::Sum,
            "@sum",
            "sum of integer values per key: key<TAB>sum",
        ),
        (
            Builtin::Min,
            "@min",
            "smallest numeric value per key: key<TAB>min",
        ),
        (
            Builtin::Max,
            "@max",
            "largest numeric value per key: key<TAB>max",
        ),
        (
            Builtin::Identity,
            "@identity",
            "every record unchanged, like cat",
        ),
    ];

    /// The built-in named `name` (`@count`, …).
    pub(crate) fn from_name(name: &str) -> Option<Builtin> {
        Builtin::ALL
            .iter()
            .find(|(_, n, _)| *n == name)
            .map(|(b, _, _)| *b)
    }

    /// The built-in that merges this one's partial results, when it has
    /// any: counts are merged by summing them. `@identity` has none.
    pub(crate) fn merge_form(self) -> Option<Builtin> {
        match self {
            Builtin::Count | Builtin::Sum => Some(Builtin::Sum),
            Builtin::Min | Builtin::Max => Some(self),
            Builtin::Identity => None,
        }
    }

    /// Its name.
    pub(crate) fn name(self) -> &'static str {
        Builtin::ALL
            .iter()
            .find(|(b, _, _)| *b == self)
            .map(|(_, n, _)| *n)
            .expect("listed")
    }
}

/// The running result of one key: what `@count`, `@sum`, `@min` and `@max`
/// keep per key, whether keys arrive grouped (a reducer) or in any order
/// (map-side aggregation in a hash table).
#[derive(Debug, Clone)]
pub(crate) enum Acc {
    /// Records seen.
    Count(u64),
    /// Sum of values.
    Sum(i128),
    /// The extreme value so far, and its text.
    Extreme {
        /// Its numeric value (NaN before the first record).
        best: f64,
        /// Its text, printed as it was.
        text: Vec<u8>,
    },
}

impl Acc {
    /// A fresh accumulator for `builtin` (not `@identity`).
    pub(crate) fn new(builtin: Builtin) -> Acc {
        match builtin {
            Builtin::Count => Acc::Count(0),
            Builtin::Sum => Acc::Sum(0),
            _ => Acc::Extreme {
                best: f64::NAN,
                text: Vec::new(),
            },
        }
    }

    /// Adds one record's value.
    #[inline]
    pub(crate) fn add(&mut self, builtin: Builtin, key: &[u8], value: &[u8]) -> io::Result<()> {
        match self {
            Acc::Count(n) => *n += 1,
            Acc::Sum(s) => {
                *s += parse_int(value).ok_or_else(|| bad_value("@sum", "an integer", key, value))?
            }
            Acc::Extreme { best, text } => {
                let max = builtin == Builtin::Max;
                let v = parse_number(value)
                    .ok_or_else(|| bad_value(builtin.name(), "a number", key, value))?;
                if best.is_nan() || (max && v > *best) || (!max && v < *best) {
                    *best = v;
                    text.clear();
                    text.extend_from_slice(value);
                }
            }
        }
        Ok(())
    }

    /// Memory it takes, roughly.
    pub(crate) fn bytes(&self) -> usize {
        size_of::<Acc>()
            + match self {
                Acc::Extreme { text, .. } => text.capacity(),
                _ => 0,
            }
    }

    /// Appends `key<SEP>result<EOL>` to `out` (the separator and record
    /// end of `spec`).
    pub(crate) fn write_line(&self, key: &[u8], spec: KeySpec, out: &mut Vec<u8>) {
        out.extend_from_slice(key);
        out.push(spec.separator);
        match self {
            Acc::Count(n) => {
                let _ = write!(Digits(out), "{n}");
            }
            Acc::Sum(n) => {
                let _ = write!(Digits(out), "{n}");
            }
            Acc::Extreme { text, .. } => out.extend_from_slice(text),
        }
        out.push(spec.eol);
    }
}

/// `fmt::Write` into a byte vector, for numbers without a String.
struct Digits<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Digits<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// A built-in running as a byte sink: write its input into it, then call
/// [`Sink::finish`]; its output goes to `emit` in large chunks.
pub(crate) struct Sink<'a> {
    builtin: Builtin,
    key: KeySpec,
    lines: LineSplitter,
    group: Option<(Vec<u8>, Acc)>,
    out: Vec<u8>,
    emit: &'a mut dyn FnMut(&[u8]) -> io::Result<()>,
}

const FLUSH_AT: usize = 256 << 10;

impl<'a> Sink<'a> {
    /// A sink for `builtin` with the job's key spec.
    pub(crate) fn new(
        builtin: Builtin,
        key: KeySpec,
        emit: &'a mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> Self {
        Sink {
            builtin,
            key,
            lines: LineSplitter::default().ending(key.eol),
            group: None,
            out: Vec::with_capacity(FLUSH_AT + 4096),
            emit,
        }
    }

    fn record(&mut self, line: &[u8]) -> io::Result<()> {
        let f = self.key.fields(line);
        let (key, value) = (&line[..f.key_end], &line[f.value_start..]);
        let same = matches!(&self.group, Some((k, _)) if k.as_slice() == key);
        if !same {
            self.close_group();
            self.group = Some((key.to_vec(), Acc::new(self.builtin)));
        }
        let (_, acc) = self.group.as_mut().expect("group open");
        acc.add(self.builtin, key, value)?;
        self.maybe_flush()
    }

    fn close_group(&mut self) {
        if let Some((key, acc)) = self.group.take() {
            acc.write_line(&key, self.key, &mut self.out);
        }
    }

    fn maybe_flush(&mut self) -> io::Result<()> {
        if self.out.len() >= FLUSH_AT {
            (self.emit)(&self.out)?;
            self.out.clear();
        }
        Ok(())
    }

    /// Ends the input: processes a last line without `\n`, closes the last
    /// group and emits what is left.
    pub(crate) fn finish(mut self) -> io::Result<()> {
        let mut lines = std::mem::take(&mut self.lines);
        lines.finish(|l| self.record(l))?;
        self.close_group();
        if !self.out.is_empty() {
            (self.emit)(&self.out)?;
        }
        Ok(())
    }
}

impl Write for Sink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.builtin == Builtin::Identity {
            // Bytes pass through as they are, like cat.
            (self.emit)(buf)?;
            return Ok(buf.len());
        }
        let mut lines = std::mem::take(&mut self.lines);
        let r = lines.feed(buf, |l| self.record(l));
        self.lines = lines;
        r.map(|()| buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn parse_int(v: &[u8]) -> Option<i128> {
    std::str::from_utf8(v).ok()?.trim().parse().ok()
}

fn parse_number(v: &[u8]) -> Option<f64> {
    let n: f64 = std::str::from_utf8(v).ok()?.trim().parse().ok()?;
    (!n.is_nan()).then_some(n)
}

/// A value a built-in cannot take: the same records fail every attempt
/// the same way, so retrying cannot help (the task fails at once).
fn bad_value(name: &str, what: &str, key: &[u8], value: &[u8]) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        crate::error::Unrecoverable(format!(
            "{name}: the value `{}` of key `{}` is not {what}",
            String::from_utf8_lossy(value),
            String::from_utf8_lossy(key)
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(b: Builtin, input: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut emit = |c: &[u8]| {
            out.extend_from_slice(c);
            Ok(())
        };
        let mut sink = Sink::new(b, KeySpec::default(), &mut emit);
        // Feed in awkward pieces to exercise line reassembly.
        for piece in input.chunks(3) {
            sink.write_all(piece)?;
        }
        sink.finish()?;
        Ok(out)
    }

    #[test]
    fn builtins_reduce_groups() {
        let input = b"a\t1\na\t2\nb\t-5\nc\t10\nc\t9";
        assert_eq!(run(Builtin::Count, input).unwrap(), b"a\t2\nb\t1\nc\t2\n");
        assert_eq!(run(Builtin::Sum, input).unwrap(), b"a\t3\nb\t-5\nc\t19\n");
        assert_eq!(run(Builtin::Min, input).unwrap(), b"a\t1\nb\t-5\nc\t9\n");
        assert_eq!(run(Builtin::Max, input).unwrap(), b"a\t2\nb\t-5\nc\t10\n");
        assert_eq!(
            run(Builtin::Identity, input).unwrap(),
            input,
            "bytes pass through, like cat"
        );
        assert_eq!(run(Builtin::Count, b"").unwrap(), b"");
        assert_eq!(run(Builtin::Count, b"x\ny\ny\n").unwrap(), b"x\t1\ny\t2\n");
    }

    #[test]
    fn bad_numbers_are_errors() {
        let e = run(Builtin::Sum, b"a\tx\n").unwrap_err();
        assert!(e.to_string().contains("`x` of key `a`"), "{e}");
    }
}
