//! `--sort-key` and `--total-order`, checked against GNU sort on random
//! lines and on the bundled books: what one partition holds, and what the
//! parts of a total order hold one after another.

mod common;
use common::*;

/// A small deterministic generator (xorshift64*), so that a failure names
/// a seed that reproduces it.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
}

/// A field as `n` and text keys meet them: signs, decimals, leading
/// blanks and zeros, words, empty fields, and numbers of up to 40 digits.
fn field(r: &mut Rng, general: bool) -> String {
    let blanks = ["", "", "", " ", "  ", "\u{0009}"];
    let lead = if general { "" } else { r.pick(&blanks) };
    let max_digits = if general { 17 } else { 40 };
    let body = match r.below(10) {
        0 => String::new(),
        1 => r
            .pick(&[
                "abc", "Abc", "ABC", "a-b", "x y", "-", ".", "+5", "--1", "1.2.3", "é",
            ])
            .to_string(),
        2 => r
            .pick(&["0", "-0", "00", "0.0", "-.0", ".0", "-"])
            .to_string(),
        _ => {
            let sign = r.pick(&["", "", "-"]);
            let long = r.below(8) == 0;
            let int_len = r.below(if long { max_digits } else { 4 } + 1);
            let int = r.digits(int_len);
            let frac = match r.below(3) {
                0 => {
                    let n = r.below(6);
                    format!(".{}", r.digits(n))
                }
                _ => String::new(),
            };
            let exp = match (general, r.below(4)) {
                (true, 0) => {
                    let sign = r.pick(&["", "-", "+"]);
                    format!("e{sign}{}", r.below(400))
                }
                (true, 1) => r.pick(&["e", "E5", "e-2", "e+"]).to_string(),
                _ => String::new(),
            };
            let special = match (general, r.below(30)) {
                (true, 0) => Some(r.pick(&[
                    "inf", "-inf", "INF", "Infinity", "1e5000", "-1e6000", "1e-5000",
                ])),
                _ => None,
            };
            match special {
                Some(s) => s.to_string(),
                None if int.is_empty() && frac.is_empty() => format!("{sign}0"),
                None => format!("{sign}{int}{frac}{exp}"),
            }
        }
    };
    format!("{lead}{body}")
}

/// `n` random lines of one to five TAB-separated fields.
fn random_lines(seed: u64, n: usize, general: bool) -> String {
    let mut r = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut out = String::new();
    for _ in 0..n {
        let fields: Vec<String> = (0..1 + r.below(5))
            .map(|_| field(&mut r, general))
            .collect();
        out.push_str(&fields.join("\t"));
        out.push('\n');
    }
    out
}

/// `LC_ALL=C sort -t TAB -k DEF...` of `input` in `d`.
fn gnu_sort(d: &Dir, keys: &[&str], input: &str) -> Vec<u8> {
    let ks: Vec<String> = keys.iter().map(|k| format!("-k '{k}'")).collect();
    d.sh(&format!(
        "LC_ALL=C sort -t \"$(printf '\\t')\" {} {input}",
        ks.join(" ")
    ))
}

/// Fails naming the first line where `got` and `want` differ.
fn assert_same_order(got: &[u8], want: &[u8], what: &str) {
    if got == want {
        return;
    }
    let (g, w): (Vec<&[u8]>, Vec<&[u8]>) = (
        got.split(|&b| b == b'\n').collect(),
        want.split(|&b| b == b'\n').collect(),
    );
    let i = g.iter().zip(&w).take_while(|(a, b)| a == b).count();
    let show = |l: &[&[u8]]| -> Vec<String> {
        l.iter()
            .skip(i.saturating_sub(1))
            .take(3)
            .map(|x| format!("{:?}", String::from_utf8_lossy(x)))
            .collect()
    };
    panic!(
        "{what}: line {} differs: gmr {:?}, sort {:?}",
        i + 1,
        show(&g),
        show(&w)
    );
}

/// `gmr run -q -m cat -r cat` with `--sort-key` for each of `keys`, then
/// `args`.
fn gmr_sorted(d: &Dir, keys: &[&str], args: &[&str]) -> Vec<u8> {
    let mut all = vec!["run", "-q", "-m", "cat", "-r", "cat"];
    for k in keys {
        all.extend(["--sort-key", k]);
    }
    all.extend_from_slice(args);
    d.run(&all).ok().to_vec()
}

