//! House rules that rustfmt and clippy cannot check: every source file starts with a
//! `//!` doc, no line is over 100 characters, no file is over 1,000 lines, and no module
//! names a path its layer must not use, anywhere in its code (comments and strings aside).

use std::path::{Path, PathBuf};

const LINE_CHARS_MAX: usize = 100;
const FILE_LINES_MAX: usize = 1000;

const TIMER_AT_FIRST_WAIT: &str = "deadline:: makes no timer for an operation that is ready";

/// Paths that would break the layering: (module under src/, forbidden text, reason). A
/// module is its file `src/NAME.rs` and everything under `src/NAME/`.
const FORBIDDEN: &[(&str, &str, &str)] = &[
    ("http", "monoio", "http/ is sans-I/O"),
    ("http", "crate::upstream", "the codec knows nothing about backends"),
    ("http", "crate::proxy", "the codec knows nothing about exchanges"),
    ("http", "crate::config", "the codec takes its limits as its own plain values"),
    ("route", "monoio", "routing is pure"),
    ("route", "crate::upstream", "routing returns ids; proxy/ connects"),
    ("balance", "monoio", "balancers are pure"),
    ("balance", "crate::http", "balancers pick by key, not by request"),
    ("config", "monoio", "config is parsed and validated without I/O"),
    ("config", "std::net::TcpStream", "config is parsed and validated without I/O"),
    ("config", "std::fs", "main.rs reads the file; config gets its text"),
    ("config", "crate::response", "config holds what was configured; response/ renders it"),
    ("compress", "monoio", "negotiation and coders are sans-I/O; proxy/ runs them"),
    ("compress", "crate::proxy", "proxy/ uses compress, not the reverse"),
    ("compress", "crate::upstream", "compression knows heads and bytes, not backends"),
    ("worker", "crate::connection", "connections use the worker's state, not the reverse"),
    ("control", "crate::admin", "admin is the HTTP face of control: admin uses control"),
    ("deadline", "crate::", "a leaf: it times any future and knows nothing else of ringway"),
    ("proxy", "monoio::time::timeout", TIMER_AT_FIRST_WAIT),
    ("connection", "monoio::time::timeout", TIMER_AT_FIRST_WAIT),
    ("upstream", "monoio::time::timeout", TIMER_AT_FIRST_WAIT),
    ("l4", "monoio::time::timeout", TIMER_AT_FIRST_WAIT),
    ("l4", "crate::http", "L4 relays bytes; it never parses HTTP"),
    ("l4", "crate::connection", "connection/ hands connections to l4, not the reverse"),
    ("cache", "monoio", "cache rules and the store are sans-I/O; proxy/cache runs them"),
    ("cache", "crate::proxy", "proxy/ uses the cache, not the reverse"),
    ("cache", "crate::upstream", "the cache keys by URI, not by backend"),
    ("cache", "crate::worker", "the worker owns the store; the store knows no worker"),
    ("logging", "monoio", "log lines are written by the log facade, from any thread"),
    ("logging", "crate::worker", "workers log through the log facade, not the reverse"),
    ("cli", "monoio", "the CLI is a blocking client of a running proxy's admin API"),
    ("cli", "crate::worker", "the CLI reaches a running proxy only through the admin API"),
    ("cli", "crate::control", "the CLI reaches a running proxy only through the admin API"),
    ("forward", "crate::connection", "connection/ calls the forward phases, not the reverse"),
    ("forward", "monoio::time::timeout", TIMER_AT_FIRST_WAIT),
    ("forward/acl", "monoio", "access rules are pure"),
    ("forward/target", "monoio", "the target is parsed without I/O"),
    ("forward/domains", "monoio", "domain lists are pure"),
    ("forward/hosts", "monoio", "a hosts file is parsed without I/O"),
    ("l4", "crate::proxy::http", "L4 borrows proxy's socket halves, never its HTTP exchange"),
    ("l4", "crate::proxy::body", "L4 relays bytes as they come; HTTP bodies have framing"),
    ("http2/request", "monoio", "an HTTP/2 head becomes an HTTP/1.1 head without I/O"),
    ("http2/response", "monoio", "the response is read back as HTTP/2 parts without I/O"),
    ("http2", "crate::connection", "connection/ runs HTTP/2 streams, not the reverse"),
    ("http2", "crate::upstream", "a stream is the client side; proxy/ reaches backends"),
    ("limit/resp", "std::net", "RESP is encoded and parsed without I/O"),
    ("limit/rate", "std::net", "buckets are pure; limit/global swaps usage with Redis"),
    ("limit/rate", "crate::limit::global", "the exchange knows no Redis; global joins it"),
    ("limit/global", "monoio", "the Redis swap runs on its own thread, off every runtime"),
    ("limit/redis", "monoio", "a blocking client for the Redis thread, never a worker's"),
    ("discover/dns", "monoio", "the DNS wire format is sans-I/O"),
    ("discover/found", "monoio", "records become a backend set without I/O"),
    ("discover/resolv_conf", "std::fs", "resolv.conf is parsed from its text"),
    ("discover", "crate::worker", "discovery runs on the control thread; workers get configs"),
    ("discover", "crate::connection", "discovery never touches a client connection"),
    ("reload", "crate::admin", "admin answers reloads; reload knows no HTTP face"),
    ("reload", "crate::connection", "connections follow the newest version; reload hands it"),
    ("reload", "crate::proxy", "an exchange finishes on its version; reload never reaches in"),
    ("reload", "std::fs", "control reads the file; reload works on config values"),
    (
        "upgrade",
        "monoio",
        "the hand-over is blocking, on the main thread, before and after the workers",
    ),
    ("upgrade", "crate::worker", "the hand-over moves sockets; it never touches a worker"),
    ("auth", "crate::connection", "connection/ calls authentication, not the reverse"),
    ("auth", "crate::proxy", "auth decides before any upstream work; proxy/ renders its lines"),
    ("auth", "crate::worker", "the worker owns the caches and hands them in"),
    ("auth", "monoio::time::timeout", TIMER_AT_FIRST_WAIT),
    ("auth/rules", "monoio", "authorization rules are pure"),
    ("auth/jwt", "monoio", "token verification is pure"),
    ("auth/api_key", "monoio", "key lookup is pure"),
    ("blocking", "crate::", "a leaf: it runs jobs and reads files for anyone"),
    ("connection/steps", "http1", "the gateway's steps serve both protocols' loops alike"),
    ("connection/steps", "http2", "the gateway's steps serve both protocols' loops alike"),
    ("connection/steps", "H2Stream", "the steps decide; each loop writes the answer"),
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
        problems.extend(layering_problems(&name, &text));
    }
    assert!(problems.is_empty(), "house rules broken:\n{}", problems.join("\n"));
}

