//! `--sort-key`: key definitions in sort(1)'s `-k` syntax, and the byte
//! string a line sorts by under them (docs/contracts.md §2).
//!
//! Rather than compare two lines field by field, number by number, each
//! time the sort or a merge asks (twenty-odd times per record), a record's
//! keys are turned once into one byte string whose bytewise order is the
//! keys' order: its *encoding*. The sort buffer and the merges then order
//! encodings exactly as they order plain keys, radix passes included.
//!
//! Each key's encoding is prefix-free (no encoding is the start of another
//! one), so comparing the concatenation of several keys' encodings compares
//! them key by key; a reversed key is its encoding with every byte
//! inverted, which reverses its order and keeps it prefix-free.
//!
//! - Text: the key's bytes (translated by `f`, filtered by `d` or `i`),
//!   each `00` byte written `00 FF`, ended by `00 01`.
//! - `n`, as sort(1) reads numbers in the C locale: blanks, an optional
//!   `-`, digits, an optional `.` and digits; anything else ends the
//!   number, and no digits at all is zero. The value is exact, however many
//!   digits: a class byte (negative, zero, positive), then for a non-zero
//!   value its decimal exponent and its significant digits, inverted when
//!   negative.
//! - `g`, as `strtold` reads numbers: a sign, digits with a `.`, an
//!   exponent, `inf`, `infinity` and `nan`, after white space. What holds
//!   no number sorts first, then NaN, then -inf, numbers and +inf. Among
//!   NaNs, `nan` sorts before `-nan` (a payload, `nan(12)`, is not read):
//!   sort(1) orders NaNs by their bytes in memory, which no other program
//!   can reproduce. Values are compared exactly
//!   where sort(1) compares long doubles: the two differ only for numbers
//!   of more than 18 significant digits that round to the same long
//!   double. Magnitudes past a long double's range are infinite or zero, as
//!   strtold makes them. Hexadecimal numbers (`0x…`) read as 0.

use std::sync::Arc;

/// How one key compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Numeric,
    General,
}

/// One `-k POS1[,POS2]` key definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyDef {
    /// The field the key starts in (0-based) and the byte in it (0-based).
    start_field: usize,
    start_char: usize,
    /// The field the key ends in (0-based; `usize::MAX`: the line's end)
    /// and its last byte (1-based; 0: the field's end).
    end_field: usize,
    end_char: usize,
    /// `b` on POS1 and POS2: skip blanks before counting bytes.
    skip_start_blanks: bool,
    skip_end_blanks: bool,
    kind: Kind,
    reverse: bool,
    /// `f`: lower case compares as upper case.
    fold: bool,
    /// `d`: only letters, digits and blanks count.
    dictionary: bool,
    /// `i`: only printable bytes count.
    printable: bool,
}

/// The options sort(1)'s `-k` takes that gmr does not, with what to do.
const UNSUPPORTED: &str = "gmr supports the options b, d, f, g, i, n and r";

impl KeyDef {
    /// Parses `POS1[,POS2]`, POS being `F[.C][OPTS]` as in `sort -k`.
    pub(crate) fn parse(text: &str) -> Result<KeyDef, String> {
        let bad = |why: &str| format!("--sort-key {text}: {why}");
        let mut key = KeyDef {
            start_field: 0,
            start_char: 0,
            end_field: usize::MAX,
            end_char: 0,
            skip_start_blanks: false,
            skip_end_blanks: false,
            kind: Kind::Text,
            reverse: false,
            fold: false,
            dictionary: false,
            printable: false,
        };
        let (pos1, pos2) = match text.split_once(',') {
            Some((a, b)) => (a, Some(b)),
            None => (text, None),
        };
        let (field, char, opts) = parse_pos(pos1).map_err(|e| bad(&e))?;
        key.start_field = field
            .checked_sub(1)
            .ok_or_else(|| bad("field numbers start at 1"))?;
        key.start_char = match char {
            Some(0) => return Err(bad("character positions start at 1")),
            Some(c) => c - 1,
            None => 0,
        };
        key.options(opts, true).map_err(|e| bad(&e))?;
        if let Some(pos2) = pos2 {
            let (field, char, opts) = parse_pos(pos2).map_err(|e| bad(&e))?;
            key.end_field = field
                .checked_sub(1)
                .ok_or_else(|| bad("field numbers start at 1"))?;
            key.end_char = char.unwrap_or(0);
            key.options(opts, false).map_err(|e| bad(&e))?;
        }
        let text_only = key.fold || key.dictionary || key.printable;
        if key.kind != Kind::Text && text_only {
            return Err(bad("n and g compare numbers: d, f and i do not apply"));
        }
        Ok(key)
    }

