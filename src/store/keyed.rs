//! `--output-by-key`: a task's output lines filed by their key into
//! `DIR/KEY/part-NNNNN`, as Hadoop's MultipleOutputs do (a log split by
//! day or customer, one directory each).
//!
//! A task writes one file per key into its attempt directory, at most
//! [`open_limit`] of them open at a time (a file closed to make room is
//! reopened to append: a compressed one then holds several gzip members
//! or zstd frames, which every reader takes as one stream). When the task
//! ends, each file is renamed into `DIR/NAME/` ([`commit`]), and the list
//! of names and sizes is the task's commit record (`task/commit.rs`).
//!
//! Key names ([`dir_name`]) are made safe as directory names, so that no
//! key escapes or breaks `DIR`: ASCII letters and digits, `- + , = @ ~`,
//! `.` and `_` (except first) and non-ASCII letters and digits stay as
//! they are; every other byte is written `%HH` (uppercase hex), as are
//! bytes that are not UTF-8. The empty key is `_EMPTY` (gmr's own names
//! begin with `_`, a key's never does). A name that would pass 200 bytes is
//! cut there and ends in `%%` and 16 hex digits of the key's hash.

use crate::data::codec::{Codec, Encoder};
use crate::data::record::{KeySpec, record_ends};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Longest directory name made of a key (file systems take 255 bytes).
const MAX_NAME: usize = 200;

/// Write buffer of each open file.
const BUFFER: usize = 32 << 10;

/// The keys' directory name: see the module's documentation.
pub(crate) fn dir_name(key: &[u8]) -> String {
    if key.is_empty() {
        return "_EMPTY".into();
    }
    let mut out = String::with_capacity(key.len());
    // Where a whole character or %HH ends: a long name is cut at one.
    let mut ends = Vec::new();
    let escape = |out: &mut String, ends: &mut Vec<usize>, bytes: &[u8]| {
        for b in bytes {
            let _ = write!(out, "%{b:02X}");
            ends.push(out.len());
        }
    };
    let mut rest = key;
    while !rest.is_empty() {
        let (valid, bad) = match std::str::from_utf8(rest) {
            Ok(s) => (s, 0),
            Err(e) => {
                let ok = e.valid_up_to();
                let bad = e.error_len().unwrap_or(rest.len() - ok);
                (std::str::from_utf8(&rest[..ok]).unwrap_or_default(), bad)
            }
        };
        for c in valid.chars() {
            let first = out.is_empty();
            let keep = c.is_ascii_alphanumeric()
                || matches!(c, '-' | '+' | ',' | '=' | '@' | '~')
                || (matches!(c, '.' | '_') && !first)
                || (!c.is_ascii() && c.is_alphanumeric());
            if keep {
                out.push(c);
                ends.push(out.len());
            } else {
                escape(&mut out, &mut ends, c.encode_utf8(&mut [0; 4]).as_bytes());
            }
        }
        let invalid = &rest[valid.len()..valid.len() + bad];
        escape(&mut out, &mut ends, invalid);
        rest = &rest[valid.len() + bad..];
    }
    if out.len() > MAX_NAME {
        let cut = ends.iter().rev().find(|&&e| e <= MAX_NAME - 18).copied();
        out.truncate(cut.unwrap_or(0));
        let hash = twox_hash::XxHash3_64::oneshot(key);
        let _ = write!(out, "%%{hash:016x}");
    }
    out
}

/// Files a task may hold open at a time: fewer when compressed (each
/// encoder holds its own window).
pub(crate) fn open_limit(codec: Option<Codec>) -> usize {
    match codec {
        None => 64,
        Some(_) => 8,
    }
}

/// One key's file in the attempt directory.
struct KeyFile {
    name: String,
    out: Option<Encoder<BufWriter<File>>>,
    /// When it was last written (a tick of [`KeyedWriter::clock`]).
    used: u64,
}

/// What went wrong in a [`KeyedWriter`] that is no I/O error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// One key more than the limit.
    TooManyKeys(u64),
    /// A line longer than this has not shown its key's end.
    KeyTooLong(u64),
}