/// True when the file `name` (relative to the package root) is part of module `module`.
fn in_module(name: &str, module: &str) -> bool {
    name == format!("src/{module}.rs") || name.starts_with(&format!("src/{module}/"))
}

/// Every FORBIDDEN path that `text`, the file `name`, uses in its code.
fn layering_problems(name: &str, text: &str) -> Vec<String> {
    let rules: Vec<_> = FORBIDDEN.iter().filter(|(module, _, _)| in_module(name, module)).collect();
    if rules.is_empty() {
        return Vec::new();
    }
    let mut problems = Vec::new();
    for (index, line) in code_only(text).lines().enumerate() {
        for (_, forbidden, reason) in &rules {
            if line.contains(forbidden) {
                problems.push(format!("{name}:{}: uses {forbidden}; {reason}", index + 1));
            }
        }
    }
    problems
}

/// `text` with comments (doc comments included) and string and character literals
/// blanked out, lines kept, so a path matches only where the code names it.
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let rest = &chars[i..];
        let blanked = if rest.starts_with(&['/', '/']) {
            rest.iter().position(|&c| c == '\n').unwrap_or(rest.len())
        } else if rest.starts_with(&['/', '*']) {
            block_comment_len(rest)
        } else if let Some(hashes) = raw_string_start(rest) {
            raw_string_len(rest, hashes)
        } else if rest[0] == '"' {
            string_len(rest)
        } else if rest[0] == '\'' {
            char_literal_len(rest)
        } else {
            0
        };
        if blanked == 0 {
            out.push(rest[0]);
            i += 1;
        } else {
            out.extend(rest[..blanked].iter().map(|&c| if c == '\n' { '\n' } else { ' ' }));
            i += blanked;
        }
    }
    out
}