    fn options(&mut self, opts: &str, start: bool) -> Result<(), String> {
        for c in opts.chars() {
            match c {
                'b' if start => self.skip_start_blanks = true,
                'b' => self.skip_end_blanks = true,
                'n' | 'g' => {
                    let kind = if c == 'n' {
                        Kind::Numeric
                    } else {
                        Kind::General
                    };
                    if self.kind != Kind::Text && self.kind != kind {
                        return Err("n and g cannot both apply".into());
                    }
                    self.kind = kind;
                }
                'r' => self.reverse = true,
                'f' => self.fold = true,
                'd' => self.dictionary = true,
                'i' => self.printable = true,
                c => return Err(format!("option `{c}` is not supported; {UNSUPPORTED}")),
            }
        }
        Ok(())
    }

    /// Where the key lies in `line`: `line[start..end]`, empty when its
    /// end comes before its start (as sort(1) treats it).
    fn bounds(&self, line: &[u8], sep: u8) -> (usize, usize) {
        let len = line.len();
        let blank_end = |mut p: usize| {
            while p < len && is_blank(line[p]) {
                p += 1;
            }
            p
        };
        // The start of the field `n` fields on from the one at `p`.
        let skip = |mut p: usize, mut n: usize| {
            while p < len && n > 0 {
                p = find(sep, line, p).map_or(len, |i| i + 1);
                n -= 1;
            }
            p
        };
        // The start: the start field, then blanks, then bytes.
        let field = skip(0, self.start_field);
        let mut p = field;
        if self.skip_start_blanks {
            p = blank_end(p);
        }
        let start = len.min(p.saturating_add(self.start_char));
        // The end: the end of field `end_field`, or bytes of it. The walk
        // goes on from the start field when the end field is not before it.
        let end = if self.end_field == usize::MAX {
            len
        } else {
            let p = match self.end_field.checked_sub(self.start_field) {
                Some(n) => skip(field, n),
                None => skip(0, self.end_field),
            };
            if self.end_char == 0 {
                find(sep, line, p).unwrap_or(len)
            } else {
                let p = if self.skip_end_blanks {
                    blank_end(p)
                } else {
                    p
                };
                len.min(p.saturating_add(self.end_char))
            }
        };
        (start, end.max(start))
    }

    /// Appends the encoding of this key of `line` to `out`.
    fn encode(&self, line: &[u8], sep: u8, out: &mut Vec<u8>) {
        let (start, end) = self.bounds(line, sep);
        let text = &line[start..end];
        let from = out.len();
        match self.kind {
            Kind::Numeric => encode_numeric(text, out),
            Kind::General => encode_general(text, out),
            Kind::Text => {
                for &b in text {
                    if (self.dictionary && !(b.is_ascii_alphanumeric() || is_blank(b)))
                        || (self.printable && !(0x20..0x7f).contains(&b))
                    {
                        continue;
                    }
                    let b = if self.fold { b.to_ascii_uppercase() } else { b };
                    out.push(b);
                    if b == 0 {
                        out.push(0xff);
                    }
                }
                out.extend_from_slice(&[0, 1]);
            }
        }
        if self.reverse {
            for b in &mut out[from..] {
                *b = !*b;
            }
        }
    }
}

/// The first `sep` in `line` from `from`: a plain loop over short lines
/// (most fields are words and numbers), where memchr's set-up costs more.
#[inline]
fn find(sep: u8, line: &[u8], from: usize) -> Option<usize> {
    let rest = &line[from..];
    let at = match rest.len() {
        0..=32 => rest.iter().position(|&b| b == sep),
        _ => memchr::memchr(sep, rest),
    };
    at.map(|i| from + i)
}

/// sort(1)'s blanks in the C locale.
fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `F[.C][OPTS]`: the field, the character if given, the options.
fn parse_pos(pos: &str) -> Result<(usize, Option<usize>, &str), String> {
    let number = |s: &str| -> Result<(usize, usize), String> {
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("`{s}` does not start with a number"));
        }
        let n = s[..digits]
            .parse()
            .map_err(|_| format!("`{}` is too large", &s[..digits]))?;
        Ok((n, digits))
    };
    let (field, used) = number(pos)?;
    let rest = &pos[used..];
    match rest.strip_prefix('.') {
        Some(rest) => {
            let (char, used) = number(rest)?;
            Ok((field, Some(char), &rest[used..]))
        }
        None => Ok((field, None, rest)),
    }
}

