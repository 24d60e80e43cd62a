//! Writing many short lines fast: sorted runs, merges and reducer input
//! are millions of records of a few bytes each (a word count's are
//! `word\t1`). Copying each into a `BufWriter` costs a `memcpy` call per
//! record, which profiles of runs being written showed as a tenth of gmr's
//! time; [`LineBlock`] copies short lines with a few fixed-size moves into
//! a large block and hands the block to the writer whole.

use std::io::{self, Write};

/// Bytes gathered before they are written to a file.
pub(crate) const BLOCK: usize = 1 << 20;

/// Bytes gathered before they are written to a command's input: what a
/// pipe holds, so that the command gets its first records early, and one
/// that stops reading (`head`) is noticed after a pipe's worth more.
pub(crate) const PIPE_BLOCK: usize = 64 << 10;

/// The buffer of a file that merges and parts are written to, and of a
/// built-in's input: smaller than a [`BLOCK`], so that a merge's blocks
/// pass through it whole rather than being copied into it (a copy of every
/// byte of a partition), while a command's output, read a pipe's worth at
/// a time, is still written in fewer, larger writes.
pub(crate) const WRITE_BUFFER: usize = 256 << 10;

/// Asks the CPU to start loading `p`'s cache line: a hint, never a fault.
#[inline]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p.cast::<i8>(), std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Asks the kernel to back the 2 MiB-aligned pages within `len` bytes at
/// `start` with huge pages (`madvise(MADV_HUGEPAGE)`, where transparent
/// huge pages are enabled for those who ask): a hint, which changes
/// nothing when refused. Call it before the memory is first touched.
pub(crate) fn huge_pages(start: *mut u8, len: usize) {
    const HUGE: usize = 2 << 20;
    let (from, to) = (
        (start as usize).next_multiple_of(HUGE),
        (start as usize + len) & !(HUGE - 1),
    );
    #[cfg(target_os = "linux")]
    if to > from {
        // SAFETY: advice on whole pages of an allocation the caller owns;
        // MADV_HUGEPAGE changes neither its contents nor its validity.
        unsafe { libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_HUGEPAGE) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (from, to);
}

/// `n` in decimal, written at the end of `buf`: no allocation, so that
/// it may run between fork and exec.
pub(crate) fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

/// Copies `src` to `dst` with at most two loads and two stores of a fixed
/// size for lengths up to 32 (overlapping when the length is between two
/// sizes), which the compiler inlines, instead of calling `memcpy`.
///
/// # Safety
/// `dst` must be valid for `src.len()` bytes of writes and must not overlap
/// `src`.
#[inline(always)]
unsafe fn copy_short(dst: *mut u8, src: &[u8]) {
    let n = src.len();
    let s = src.as_ptr();
    // SAFETY: every read is within `src` and every write within
    // `dst..dst + n`; the caller promises `dst` has room for `n` bytes.
    unsafe {
        if n >= 16 {
            if n > 32 {
                std::ptr::copy_nonoverlapping(s, dst, n);
                return;
            }
            let a = std::ptr::read_unaligned(s.cast::<[u8; 16]>());
            let b = std::ptr::read_unaligned(s.add(n - 16).cast::<[u8; 16]>());
            std::ptr::write_unaligned(dst.cast::<[u8; 16]>(), a);
            std::ptr::write_unaligned(dst.add(n - 16).cast::<[u8; 16]>(), b);
        } else if n >= 8 {
            let a = std::ptr::read_unaligned(s.cast::<u64>());
            let b = std::ptr::read_unaligned(s.add(n - 8).cast::<u64>());
            std::ptr::write_unaligned(dst.cast::<u64>(), a);
            std::ptr::write_unaligned(dst.add(n - 8).cast::<u64>(), b);
        } else if n >= 4 {
            let a = std::ptr::read_unaligned(s.cast::<u32>());
            let b = std::ptr::read_unaligned(s.add(n - 4).cast::<u32>());
            std::ptr::write_unaligned(dst.cast::<u32>(), a);
            std::ptr::write_unaligned(dst.add(n - 4).cast::<u32>(), b);
        } else {
            for i in 0..n {
                *dst.add(i) = *s.add(i);
            }
        }
    }
}

/// Appends `src` to `v`, copying short slices without a `memcpy` call.
#[inline]
pub(crate) fn extend_short(v: &mut Vec<u8>, src: &[u8]) {
    v.reserve(src.len());
    let at = v.len();
    // SAFETY: `reserve` made room for `src.len()` bytes after `at`, and
    // `src` cannot alias the vector's spare capacity.
    unsafe {
        copy_short(v.as_mut_ptr().add(at), src);
        v.set_len(at + src.len());
    }
}

/// Gathers `\n`-terminated lines into 1 MiB blocks for a writer.
pub(crate) struct LineBlock<W: Write> {
    out: W,
    block: Vec<u8>,
    /// The block's size.
    size: usize,
    /// The byte that ends each line (NUL with `-z`).
    eol: u8,
}

impl<W: Write> LineBlock<W> {
    /// A block buffer of [`BLOCK`] bytes in front of `out`.
    pub(crate) fn new(out: W) -> LineBlock<W> {
        LineBlock::with_size(out, BLOCK)
    }

    /// A block buffer of `size` bytes in front of `out`.
    pub(crate) fn with_size(out: W, size: usize) -> LineBlock<W> {
        LineBlock {
            out,
            block: Vec::with_capacity(size),
            size,
            eol: b'\n',
        }
    }

    /// The same buffer, ending each line with `eol` rather than `\n`.
    pub(crate) fn ending(self, eol: u8) -> LineBlock<W> {
        LineBlock { eol, ..self }
    }

    /// Writes `line` and a `\n`.
    #[inline]
    pub(crate) fn line(&mut self, line: &[u8]) -> io::Result<()> {
        let n = line.len();
        if self.size - self.block.len() <= n {
            self.write_block()?;
            if n >= self.size {
                self.out.write_all(line)?;
                return self.out.write_all(&[self.eol]);
            }
        }
        let at = self.block.len();
        // SAFETY: the block has capacity `size` and at + n < size, so there
        // is room for the line and its newline; `line` is not in the block.
        unsafe {
            let dst = self.block.as_mut_ptr().add(at);
            copy_short(dst, line);
            *dst.add(n) = self.eol;
            self.block.set_len(at + n + 1);
        }
        Ok(())
    }

    fn write_block(&mut self) -> io::Result<()> {
        let r = self.out.write_all(&self.block);
        self.block.clear();
        r
    }

    /// Writes what is gathered and flushes the writer.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.write_block()?;
        self.out.flush()
    }

    /// Writes what is gathered and returns the writer.
    pub(crate) fn into_inner(mut self) -> io::Result<W> {
        self.write_block()?;
        Ok(self.out)
    }
}