/// A writer of lines that files each by its key (see the module's
/// documentation).
pub(crate) struct KeyedWriter {
    dir: PathBuf,
    key: KeySpec,
    eol: u8,
    limit: u64,
    max_line: u64,
    codec: Option<Codec>,
    durable: bool,
    index: HashMap<Vec<u8>, usize>,
    files: Vec<KeyFile>,
    open: usize,
    clock: u64,
    /// The key of the file written last and its index: lines of one key
    /// usually come together.
    last: Option<(Vec<u8>, usize)>,
    /// The start of a line whose key has not ended yet.
    partial: Vec<u8>,
    /// The file the line being written goes to, once its key ended.
    cont: Option<usize>,
    refused: Option<Refusal>,
}

impl KeyedWriter {
    /// A writer into the (existing, empty) attempt directory `dir`: keys as
    /// `key` defines them, lines ending in `eol`, at most `limit` keys,
    /// files compressed with `codec` and synced to disk when `durable`.
    /// A line whose key has not ended after `max_line` bytes is refused.
    pub(crate) fn new(
        dir: &Path,
        key: KeySpec,
        eol: u8,
        (limit, max_line): (u64, u64),
        codec: Option<Codec>,
        durable: bool,
    ) -> KeyedWriter {
        KeyedWriter {
            dir: dir.to_path_buf(),
            key,
            eol,
            limit,
            max_line,
            codec,
            durable,
            index: HashMap::new(),
            files: Vec::new(),
            open: 0,
            clock: 0,
            last: None,
            partial: Vec::new(),
            cont: None,
            refused: None,
        }
    }

    /// Why the writer refused its input, if it did (its error then was
    /// this, not an I/O failure).
    pub(crate) fn refused(&self) -> Option<Refusal> {
        self.refused.clone()
    }

    /// The file of `key` (a key of a whole line, or of a line's start).
    fn file_of(&mut self, key: &[u8]) -> io::Result<usize> {
        if let Some((k, i)) = &self.last
            && k == key
        {
            return Ok(*i);
        }
        let i = match self.index.get(key) {
            Some(&i) => i,
            None => {
                if self.index.len() as u64 >= self.limit {
                    self.refused = Some(Refusal::TooManyKeys(self.limit));
                    return Err(io::Error::other(format!(
                        "more than {} keys (--max-output-keys)",
                        self.limit
                    )));
                }
                let i = self.files.len();
                self.files.push(KeyFile {
                    name: dir_name(key),
                    out: None,
                    used: 0,
                });
                self.index.insert(key.to_vec(), i);
                i
            }
        };
        match &mut self.last {
            Some((k, at)) => {
                k.clear();
                k.extend_from_slice(key);
                *at = i;
            }
            None => self.last = Some((key.to_vec(), i)),
        }
        Ok(i)
    }

    /// Writes `bytes` to file `i`, opening it (and closing the least
    /// recently used one) when it is not open.
    fn put(&mut self, i: usize, bytes: &[u8]) -> io::Result<()> {
        self.clock += 1;
        if self.files[i].out.is_none() {
            if self.open >= open_limit(self.codec) {
                let lru = (0..self.files.len())
                    .filter(|&j| self.files[j].out.is_some())
                    .min_by_key(|&j| self.files[j].used)
                    .expect("an open file");
                self.close(lru)?;
            }
            let path = self.dir.join(&self.files[i].name);
            let file = if path.exists() {
                fs::OpenOptions::new().append(true).open(&path)
            } else {
                crate::files::create_output(&path)
            }?;
            let buffered = BufWriter::with_capacity(BUFFER, file);
            self.files[i].out = Some(Encoder::new(self.codec, buffered)?);
            self.open += 1;
        }
        let f = &mut self.files[i];
        f.used = self.clock;
        f.out.as_mut().expect("open").write_all(bytes)
    }