/// Random lines, one partition: exactly GNU sort's output, whatever the
/// splits and spills (several map tasks, small sort buffers, so that the
/// order is that of the sort buffer and of the merges both).
#[test]
fn one_partition_is_what_gnu_sort_prints() {
    let keysets: &[&[&str]] = &[
        &["1,1"],
        &["2,2n"],
        &["2,2nr"],
        &["2n"],
        &["1,1r", "2,2n"],
        &["3,3nr", "1,1"],
        &["1.2,1.3"],
        &["2b,2"],
        &["2.2b,2.4n"],
        &["1,1f"],
        &["1,1d"],
        &["1,1i", "2,2nr"],
        &["4,4n"],
        &["2,2", "3,3nr"],
        &["1b,1n"],
        &["2,3"],
    ];
    let d = Dir::new();
    for seed in 1..=2 {
        d.write("in.txt", random_lines(seed, 20_000, false));
        for keys in keysets {
            let got = gmr_sorted(
                &d,
                keys,
                &[
                    "-R",
                    "1",
                    "--split-size",
                    "32K",
                    "--sort-buffer",
                    "64K",
                    "in.txt",
                ],
            );
            let want = gnu_sort(&d, keys, "in.txt");
            assert_same_order(&got, &want, &format!("seed {seed}, --sort-key {keys:?}"));
        }
    }
}

/// `g`: exponents, infinities, out-of-range magnitudes. (Not NaN: sort(1)
/// orders NaNs among themselves by their bytes in memory.)
#[test]
fn general_numbers_order_as_gnu_sort_orders_them() {
    let d = Dir::new();
    for seed in 1..=2 {
        d.write("in.txt", random_lines(seed, 20_000, true));
        for keys in [&["2,2g"][..], &["2,2gr", "1,1"], &["3g"]] {
            let got = gmr_sorted(&d, keys, &["-R", "1", "--split-size", "64K", "in.txt"]);
            let want = gnu_sort(&d, keys, "in.txt");
            assert_same_order(&got, &want, &format!("seed {seed}, --sort-key {keys:?}"));
        }
    }
}

/// The parts of a total order, one after another, are the sorted input,
/// by bytes and by sort keys; no part is empty, and none much larger than
/// the others.
#[test]
fn total_order_parts_are_in_order() {
    let d = Dir::new();
    let books = repo().join("examples/input").display().to_string();
    let out = d.run(&[
        "run",
        "-m",
        "cat",
        "-r",
        "cat",
        "-R",
        "4",
        "--total-order",
        "-o",
        "out",
        &books,
    ]);
    out.ok();
    assert!(out.stderr().contains("(total order)"), "{}", out.stderr());
    let want = d.sh(&format!("cat {books}/* | LC_ALL=C sort"));
    assert_eq!(parts(d.path("out")), want);
    let sizes: Vec<u64> = (0..4)
        .map(|p| {
            std::fs::metadata(d.path(&format!("out/part-0000{p}")))
                .unwrap()
                .len()
        })
        .collect();
    let mean = sizes.iter().sum::<u64>() as f64 / 4.0;
    assert!(
        sizes
            .iter()
            .all(|&s| s as f64 > mean / 2.0 && (s as f64) < mean * 1.5),
        "unbalanced parts: {sizes:?}"
    );

    d.write("nums.txt", random_lines(7, 30_000, false));
    let got = gmr_sorted(
        &d,
        &["2,2nr", "1,1"],
        &[
            "-R",
            "5",
            "--total-order",
            "--split-size",
            "64K",
            "-o",
            "sorted",
            "nums.txt",
        ],
    );
    assert!(got.is_empty());
    let want = gnu_sort(&d, &["2,2nr", "1,1"], "nums.txt");
    assert_same_order(&parts(d.path("sorted")), &want, "total order by --sort-key");
}

/// The cut points come from the mapper's output, not from the input: a
/// mapper that rewrites every key still gets ordered, balanced parts.
#[test]
fn total_order_samples_what_the_mapper_prints() {
    let d = Dir::new();
    let books = repo().join("examples/input").display().to_string();
    d.run(&[
        "run",
        "-q",
        "-m",
        "rev",
        "-r",
        "cat",
        "-R",
        "3",
        "--total-order",
        "-o",
        "out",
        &books,
    ])
    .ok();
    let want = d.sh(&format!("cat {books}/* | rev | LC_ALL=C sort"));
    assert_eq!(parts(d.path("out")), want);
    let smallest = (0..3)
        .map(|p| {
            std::fs::metadata(d.path(&format!("out/part-0000{p}")))
                .unwrap()
                .len()
        })
        .min()
        .unwrap();
    assert!(
        smallest as usize > want.len() / 6,
        "a part got almost nothing"
    );
}

