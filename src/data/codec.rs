//! Compressed data (docs/contracts.md §1, §3): the codecs gmr
//! reads inputs through, known by their first bytes whatever a file's name,
//! and the ones `--compress` writes output parts with.
//!
//! Each is the reference library behind a well-kept crate: flate2 (zlib's
//! deflate through miniz_oxide), zstd (libzstd), bzip2 (libbz2) and liblzma
//! (xz-utils' library). Readers go on across members, frames and streams,
//! as `zcat`, `zstdcat`, `bzcat` and `xzcat` do.

use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;

/// A compression an input is read through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Codec {
    /// gzip (several members are read one after the other).
    Gzip,
    /// Zstandard (several frames too).
    Zstd,
    /// bzip2 (several streams too).
    Bzip2,
    /// xz.
    Xz,
}

impl Codec {
    /// The codec of `file` by its first bytes, whatever its name: gzip
    /// `1f 8b 08`, zstd `28 b5 2f fd`, bzip2 `BZh1`-`BZh9` followed by the
    /// block magic `31 41 59 26 53 59`, xz `fd 37 7a 58 5a 00`. No text
    /// starts with any of them.
    pub(crate) fn sniff(file: &File) -> io::Result<Option<Codec>> {
        let mut head = [0u8; 10];
        let mut n = 0;
        while n < head.len() {
            match file.read_at(&mut head[n..], n as u64) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let head = &head[..n];
        Ok(if head.starts_with(&[0x1f, 0x8b, 0x08]) {
            Some(Codec::Gzip)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Codec::Zstd)
        } else if head.len() == 10
            && head.starts_with(b"BZh")
            && (b'1'..=b'9').contains(&head[3])
            && head[4..] == [0x31, 0x41, 0x59, 0x26, 0x53, 0x59]
        {
            Some(Codec::Bzip2)
        } else if head.starts_with(&[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]) {
            Some(Codec::Xz)
        } else {
            None
        })
    }

    /// Its name, as `--compress` and messages spell it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip",
            Codec::Zstd => "zstd",
            Codec::Bzip2 => "bzip2",
            Codec::Xz => "xz",
        }
    }
}

impl Codec {
    /// A reader of what `inner`, compressed with this codec, holds.
    pub(crate) fn decoder<'a>(
        self,
        inner: impl io::BufRead + 'a,
    ) -> io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Codec::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(inner)),
            Codec::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(inner)),
            Codec::Xz => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(inner)),
            Codec::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(inner)?),
        })
    }

    /// The file name extension of output parts written with it.
    pub(crate) fn extension(self) -> &'static str {
        match self {
            Codec::Gzip => ".gz",
            Codec::Zstd => ".zst",
            Codec::Bzip2 => ".bz2",
            Codec::Xz => ".xz",
        }
    }

    /// Parses `--compress`: `gz` or `zst` (gzip, zstd also accepted).
    pub(crate) fn parse_output(s: &str) -> Result<Codec, String> {
        match s {
            "gz" | "gzip" => Ok(Codec::Gzip),
            "zst" | "zstd" => Ok(Codec::Zstd),
            _ => Err(format!("`{s}`: --compress takes gz or zst")),
        }
    }
}

/// A writer that compresses what it is given into `W`; [`Encoder::finish`]
/// writes the end of the stream and gives `W` back.
pub(crate) enum Encoder<W: Write> {
    /// No compression.
    Plain(W),
    /// gzip, at flate2's default level.
    Gzip(flate2::write::GzEncoder<W>),
    /// zstd, at level 3 (zstd's default: fast, and smaller than gzip).
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    /// An encoder of `codec` (None: none) in front of `inner`. Only gzip
    /// and zstd are written.
    pub(crate) fn new(codec: Option<Codec>, inner: W) -> io::Result<Encoder<W>> {
        Ok(match codec {
            None => Encoder::Plain(inner),
            Some(Codec::Gzip) => Encoder::Gzip(flate2::write::GzEncoder::new(
                inner,
                flate2::Compression::default(),
            )),
            Some(Codec::Zstd) => Encoder::Zstd(zstd::stream::write::Encoder::new(inner, 3)?),
            Some(other) => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("gmr does not write {}", other.name()),
                ));
            }
        })
    }

    /// Ends the stream and returns the writer it went to.
    pub(crate) fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Plain(w) => Ok(w),
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Plain(w) => w.write(buf),
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Plain(w) => w.flush(),
            Encoder::Gzip(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_reads_back_and_is_sniffed() {
        let dir = tempfile::tempdir().unwrap();
        for codec in [Codec::Gzip, Codec::Zstd] {
            let path = dir.path().join(format!("part{}", codec.extension()));
            let mut enc = Encoder::new(Some(codec), File::create(&path).unwrap()).unwrap();
            enc.write_all(b"a line\nanother\n").unwrap();
            enc.finish().unwrap();
            let file = File::open(&path).unwrap();
            assert_eq!(Codec::sniff(&file).unwrap(), Some(codec));
            let mut text = String::new();
            codec
                .decoder(io::BufReader::new(file))
                .unwrap()
                .read_to_string(&mut text)
                .unwrap();
            assert_eq!(text, "a line\nanother\n");
        }
        assert!(Codec::parse_output("xz").is_err());
        assert_eq!(Codec::parse_output("zst"), Ok(Codec::Zstd));
    }
}