/// The keys records are ordered by, and the separator between fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SortKeys {
    keys: Arc<[KeyDef]>,
    separator: u8,
}

impl SortKeys {
    /// Parses the `--sort-key` definitions (at least one) for fields split
    /// at `separator`.
    pub(crate) fn parse(defs: &[String], separator: u8) -> Result<SortKeys, String> {
        let keys = defs
            .iter()
            .map(|d| KeyDef::parse(d))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SortKeys {
            keys: keys.into(),
            separator,
        })
    }

    /// Whether the first `fields` keys are the line's first `fields` fields
    /// one by one, compared as plain bytes (reversed or not): then the
    /// records of one key are consecutive in the order.
    pub(crate) fn starts_with_fields(&self, fields: u32) -> bool {
        let fields = fields as usize;
        self.keys.len() >= fields
            && self.keys[..fields].iter().enumerate().all(|(i, k)| {
                let plain = KeyDef {
                    start_field: i,
                    end_field: i,
                    reverse: k.reverse,
                    ..KeyDef::parse("1,1").expect("a valid key")
                };
                *k == plain
            })
    }

    /// Appends the encoding of `line` (without its `\n`) to `out`: lines
    /// order as their encodings do, bytewise, and lines whose keys are
    /// equal have equal encodings.
    #[inline]
    pub(crate) fn encode(&self, line: &[u8], out: &mut Vec<u8>) {
        for key in self.keys.iter() {
            key.encode(line, self.separator, out);
        }
    }
}

/// Number classes of `n`, in their order.
const N_NEGATIVE: u8 = 1;
const N_ZERO: u8 = 2;
const N_POSITIVE: u8 = 3;

/// Number classes of `g`, in sort(1)'s order.
const G_NOT_A_NUMBER: u8 = 1;
const G_NAN: u8 = 2;
const G_MINUS_INF: u8 = 3;
const G_NEGATIVE: u8 = 4;
const G_ZERO: u8 = 5;
const G_POSITIVE: u8 = 6;
const G_PLUS_INF: u8 = 7;

/// Decimal exponents past which a long double is infinite or zero.
const LONG_DOUBLE_MAX_EXP: i64 = 4933;
const LONG_DOUBLE_MIN_EXP: i64 = -4950;

/// A decimal number's magnitude: `0.DIGITS × 10^exp`, the digits without
/// leading or trailing zeros (none: zero).
struct Decimal<'a> {
    /// The digits are `head` then `tail` (the integer and fraction parts,
    /// which the point separates in the text).
    head: &'a [u8],
    tail: &'a [u8],
    exp: i64,
}

impl Decimal<'_> {
    /// From the digits before and after the point.
    fn new<'a>(int: &'a [u8], frac: &'a [u8], exp10: i64) -> Decimal<'a> {
        let int = &int[int.iter().take_while(|&&d| d == b'0').count()..];
        let frac = &frac[..frac.len() - frac.iter().rev().take_while(|&&d| d == b'0').count()];
        if !int.is_empty() {
            // The exponent counts every integer digit; trailing zeros of
            // the integer part are digits to drop only when no fraction
            // follows.
            let exp = (int.len() as i64).saturating_add(exp10);
            let int = match frac.is_empty() {
                true => &int[..int.len() - int.iter().rev().take_while(|&&d| d == b'0').count()],
                false => int,
            };
            return Decimal {
                head: int,
                tail: frac,
                exp,
            };
        }
        let zeros = frac.iter().take_while(|&&d| d == b'0').count();
        let frac = &frac[zeros..];
        Decimal {
            head: frac,
            tail: &[],
            exp: match frac.is_empty() {
                true => 0,
                false => exp10.saturating_sub(zeros as i64),
            },
        }
    }

    fn is_zero(&self) -> bool {
        self.head.is_empty() && self.tail.is_empty()
    }

    /// Appends the exponent and the digits, then a 0 that ends them.
    fn encode(&self, out: &mut Vec<u8>) {
        encode_exponent(self.exp, out);
        out.extend_from_slice(self.head);
        out.extend_from_slice(self.tail);
        out.push(0);
    }
}

/// An integer in bytes that order as it does: one byte for |e| < 64,
/// otherwise a length byte and the magnitude (inverted when negative).
fn encode_exponent(e: i64, out: &mut Vec<u8>) {
    if (-63..=63).contains(&e) {
        out.push((0x80 + e) as u8);
        return;
    }
    let m = e.unsigned_abs();
    let n = 8 - (m.leading_zeros() / 8) as usize;
    let bytes = &m.to_be_bytes()[8 - n..];
    if e > 0 {
        out.push(0xc0 + n as u8);
        out.extend_from_slice(bytes);
    } else {
        out.push(0x40 - n as u8);
        out.extend(bytes.iter().map(|b| !b));
    }
}

