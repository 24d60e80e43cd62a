//! The code keeps the shape `docs/dev/architecture.md` draws: the folders
//! of `src/` are layers, a module imports only its own layer and those
//! below it, no modules import each other in a cycle of any length, at
//! most six files sit at the top of `src/`, and the code map names every
//! module.

mod common;
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// The layers, lowest first: a module may import its own layer and those
/// before it. The files at the top of `src/` (`error`, `interrupt`,
/// `files`) serve every layer and import only each other.
const LAYERS: [&str; 7] = ["data", "store", "task", "exec", "observe", "cli", "control"];

/// The files allowed at the top of `src/`, besides `main.rs` and `lib.rs`.
const BASE: [&str; 3] = ["error", "interrupt", "files"];

/// A module's name: `data::sort`, `exec` (its `mod.rs`), `error`.
type Graph = BTreeMap<String, BTreeSet<String>>;

/// The paths that `code` names after `crate::` (or `super::`, `self::`),
/// with `{a, b::{c, d}}` groups expanded: `["data::sort::Segment", ...]`.
fn paths(code: &str, module: &str) -> Vec<String> {
    fn parse(s: &[u8], i: &mut usize, prefix: &str, out: &mut Vec<String>) {
        let mut path = prefix.to_string();
        loop {
            let start = *i;
            while *i < s.len() && (s[*i].is_ascii_alphanumeric() || s[*i] == b'_') {
                *i += 1;
            }
            let word = std::str::from_utf8(&s[start..*i]).unwrap();
            if !word.is_empty() {
                if !path.is_empty() {
                    path.push_str("::");
                }
                path.push_str(word);
            }
            let group = if s[*i..].starts_with(b"::{") {
                3
            } else {
                usize::from(word.is_empty() && s.get(*i) == Some(&b'{'))
            };
            if group > 0 {
                *i += group;
                loop {
                    while *i < s.len() && s[*i].is_ascii_whitespace() {
                        *i += 1;
                    }
                    if *i >= s.len() || s[*i] == b'}' {
                        *i += 1;
                        return;
                    }
                    parse(s, i, &path, out);
                    while *i < s.len() && (s[*i] == b',' || s[*i].is_ascii_whitespace()) {
                        *i += 1;
                    }
                }
            } else if s[*i..].starts_with(b"::") {
                *i += 2;
            } else {
                // `Foo as Bar`, `;`, `(`: the path ends here.
                while *i < s.len() && !matches!(s[*i], b',' | b'}' | b';' | b'\n') {
                    *i += 1;
                }
                // `{self, ...}` names the module itself.
                out.push(path.trim_end_matches("::self").to_string());
                return;
            }
        }
    }
    // Comments and doc links may point anywhere: only code imports.
    let code: String = code
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .map(|l| format!("{l}\n"))
        .collect();
    let code = code.as_str();
    let s = code.as_bytes();
    // `super` in `task::map` is `task`; in `task` (its mod.rs) it is the
    // crate, and `self` is `task`.
    let parent = module.rsplit_once("::").map_or("", |(p, _)| p);
    let mut out = Vec::new();
    for (root, prefix) in [("crate::", ""), ("super::", parent), ("self::", module)] {
        for (at, _) in code.match_indices(root) {
            let before = code[..at].chars().last().unwrap_or(' ');
            if before.is_ascii_alphanumeric() || before == '_' || before == ':' {
                continue;
            }
            let mut i = at + root.len();
            parse(s, &mut i, prefix, &mut out);
        }
    }
    out
}

/// The module a path names: `data::sort::Segment` is in `data::sort`,
/// `exec::Executor` in `exec`, `error::Error` in `error`.
fn module_of(path: &str, modules: &BTreeSet<String>) -> Option<String> {
    let mut parts: Vec<&str> = path.split("::").collect();
    while !parts.is_empty() {
        let m = parts.join("::");
        if modules.contains(&m) {
            return Some(m);
        }
        parts.pop();
    }
    None
}

/// Every module of `src/` (but `main` and `lib`), with its source.
fn sources() -> BTreeMap<String, String> {
    fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                walk(&path, &format!("{prefix}{stem}::"), out);
                continue;
            }
            let name = match stem.as_str() {
                "mod" => prefix.trim_end_matches("::").to_string(),
                "main" | "lib" if prefix.is_empty() => continue,
                _ => format!("{prefix}{stem}"),
            };
            out.insert(name, fs::read_to_string(&path).unwrap());
        }
    }
    let mut out = BTreeMap::new();
    walk(&repo().join("src"), "", &mut out);
    out
}

/// Each module and the modules its non-test code imports.
fn graph(sources: &BTreeMap<String, String>) -> Graph {
    let modules: BTreeSet<String> = sources.keys().cloned().collect();
    sources
        .iter()
        .map(|(name, text)| {
            let code = text.split("#[cfg(test)]").next().unwrap();
            let used = paths(code, name)
                .iter()
                .filter_map(|p| module_of(p, &modules))
                // A folder's mod.rs declares its children: not an import.
                .filter(|m| m != name && !m.starts_with(&format!("{name}::")))
                .collect();
            (name.clone(), used)
        })
        .collect()
}