    /// Closes file `i` (synced with the others by [`KeyedWriter::finish`]).
    fn close(&mut self, i: usize) -> io::Result<()> {
        if let Some(out) = self.files[i].out.take() {
            self.open -= 1;
            let file = out.finish()?.into_inner().map_err(|e| e.into_error())?;
            crate::files::close_file(file, false)?;
        }
        Ok(())
    }

    /// The key of the start of a line, once a separator ended it.
    fn key_end(&self, line: &[u8]) -> Option<usize> {
        let f = self.key.fields(line);
        (f.key_end < line.len()).then_some(f.key_end)
    }

    /// Files what is in `partial` once its key ended.
    fn settle_partial(&mut self) -> io::Result<()> {
        if let Some(end) = self.key_end(&self.partial) {
            let line = std::mem::take(&mut self.partial);
            let i = self.file_of(&line[..end])?;
            self.put(i, &line)?;
            self.cont = Some(i);
            self.partial = line;
            self.partial.clear();
        } else if self.partial.len() as u64 > self.max_line {
            self.refused = Some(Refusal::KeyTooLong(self.max_line));
            return Err(io::Error::other(format!(
                "an output line of over {} bytes has no key end (--max-record)",
                self.max_line
            )));
        }
        Ok(())
    }

    /// Closes every file and returns each key's file name and size, by
    /// name. A last line without its end goes to its key all the same.
    pub(crate) fn finish(mut self) -> io::Result<Vec<(String, u64)>> {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            let end = self.key.fields(&line).key_end;
            let i = self.file_of(&line[..end])?;
            self.put(i, &line)?;
        }
        for i in 0..self.files.len() {
            self.close(i)?;
        }
        if self.durable {
            crate::files::sync_filesystem(&self.dir)?;
        }
        let mut made = Vec::with_capacity(self.files.len());
        for f in &self.files {
            let len = fs::metadata(self.dir.join(&f.name))?.len();
            made.push((f.name.clone(), len));
        }
        made.sort();
        Ok(made)
    }
}