/// Appends a signed magnitude: `positive` or `negative` and the digits,
/// inverted after the class byte when negative.
fn encode_signed(negative: bool, d: &Decimal, classes: (u8, u8), out: &mut Vec<u8>) {
    if negative {
        out.push(classes.0);
        let from = out.len();
        d.encode(out);
        for b in &mut out[from..] {
            *b = !*b;
        }
    } else {
        out.push(classes.1);
        d.encode(out);
    }
}

/// Where the run of decimal digits of `text` from `from` ends.
fn digits_end(text: &[u8], from: usize) -> usize {
    from + text[from..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count()
}

/// The digits of a number at `text[p..]`: before the point, after it (none
/// without a point), and where they end (past the point, if any).
fn mantissa(text: &[u8], p: usize) -> (&[u8], &[u8], usize) {
    let int_end = digits_end(text, p);
    match text.get(int_end) {
        Some(b'.') => {
            let end = digits_end(text, int_end + 1);
            (&text[p..int_end], &text[int_end + 1..end], end)
        }
        _ => (&text[p..int_end], &[], int_end),
    }
}

/// `n`: see the module's documentation.
fn encode_numeric(text: &[u8], out: &mut Vec<u8>) {
    let mut p = text.iter().take_while(|&&b| is_blank(b)).count();
    let negative = text.get(p) == Some(&b'-');
    p += usize::from(negative);
    let (int, frac, _) = mantissa(text, p);
    let d = Decimal::new(int, frac, 0);
    if d.is_zero() {
        out.push(N_ZERO);
    } else {
        encode_signed(negative, &d, (N_NEGATIVE, N_POSITIVE), out);
    }
}

/// `g`: see the module's documentation.
fn encode_general(text: &[u8], out: &mut Vec<u8>) {
    let mut p = text
        .iter()
        .take_while(|&&b| b == b' ' || (b'\t'..=b'\r').contains(&b))
        .count();
    let negative = text.get(p) == Some(&b'-');
    if matches!(text.get(p), Some(b'-' | b'+')) {
        p += 1;
    }
    let rest = &text[p..];
    let starts =
        |word: &[u8]| rest.len() >= word.len() && rest[..word.len()].eq_ignore_ascii_case(word);
    if starts(b"nan") {
        out.extend_from_slice(&[G_NAN, u8::from(negative)]);
        return;
    }
    if starts(b"inf") {
        out.push(if negative { G_MINUS_INF } else { G_PLUS_INF });
        return;
    }
    let (int, frac, end) = mantissa(text, p);
    if int.is_empty() && frac.is_empty() {
        out.push(G_NOT_A_NUMBER);
        return;
    }
    // An exponent counts only when digits follow its `e` and sign.
    let mut exp10 = 0i64;
    if matches!(text.get(end), Some(b'e' | b'E')) {
        let mut q = end + 1;
        let minus = text.get(q) == Some(&b'-');
        if matches!(text.get(q), Some(b'-' | b'+')) {
            q += 1;
        }
        let e = digits_end(text, q);
        if e > q {
            for &d in &text[q..e] {
                // Saturate far beyond any long double's range.
                exp10 = (exp10 * 10 + i64::from(d - b'0')).min(1 << 40);
            }
            if minus {
                exp10 = -exp10;
            }
        }
    }
    let d = Decimal::new(int, frac, exp10);
    if d.is_zero() || d.exp < LONG_DOUBLE_MIN_EXP {
        out.push(G_ZERO);
    } else if d.exp > LONG_DOUBLE_MAX_EXP {
        out.push(if negative { G_MINUS_INF } else { G_PLUS_INF });
    } else {
        encode_signed(negative, &d, (G_NEGATIVE, G_POSITIVE), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    fn enc(defs: &[&str], line: &str) -> Vec<u8> {
        let defs: Vec<String> = defs.iter().map(|s| s.to_string()).collect();
        let keys = SortKeys::parse(&defs, b'\t').unwrap();
        let mut out = Vec::new();
        keys.encode(line.as_bytes(), &mut out);
        out
    }

    fn cmp(defs: &[&str], a: &str, b: &str) -> Ordering {
        enc(defs, a).cmp(&enc(defs, b))
    }

    #[test]
    fn parses_sort_k_syntax() {
        let k = KeyDef::parse("2,2nr").unwrap();
        assert_eq!((k.start_field, k.end_field, k.end_char), (1, 1, 0));
        assert!(k.reverse && k.kind == Kind::Numeric);
        let k = KeyDef::parse("3.2b,3.4").unwrap();
        assert_eq!(
            (k.start_field, k.start_char, k.end_field, k.end_char),
            (2, 1, 2, 4)
        );
        assert!(k.skip_start_blanks && !k.skip_end_blanks);
        assert_eq!(KeyDef::parse("3n").unwrap().end_field, usize::MAX);
        for bad in ["0", "1.0", "x", "1,", "2,2M", "1ng", "1nf", ""] {
            assert!(KeyDef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fields_are_cut_as_sort_cuts_them() {
        let keys = |def: &str, line: &str| {
            let k = KeyDef::parse(def).unwrap();
            let (s, e) = k.bounds(line.as_bytes(), b',');
            line[s..e].to_string()
        };
        assert_eq!(keys("2,2", "a,bb,c"), "bb");
        assert_eq!(keys("2", "a,bb,c"), "bb,c");
        assert_eq!(keys("2.2,2.3", "a,bcde,f"), "cd");
        assert_eq!(keys("2.2,3", "a,bcde,f"), "cde,f");
        assert_eq!(keys("4,4", "a,b"), "");
        assert_eq!(keys("2,1", "a,b"), "");
        assert_eq!(keys("2b,2", "a,  x,c"), "x");
        assert_eq!(keys("2,2", "a,  x,c"), "  x");
        assert_eq!(keys("1.3", "ab"), "");
    }

    #[test]
    fn numbers_order_by_value() {
        let n = ["1,1n"];
        let ascending = [
            "-1000", "-999.5", "-2", "-1.5", "-0.001", "0", "-0", "", "abc", "0.000", ".5",
            "0.50001", "1", "1.0", "01", "2", "10", "99.99", "100", "1e3",
        ];
        for w in ascending.windows(2) {
            let o = cmp(&n, w[0], w[1]);
            let equal = matches!(
                (w[0], w[1]),
                ("0", "-0")
                    | ("-0", "")
                    | ("", "abc")
                    | ("abc", "0.000")
                    | ("1", "1.0")
                    | ("1.0", "01")
            ) || w[1] == "1e3";
            let want = if equal {
                Ordering::Equal
            } else {
                Ordering::Less
            };
            // "1e3" reads as 1 under n.
            if w[1] == "1e3" {
                assert_eq!(cmp(&n, "1e3", "1"), Ordering::Equal);
                continue;
            }
            assert_eq!(o, want, "{} vs {}", w[0], w[1]);
        }
        let huge = "9".repeat(300);
        assert_eq!(
            cmp(&n, &huge, &format!("1{}", "0".repeat(300))),
            Ordering::Less
        );
        assert_eq!(cmp(&["1,1nr"], "2", "10"), Ordering::Greater);
    }

    #[test]
    fn general_numbers_order_as_strtold_reads_them() {
        let g = ["1,1g"];
        let ascending = [
            "abc", "nan", "-nan", "-inf", "-1e10", "-5", "-1e-3", "0", "1e-400", "1.5", "2e0",
            "1e3", "1e4000", "inf",
        ];
        for w in ascending.windows(2) {
            assert_eq!(cmp(&g, w[0], w[1]), Ordering::Less, "{} vs {}", w[0], w[1]);
        }
        assert_eq!(cmp(&g, "1e5000", "INF"), Ordering::Equal);
        assert_eq!(cmp(&g, "-0", "0e7"), Ordering::Equal);
        assert_eq!(cmp(&g, "1000", "1e3"), Ordering::Equal);
        assert_eq!(cmp(&g, "  +12.50", "12.5x"), Ordering::Equal);
        assert_eq!(cmp(&g, "1e", "1"), Ordering::Equal);
    }

    #[test]
    fn several_keys_compare_key_by_key() {
        let defs = ["1,1", "2,2nr"];
        assert_eq!(cmp(&defs, "a\t1", "a\t2"), Ordering::Greater);
        assert_eq!(cmp(&defs, "a\t1", "ab\t2"), Ordering::Less);
        assert_eq!(cmp(&defs, "a\x00\t1", "a\t2"), Ordering::Greater);
        assert_eq!(cmp(&["1,1f"], "abc", "ABD"), Ordering::Less);
        assert_eq!(cmp(&["1,1d"], "a-b", "ab"), Ordering::Equal);
        assert_eq!(cmp(&["1,1i"], "a\x01b", "ab"), Ordering::Equal);
    }
}