/// Length of the (possibly nested) block comment that opens `rest`.
fn block_comment_len(rest: &[char]) -> usize {
    let (mut depth, mut j) = (0, 0);
    while j < rest.len() {
        if rest[j..].starts_with(&['/', '*']) {
            depth += 1;
            j += 2;
        } else if rest[j..].starts_with(&['*', '/']) {
            depth -= 1;
            j += 2;
            if depth == 0 {
                return j;
            }
        } else {
            j += 1;
        }
    }
    rest.len()
}

/// The number of `#` when `rest` opens a raw string (`r"`, `r#"`, `br"` seen from its `r`).
fn raw_string_start(rest: &[char]) -> Option<usize> {
    if rest.first() != Some(&'r') {
        return None;
    }
    let hashes = rest[1..].iter().take_while(|&&c| c == '#').count();
    (rest.get(1 + hashes) == Some(&'"')).then_some(hashes)
}

/// Length of the raw string that opens `rest`: no escapes; it ends at a quote followed by
/// `hashes` hashes.
fn raw_string_len(rest: &[char], hashes: usize) -> usize {
    (hashes + 2..rest.len())
        .find(|&j| {
            rest[j] == '"'
                && rest[j + 1..].iter().take(hashes).filter(|&&c| c == '#').count() == hashes
        })
        .map_or(rest.len(), |j| j + 1 + hashes)
}

/// Length of the string literal that opens `rest`, escapes included.
fn string_len(rest: &[char]) -> usize {
    let mut j = 1;
    while j < rest.len() && rest[j] != '"' {
        j += if rest[j] == '\\' { 2 } else { 1 };
    }
    (j + 1).min(rest.len())
}

/// Length of the character literal that opens `rest` ('x', '\n', '\''), or 0 for a
/// lifetime.
fn char_literal_len(rest: &[char]) -> usize {
    match rest.get(1) {
        Some('\\') => rest.iter().skip(3).position(|&c| c == '\'').map_or(0, |at| at + 4),
        Some(_) if rest.get(2) == Some(&'\'') => 3,
        Some(_) | None => 0,
    }
}

#[test]
fn layering_sees_paths_anywhere_in_code_but_not_in_comments_or_strings() {
    let text = "//! Uses crate::connection in a doc.\n\
                fn f() -> crate::connection::X {\n\
                    // crate::connection in a comment\n\
                    let s = \"crate::connection\"; let r = r#\"crate::connection\"#;\n\
                    /* crate::connection */ let c = ('\"', '\\'', '\\u{22}'); let l: &'a str = s;\n\
                    crate::connection::g()\n\
                }\n";
    let problems = layering_problems("src/worker.rs", text);
    let lines: Vec<&str> = problems.iter().map(|problem| &problem[..16]).collect();
    assert_eq!(lines, ["src/worker.rs:2:", "src/worker.rs:6:"], "{problems:#?}");
    assert!(layering_problems("src/workers.rs", text).is_empty(), "another module");
    assert_eq!(layering_problems("src/worker/idle.rs", text).len(), 2, "a submodule");
}