impl Write for KeyedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        // The rest of a line whose key ended in an earlier write.
        if let Some(i) = self.cont {
            match memchr::memchr(self.eol, buf) {
                None => return self.put(i, buf),
                Some(e) => {
                    self.put(i, &buf[..=e])?;
                    self.cont = None;
                    buf = &buf[e + 1..];
                }
            }
        }
        // A line begun in an earlier write, its key not yet ended.
        if !self.partial.is_empty() {
            match memchr::memchr(self.eol, buf) {
                None => {
                    self.partial.extend_from_slice(buf);
                    return self.settle_partial();
                }
                Some(e) => {
                    let mut line = std::mem::take(&mut self.partial);
                    line.extend_from_slice(&buf[..=e]);
                    let end = self.key.fields(&line[..line.len() - 1]).key_end;
                    let i = self.file_of(&line[..end])?;
                    self.put(i, &line)?;
                    line.clear();
                    self.partial = line;
                    buf = &buf[e + 1..];
                }
            }
        }
        // Whole lines: a run of lines of one key is one write.
        let mut run: Option<(usize, usize)> = None; // (file, start)
        let mut start = 0;
        for e in record_ends(buf, self.eol) {
            let line = &buf[start..e];
            let end = self.key.fields(line).key_end;
            let i = self.file_of(&line[..end])?;
            match run {
                Some((f, _)) if f == i => {}
                Some((f, from)) => {
                    self.put(f, &buf[from..start])?;
                    run = Some((i, start));
                }
                None => run = Some((i, start)),
            }
            start = e + 1;
        }
        if let Some((f, from)) = run {
            self.put(f, &buf[from..start])?;
        }
        if start < buf.len() {
            self.partial.extend_from_slice(&buf[start..]);
            self.settle_partial()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Moves the files `made` ([`KeyedWriter::finish`]) of the attempt
/// directory `from` into `output`, each as `output/NAME/file`: the
/// directory made where missing, a file of that name replaced (a task run
/// again writes what it wrote before). The names are synced to disk when
/// `durable`, with one syncfs(2) for all of them.
pub(crate) fn commit(
    from: &Path,
    output: &Path,
    file: &str,
    made: &[(String, u64)],
    durable: bool,
) -> io::Result<()> {
    for (name, _) in made {
        let dir = output.join(name);
        match fs::create_dir(&dir) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        fs::rename(from.join(name), dir.join(file))?;
    }
    if durable {
        crate::files::sync_filesystem(output)?;
    }
    Ok(())
}

/// The path of a committed key file: `output/NAME/file`.
pub(crate) fn committed_path(output: &Path, name: &str, file: &str) -> PathBuf {
    output.join(name).join(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_and_tell_keys_apart() {
        let cases: &[(&[u8], &str)] = &[
            (b"2024-01-05", "2024-01-05"),
            (b"customer_7.csv", "customer_7.csv"),
            (b"", "_EMPTY"),
            (b"_SUCCESS", "%5FSUCCESS"),
            (b".", "%2E"),
            (b"..", "%2E."),
            (b"../x", "%2E.%2Fx"),
            (b"a/b", "a%2Fb"),
            (b"a b\tc", "a%20b%09c"),
            (b"100%", "100%25"),
            (b"\xff\xfe", "%FF%FE"),
            ("Zürich".as_bytes(), "Zürich"),
            (b"a\nb", "a%0Ab"),
        ];
        for (key, want) in cases {
            assert_eq!(dir_name(key), *want, "{key:?}");
        }
        let long = vec![b'x'; 300];
        let name = dir_name(&long);
        assert!(name.len() <= MAX_NAME, "{}", name.len());
        assert!(name.starts_with("xxxx") && name.contains("%%"), "{name}");
        let mut other = long.clone();
        other[299] = b'y';
        assert_ne!(dir_name(&other), name);
        // A cut never splits an escape.
        let escaped = dir_name(&[b'/'; 100]);
        let body = escaped.split("%%").next().unwrap();
        assert_eq!(body.len() % 3, 0, "{escaped}");
    }

    fn write_in_pieces(input: &[u8], step: usize, limit: u64) -> (Vec<(String, Vec<u8>)>, bool) {
        let dir = tempfile_dir();
        let mut w = KeyedWriter::new(
            &dir,
            KeySpec::default(),
            b'\n',
            (limit, 1 << 20),
            None,
            false,
        );
        let mut failed = false;
        for chunk in input.chunks(step) {
            if w.write_all(chunk).is_err() {
                failed = true;
                break;
            }
        }
        let mut got = Vec::new();
        if !failed {
            for (name, len) in w.finish().unwrap() {
                let bytes = fs::read(dir.join(&name)).unwrap();
                assert_eq!(bytes.len() as u64, len);
                got.push((name, bytes));
            }
        }
        let _ = fs::remove_dir_all(&dir);
        (got, failed)
    }

    fn tempfile_dir() -> PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("gmr-keyed-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn lines_go_to_their_keys_however_the_writes_cut_them() {
        let mut input = Vec::new();
        for i in 0..300 {
            // 100 keys, interleaved, so that files are closed and reopened.
            let _ = writeln!(input, "k{}\tvalue {i}", (i * 7) % 100);
        }
        input.extend_from_slice(b"nosep\nlast\tno newline");
        let (whole, _) = write_in_pieces(&input, input.len(), 1000);
        assert_eq!(whole.len(), 102);
        for step in [1, 3, 17, 4096] {
            assert_eq!(write_in_pieces(&input, step, 1000).0, whole, "step {step}");
        }
        let k7 = &whole.iter().find(|(n, _)| n == "k7").unwrap().1;
        assert_eq!(k7, b"k7\tvalue 1\nk7\tvalue 101\nk7\tvalue 201\n");
        let last = &whole.iter().find(|(n, _)| n == "last").unwrap().1;
        assert_eq!(last, b"last\tno newline");
        let (_, failed) = write_in_pieces(&input, 64, 50);
        assert!(failed);
    }
}
