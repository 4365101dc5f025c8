//! The layout rules of `ARCHITECTURE.md`, checked on the source: modules depend one way,
//! along the documented layers, and the crate root stays small.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The layers of `ARCHITECTURE.md`, lowest first: a module may use modules of its own
/// layer's lower neighbours only (never one above it, nor one beside it in the same layer).
const LAYERS: &[&[&str]] = &[
    &["error", "sync", "payload"],
    &["subject", "self_describing", "runtime", "mailbox"],
    &["event"],
    &["wire"],
    &["report"],
    &["transport", "store", "health", "messages", "metrics"],
    &["reclaim"],
    &["emitter"],
    &["fanout", "timer"],
    &["tracker"],
    &["web"],
];

/// The most names the crate root may re-export.
const ROOT_NAMES: usize = 40;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`None` for `lib.rs`).
fn module_of(path: &Path) -> Option<String> {
    let relative = path.strip_prefix(src()).expect("under src");
    let first = relative
        .components()
        .next()?
        .as_os_str()
        .to_str()?
        .to_owned();
    let name = first.trim_end_matches(".rs").to_owned();
    (name != "lib").then_some(name)
}

/// The code of a file without its comments and its `#[cfg(test)] mod tests`.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules a piece of code names through `crate::…` (paths and `use` groups).
fn uses(code: &str, root_items: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let names: Vec<String> = if let Some(group) = rest.strip_prefix('{') {
            let end = matching_brace(group);
            top_level_items(&group[..end])
        } else {
            vec![rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect()]
        };
        for name in names {
            let name = root_items.get(&name).cloned().unwrap_or(name);
            if !name.is_empty() && name.chars().next().is_some_and(char::is_lowercase) {
                found.insert(name);
            }
        }
    }
    found
}

fn matching_brace(text: &str) -> usize {
    let mut depth = 0;
    for (at, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return at,
            '}' => depth -= 1,
            _ => {}
        }
    }
    text.len()
}

/// The first path segment of each item of a `use` group.
fn top_level_items(group: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut depth = 0;
    let mut current = String::new();
    for c in group.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    items.push(current);
    items
        .iter()
        .map(|item| {
            item.trim()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

/// `pub use module::{Name, …}` of `lib.rs`: which module each root name comes from.
fn root_re_exports() -> BTreeMap<String, String> {
    let lib = code(&fs::read_to_string(src().join("lib.rs")).expect("read lib.rs"));
    let mut names = BTreeMap::new();
    // Statements of the root itself start a line; those of its inline modules (`prelude`,
    // `schemas`) are indented.
    for statement in lib.split(";\n") {
        let Some(path) = statement
            .lines()
            .skip_while(|line| !line.starts_with("pub use "))
            .collect::<Vec<_>>()
            .join("\n")
            .strip_prefix("pub use ")
            .map(str::to_owned)
        else {
            continue;
        };
        let path = path.trim();
        let module: String = path
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let items = match path.find('{') {
            Some(open) => top_level_items(&path[open + 1..path.rfind('}').unwrap_or(path.len())]),
            None => vec![path.rsplit("::").next().unwrap_or_default().to_owned()],
        };
        for item in items.into_iter().filter(|item| !item.is_empty()) {
            names.insert(item, module.clone());
        }
    }
    names
}

fn layer(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|layer| layer.contains(&module))
        .unwrap_or_else(|| panic!("module `{module}` is in no layer of ARCHITECTURE.md"))
}

#[test]
fn modules_depend_one_way_along_the_documented_layers() {
    let root = root_re_exports();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let Some(module) = module_of(file) else {
            continue;
        };
        if file.file_name().is_some_and(|name| name == "tests.rs") {
            continue;
        }
        let text = fs::read_to_string(file).expect("read a source file");
        for used in uses(&code(&text), &root) {
            if used != module && layer(&used) >= layer(&module) {
                wrong.push(format!("{} uses {used}", file.display()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "uses against the layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_crate_root_re_exports_at_most_40_names() {
    let names = root_re_exports();
    assert!(
        names.len() <= ROOT_NAMES,
        "{} names at the root: {:?}",
        names.len(),
        names.keys().collect::<Vec<_>>()
    );
    // What applications use is there.
    for name in [
        "Tracker",
        "EmitterBuilder",
        "PageView",
        "Subject",
        "FlushReport",
        "TrackError",
    ] {
        assert!(names.contains_key(name), "{name} is not at the root");
    }
}