/// One key in half of the records (40% of the bytes): the job finishes,
/// the output is still in order, and the summary says how skewed the parts
/// are (that key's part is 1.6 times the mean).
#[test]
fn skewed_keys_finish_and_the_skew_is_reported() {
    let d = Dir::new();
    let mut input = String::new();
    for i in 0..40_000 {
        if i % 2 == 0 {
            input.push_str("the\t1\n");
        } else {
            input.push_str(&format!("w{i:05}\t1\n"));
        }
    }
    d.write("in.txt", &input);
    let out = d.run(&[
        "run",
        "-m",
        "cat",
        "-r",
        "cat",
        "-R",
        "4",
        "--total-order",
        "-o",
        "out",
        "in.txt",
    ]);
    out.ok();
    let line = out
        .stderr()
        .lines()
        .find(|l| l.contains("(total order)"))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no skew line: {}", out.stderr()));
    let skew: f64 = line
        .split(" = ")
        .nth(1)
        .and_then(|s| s.split('x').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no ratio in {line:?}"));
    assert!(skew >= 1.5, "{line}");
    assert_eq!(parts(d.path("out")), d.sh("LC_ALL=C sort in.txt"));
}

/// Built-in reducers group by key as a reducer script would: consecutive
/// equal keys in the sort order. No combiner is implied then (it would see
/// groups that depend on the splits), and `-c` is refused.
#[test]
fn built_ins_group_consecutive_keys_and_combiners_need_consecutive_keys() {
    let d = Dir::new();
    let mut input = String::new();
    for i in 0..3000 {
        input.push_str(&format!("k{}\t{}\n", i % 7, i % 11));
    }
    d.write("in.txt", &input);
    let got = d
        .run(&[
            "run",
            "-q",
            "-m",
            "cat",
            "-r",
            "@count",
            "-R",
            "1",
            "--sort-key",
            "2,2n",
            "--split-size",
            "8K",
            "in.txt",
        ])
        .ok()
        .to_vec();
    let want = d.sh(
        "LC_ALL=C sort -t \"$(printf '\\t')\" -k2,2n in.txt | \
         awk -F'\\t' 'NR > 1 && $1 != k { print k \"\\t\" n; n = 0 } { k = $1; n++ } END { print k \"\\t\" n }'",
    );
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want)
    );

    let refused = d.run(&[
        "run",
        "-m",
        "cat",
        "-c",
        "@count",
        "-r",
        "@sum",
        "--sort-key",
        "2,2n",
        "in.txt",
    ]);
    let err = refused.fails(2);
    assert!(
        err.contains("--combiner") && err.contains("--sort-key 1,1"),
        "{err}"
    );

    // Sort keys that start with the key keep a key's records together: the
    // combiner runs, and the counts are whole.
    let out = d.run(&[
        "run",
        "-m",
        "cat",
        "-r",
        "@count",
        "-R",
        "2",
        "--sort-key",
        "1,1",
        "--sort-key",
        "2,2nr",
        "in.txt",
    ]);
    assert!(out.stderr().contains("combiner"), "{}", out.stderr());
    assert_same_lines(
        out.ok(),
        b"k0\t429\nk1\t429\nk2\t429\nk3\t429\nk4\t428\nk5\t428\nk6\t428\n",
        "counts",
    );
}

/// The stages carry the order: `gmr map --sort-key` records it, and the
/// reduce stage merges by it.
#[test]
fn stages_keep_the_sort_keys() {
    let d = Dir::new();
    d.write("in.txt", random_lines(3, 5000, false));
    let got = d.sh(&format!(
        "{gmr} split --split-size 16K in.txt | {gmr} map -q -m cat -R 1 --sort-key 2,2nr --workdir w | \
         {gmr} shuffle -q --workdir w | {gmr} reduce -q -r cat --workdir w",
        gmr = gmr_bin().display()
    ));
    assert_same_order(&got, &gnu_sort(&d, &["2,2nr"], "in.txt"), "the stages");
}

/// Bad key definitions and clashing flags are usage errors that say why.
#[test]
fn bad_sort_keys_are_usage_errors() {
    let d = Dir::new();
    d.write("in.txt", "a\t1\n");
    for (def, why) in [
        ("0", "start at 1"),
        ("2,2M", "option `M` is not supported"),
        ("1ng", "n and g"),
        ("x", "does not start with a number"),
    ] {
        let err = d
            .run(&["run", "-m", "cat", "-r", "cat", "--sort-key", def, "in.txt"])
            .fails(2);
        assert!(err.contains(why), "{def}: {err}");
    }
    let err = d
        .run(&[
            "run",
            "-m",
            "cat",
            "-r",
            "cat",
            "--key-fields",
            "2",
            "--partition-fields",
            "1",
            "--total-order",
            "in.txt",
        ])
        .fails(2);
    assert!(err.contains("give one of them"), "{err}");
}