/// Writes the records of sorted runs: as lines, or counted (`N<SP>line`
/// and the line's end, N copies of the line; see
/// [`crate::data::sort::Segment::text_bytes`]), where copies of one line
/// that meet are written once.
pub(crate) struct RunWriter<W: Write> {
    block: LineBlock<W>,
    counted: bool,
    /// The line waiting to be written (counted), and its copies so far.
    line: Vec<u8>,
    copies: u64,
    /// Bytes written so far, the line waiting aside.
    written: u64,
}

impl<W: Write> RunWriter<W> {
    /// Runs into `block`, counted when `counted`.
    pub(crate) fn new(block: LineBlock<W>, counted: bool) -> RunWriter<W> {
        RunWriter {
            block,
            counted,
            line: Vec::new(),
            copies: 0,
            written: 0,
        }
    }

    /// Writes `copies` copies of `line` (one, unless counted).
    #[inline]
    pub(crate) fn push(&mut self, line: &[u8], copies: u64) -> io::Result<()> {
        if !self.counted {
            self.written += (line.len() as u64 + 1) * copies;
            return (0..copies).try_for_each(|_| self.block.line(line));
        }
        if self.copies > 0 && line == self.line.as_slice() {
            self.copies += copies;
            return Ok(());
        }
        self.write_waiting()?;
        self.line.clear();
        self.line.extend_from_slice(line);
        self.copies = copies;
        Ok(())
    }

    /// Bytes written, the line waiting included (it is written now: the
    /// next record starts a new one).
    pub(crate) fn written(&mut self) -> io::Result<u64> {
        self.write_waiting()?;
        Ok(self.written)
    }

    /// Writes what is left and flushes the writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.write_waiting()?;
        let mut out = self.block.into_inner()?;
        out.flush()?;
        Ok(out)
    }

    fn write_waiting(&mut self) -> io::Result<()> {
        if self.copies == 0 {
            return Ok(());
        }
        let mut digits = [0u8; 20];
        let count = decimal(self.copies, &mut digits);
        let block = &mut self.block;
        if block.size - block.block.len() <= count.len() + 1 {
            block.write_block()?;
        }
        extend_short(&mut block.block, count);
        block.block.push(b' ');
        block.line(&self.line)?;
        self.written += (count.len() + 1 + self.line.len() + 1) as u64;
        self.copies = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_every_length_come_out_whole() {
        let mut want = Vec::new();
        let mut block = LineBlock::new(Vec::new());
        // Every short length, then lines that cross block boundaries and
        // one longer than a block.
        let lines: Vec<Vec<u8>> = (0..70)
            .map(|n| (0..n).map(|i| b'a' + (i % 26) as u8).collect())
            .chain((0..40).map(|i| vec![b'x'; 100_000 + i]))
            .chain([vec![b'y'; BLOCK + 3], b"end".to_vec()])
            .collect();
        for l in &lines {
            block.line(l).unwrap();
            want.extend_from_slice(l);
            want.push(b'\n');
        }
        assert_eq!(block.into_inner().unwrap(), want);
        let mut v = b"x".to_vec();
        for l in &lines[..70] {
            extend_short(&mut v, l);
        }
        assert_eq!(v, [&b"x"[..], &lines[..70].concat()].concat());
    }
}