/// The layer of a module: its index in [`LAYERS`], or None for the base.
fn layer(module: &str) -> Option<usize> {
    let top = module.split("::").next().unwrap();
    LAYERS.iter().position(|l| *l == top)
}

/// The imports that go up a layer, or from the base into a layer.
fn upward(graph: &Graph) -> Vec<String> {
    let mut bad = Vec::new();
    for (m, deps) in graph {
        for d in deps {
            let ok = match (layer(m), layer(d)) {
                (_, None) => true,
                (None, Some(_)) => false,
                (Some(a), Some(b)) => b <= a,
            };
            if !ok {
                bad.push(format!("{m} -> {d}"));
            }
        }
    }
    bad
}

/// The cycles of the graph, each as `a -> b -> ... -> a` (one per
/// strongly connected component of more than one module).
fn cycles(graph: &Graph) -> Vec<String> {
    // Tarjan's strongly connected components.
    struct Search<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        found: Vec<Vec<&'g str>>,
    }
    impl<'g> Search<'g> {
        fn visit(&mut self, v: &'g str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                loop {
                    let w = self.stack.pop().unwrap();
                    self.on_stack.remove(w);
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut search = Search {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !search.index.contains_key(v.as_str()) {
            search.visit(v);
        }
    }
    search.found.iter().map(|c| c.join(", ")).collect()
}

#[test]
fn the_import_scanner_reads_groups_and_relative_paths() {
    let code = "use crate::{data::sort::{self, Segment}, error::Error};\n\
                use super::attempt::Attempt;\n\
                /// [`crate::control::plan`] is a doc link, not an import.\n\
                fn f() { crate::files::sync_dir(p); self::map::run(); }\n\
                // not_crate::x, xcrate::y\n";
    let mut got = paths(code, "task::reduce");
    got.sort();
    assert_eq!(
        got,
        [
            "data::sort",
            "data::sort::Segment",
            "error::Error",
            "files::sync_dir",
            "task::attempt::Attempt",
            "task::reduce::map::run",
        ]
    );
}

#[test]
fn lower_layers_never_import_higher_ones() {
    let bad = upward(&graph(&sources()));
    assert!(
        bad.is_empty(),
        "imports that go up a layer ({}, lowest first; error, interrupt and files under all): {bad:?}",
        LAYERS.join(" < ")
    );
}

#[test]
fn no_modules_import_each_other_in_a_cycle() {
    let found = cycles(&graph(&sources()));
    assert!(found.is_empty(), "modules in an import cycle: {found:?}");
}

#[test]
fn an_injected_upward_import_or_cycle_is_caught() {
    // What `use crate::control::coordinator::Policy;` in the sort module
    // would do: the checks above must see it.
    let mut sources = sources();
    sources
        .get_mut("data::sort")
        .unwrap()
        .insert_str(0, "use crate::control::coordinator::Policy;\n");
    let g = graph(&sources);
    assert_eq!(upward(&g), ["data::sort -> control::coordinator"]);
    // A cycle of three within one layer.
    let mut g = Graph::new();
    for (a, b) in [
        ("data::a", "data::b"),
        ("data::b", "data::c"),
        ("data::c", "data::a"),
    ] {
        g.entry(a.into()).or_default().insert(b.into());
    }
    g.entry("data::d".into())
        .or_default()
        .insert("data::a".into());
    assert_eq!(cycles(&g), ["data::a, data::b, data::c"]);
}

#[test]
fn the_top_of_src_holds_at_most_six_files() {
    let mut top: Vec<String> = fs::read_dir(repo().join("src"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    top.sort();
    let mut allowed: Vec<String> = ["main", "lib"]
        .iter()
        .chain(BASE.iter())
        .map(|s| s.to_string())
        .collect();
    allowed.sort();
    assert_eq!(top, allowed, "the files at the top of src/");
    assert!(top.len() <= 6);
    let dirs: BTreeSet<String> = fs::read_dir(repo().join("src"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(dirs, LAYERS.iter().map(|s| s.to_string()).collect());
}

#[test]
fn the_code_map_names_every_module() {
    let doc = fs::read_to_string(repo().join("docs/dev/architecture.md")).unwrap();
    let missing: Vec<String> = sources()
        .keys()
        .map(|m| match m.rsplit_once("::") {
            Some((dir, file)) => format!("{dir}/{file}.rs"),
            None if layer(m).is_some() => format!("{m}/mod.rs"),
            None => format!("{m}.rs"),
        })
        .filter(|file| !doc.contains(&format!("`{file}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "modules missing from the code map of docs/dev/architecture.md (as `dir/file.rs`): {missing:?}"
    );
}
