//! The module map in `docs/dev/architecture.md` stays true: every module
//! of `src/` is in it, and no two modules import each other.

mod common;
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// Each module (`task`, `exec::ssh`) and the modules its non-test code
/// names as `crate::NAME`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, BTreeSet<String>>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                walk(&path, &format!("{prefix}{stem}::"), out);
                continue;
            }
            let name = match stem.as_str() {
                "mod" => prefix.trim_end_matches("::").to_string(),
                _ => format!("{prefix}{stem}"),
            };
            let text = fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap();
            let mut used = BTreeSet::new();
            for (i, _) in code.match_indices("crate::") {
                let rest = &code[i + "crate::".len()..];
                let word: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                // `crate::exec::ssh` is the module exec::ssh, not exec.
                let sub: String = rest[word.len()..]
                    .strip_prefix("::")
                    .unwrap_or("")
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                let full = format!("{word}::{sub}");
                let target =
                    if out.contains_key(&full) || dir.join(&word).is_dir() && !sub.is_empty() {
                        full
                    } else {
                        word
                    };
                if !target.is_empty() && target != name {
                    used.insert(target);
                }
            }
            out.insert(name, used);
        }
    }
    let mut out = BTreeMap::new();
    walk(&repo().join("src"), "", &mut out);
    out
}

#[test]
fn no_two_modules_import_each_other() {
    let map = imports();
    let mut cycles = Vec::new();
    for (m, deps) in &map {
        for d in deps {
            if m < d && map.get(d).is_some_and(|back| back.contains(m)) {
                cycles.push(format!("{m} <-> {d}"));
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "modules that import each other: {cycles:?}"
    );
}

#[test]
fn the_code_map_names_every_module() {
    let doc = fs::read_to_string(repo().join("docs/dev/architecture.md")).unwrap();
    let missing: Vec<String> = imports()
        .keys()
        .map(|m| match m.split_once("::") {
            Some((_, file)) => format!("{file}.rs"),
            // exec/mod.rs is documented as `exec/`.
            None if repo().join("src").join(m).is_dir() => format!("{m}/"),
            None => format!("{m}.rs"),
        })
        .filter(|file| !doc.contains(&format!("`{file}`")) && !doc.contains(file.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "modules missing from the code map: {missing:?}"
    );
}
