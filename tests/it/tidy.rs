//! House rules that rustfmt and clippy cannot check: every source file starts with a
//! `//!` doc, no line is over 100 characters, no file is over 1,000 lines, and the
//! sans-I/O stages import nothing that does I/O.

use std::path::{Path, PathBuf};

const LINE_CHARS_MAX: usize = 100;
const FILE_LINES_MAX: usize = 1000;

/// Imports that would break the layering: (folder under src/, forbidden text, reason).
const FORBIDDEN: &[(&str, &str, &str)] = &[
    ("http", "monoio", "http/ is sans-I/O"),
    ("http", "crate::upstream", "the codec knows nothing about backends"),
    ("http", "crate::proxy", "the codec knows nothing about exchanges"),
    ("route", "monoio", "routing is pure"),
    ("route", "crate::upstream", "routing returns ids; proxy/ connects"),
    ("balance", "monoio", "balancers are pure"),
    ("balance", "crate::http", "balancers pick by key, not by request"),
    ("config", "monoio", "config is parsed and validated without I/O"),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source folder") {
        let path = entry.expect("readable entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            out.push(path);
        }
    }
}

fn all_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "tests", "bench"] {
        rust_files(&root.join(dir), &mut files);
    }
    files.sort();
    files
}

#[test]
fn source_files_follow_the_house_rules() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut problems = Vec::new();
    for path in all_files() {
        let text = std::fs::read_to_string(&path).expect("utf-8 source");
        let name = path.strip_prefix(root).unwrap_or(&path).display().to_string();
        let first = text.lines().find(|line| !line.starts_with("#!"));
        if !first.is_some_and(|line| line.starts_with("//!")) {
            problems.push(format!("{name}:1: does not start with a //! module doc"));
        }
        let lines = text.lines().count();
        if lines > FILE_LINES_MAX {
            problems.push(format!("{name}: {lines} lines, over {FILE_LINES_MAX}"));
        }
        for (index, line) in text.lines().enumerate() {
            let chars = line.chars().count();
            if chars > LINE_CHARS_MAX {
                problems.push(format!("{name}:{}: {chars} characters", index + 1));
            }
        }
        for (folder, forbidden, reason) in FORBIDDEN {
            let prefix = format!("src/{folder}/");
            if !name.starts_with(&prefix) {
                continue;
            }
            for (index, line) in text.lines().enumerate() {
                if line.trim_start().starts_with("use ") && line.contains(forbidden) {
                    problems.push(format!("{name}:{}: uses {forbidden}; {reason}", index + 1));
                }
            }
        }
    }
    assert!(problems.is_empty(), "house rules broken:\n{}", problems.join("\n"));
}
