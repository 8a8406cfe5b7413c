//! The book must not drift from the code: every lesson has its page, every page includes
//! real code (by anchor), the real output and the real trace, and the commands it shows name
//! binaries and ports that exist.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Lesson binaries declared in Cargo.toml: number -> name (e.g. "04" -> "04_echo").
fn lessons() -> BTreeMap<String, String> {
    let cargo = read(&root().join("Cargo.toml"));
    let mut out = BTreeMap::new();
    for line in cargo.lines() {
        let Some(name) = line
            .strip_prefix("name = \"")
            .and_then(|r| r.strip_suffix('"'))
        else {
            continue;
        };
        let number = &name[..name.len().min(2)];
        if name.len() > 3 && number.bytes().all(|b| b.is_ascii_digit()) && &name[2..3] == "_" {
            out.insert(number.to_string(), name.to_string());
        }
    }
    assert!(
        out.len() >= 9,
        "Cargo.toml declares too few lessons: {out:?}"
    );
    out
}

fn pages() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("docs/src"))
        .expect("docs/src exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    v.sort();
    v
}

fn page_of(number: &str) -> PathBuf {
    let prefix = format!("{number}-");
    pages()
        .into_iter()
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .unwrap_or_else(|| panic!("no page docs/src/{number}-*.md for lesson {number}"))
}

#[test]
fn every_lesson_has_a_listed_page_with_its_output_and_trace() {
    let summary = read(&root().join("docs/src/SUMMARY.md"));
    for (number, name) in lessons() {
        let page = page_of(&number);
        let file = page.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            summary.contains(&format!("({file})")),
            "SUMMARY.md does not list {file}"
        );
        let text = read(&page);
        for needle in [
            format!("{{{{#include output/{number}.txt}}}}"),
            format!("{{{{#include traces/{number}.txt}}}}"),
            format!("../../bin/{name}.rs"),
        ] {
            assert!(text.contains(&needle), "{file} does not include {needle}");
        }
    }
}

#[test]
fn every_include_names_a_real_file_and_anchor() {
    for page in pages() {
        let text = read(&page);
        let dir = page.parent().unwrap();
        for (at, _) in text.match_indices("{{#include ") {
            let rest = &text[at + "{{#include ".len()..];
            let spec = &rest[..rest.find("}}").expect("an include is closed by }}")];
            let (path, anchor) = match spec.split_once(':') {
                Some((p, a)) => (p, Some(a)),
                None => (spec, None),
            };
            let target = dir.join(path);
            let body = read(&target);
            if let Some(anchor) = anchor {
                if anchor.bytes().all(|b| b.is_ascii_digit()) {
                    continue; // a line number, checked by mdbook
                }
                for mark in [format!("ANCHOR: {anchor}"), format!("ANCHOR_END: {anchor}")] {
                    assert!(
                        body.lines().any(|l| l.trim() == format!("// {mark}")),
                        "{} includes {path}:{anchor}, but {} has no `// {mark}` line",
                        page.display(),
                        target.display()
                    );
                }
            }
        }
    }
}

#[test]
fn commands_in_the_book_name_real_binaries_and_ports() {
    let lessons = lessons();
    let names: Vec<&String> = lessons.values().collect();
    let mut checked = 0;
    for page in pages() {
        let text = read(&page);
        let file = page.display().to_string();
        for prefix in ["./target/release/", "--bin "] {
            for (at, _) in text.match_indices(prefix) {
                let word: String = text[at + prefix.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                    .collect();
                if word.is_empty() || word == "socklab" {
                    continue;
                }
                if word == "socklab-bench" {
                    // The benchmark harness, a crate of its own in the workspace.
                    let manifest = read(Path::new("benches/harness/Cargo.toml"));
                    assert!(
                        manifest.contains("name = \"socklab-bench\""),
                        "{file} runs `{prefix}{word}`, but benches/harness builds no such binary"
                    );
                    checked += 1;
                    continue;
                }
                assert!(
                    names.contains(&&word),
                    "{file} runs `{prefix}{word}`, which is not a binary of this crate"
                );
                checked += 1;
            }
        }
        for (at, _) in text.match_indices("make lesson N=") {
            let n: String = text[at + 14..].chars().take(2).collect();
            assert!(
                lessons.contains_key(&n),
                "{file}: `make lesson N={n}` names no lesson"
            );
            checked += 1;
        }
        // A lesson page's default port is 70NN.
        let stem = page.file_name().unwrap().to_string_lossy().to_string();
        if let Some(number) = stem.get(..2).filter(|n| lessons.contains_key(*n)) {
            for (at, _) in text.match_indices("127.0.0.1:70") {
                let port: String = text[at + 10..].chars().take(4).collect();
                if port.len() == 4 && port.bytes().all(|b| b.is_ascii_digit()) {
                    assert_eq!(
                        &port[2..],
                        number,
                        "{file} uses port {port}; lesson {number}'s default is 70{number}"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(
        checked > 20,
        "too few commands found in the book ({checked})"
    );
}

/// The syscall lines a page quotes: inline code spans and lines of its own `text` blocks
/// that start like a traced call on a descriptor, `name(N<`. A block right after the line
/// `<!-- another run -->` shows a run other than the recorded one and is left out.
fn quoted_calls(page: &str) -> Vec<String> {
    let looks_like_call = |s: &str| {
        let Some((name, rest)) = s.split_once('(') else {
            return false;
        };
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && digits > 0
            && rest[digits..].starts_with('<')
    };
    let mut out = Vec::new();
    let mut fenced = false;
    let mut other_run = false;
    for line in page.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            if !fenced {
                other_run = false;
            }
            continue;
        }
        if !fenced && line.trim() == "<!-- another run -->" {
            other_run = true;
        }
        if fenced {
            if !other_run && looks_like_call(line.trim()) {
                out.push(line.trim().to_string());
            }
            continue;
        }
        for (i, span) in line.split('`').enumerate() {
            if i % 2 == 1 && looks_like_call(span) {
                out.push(span.to_string());
            }
        }
    }
    out
}

/// Whether `line` is what `quote` shows: `<...>` and `...` in the quote stand for any text,
/// and the rest must appear in order, the first piece at the start of the line.
fn shows(quote: &str, line: &str) -> bool {
    let quote = quote.replace("<...>", "\0").replace("...", "\0");
    let mut pieces = quote.split('\0').map(str::trim).filter(|p| !p.is_empty());
    let Some(first) = pieces.next() else {
        return false;
    };
    let Some(mut rest) = line.strip_prefix(first) else {
        return false;
    };
    for piece in pieces {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    true
}

#[test]
fn calls_quoted_in_lesson_pages_are_in_the_recorded_trace() {
    let mut wrong = Vec::new();
    for number in lessons().keys() {
        let page = page_of(number);
        let trace = read(&root().join(format!("docs/src/traces/{number}.txt")));
        for quote in quoted_calls(&read(&page)) {
            if !trace.lines().any(|line| shows(&quote, line)) {
                wrong.push(format!("{}: {quote}", page.display()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "these quoted calls are not in the page's recorded trace (docs/src/traces/NN.txt); \
         fix the page or run `make trace`:\n{}",
        wrong.join("\n")
    );
}

/// The byte counts on the page that compares the two wires are the ones lesson 21 printed
/// when `make trace` recorded it (which `tests/trace.rs` checks against the binary), and the
/// placeholder's size is the encoder's.
#[test]
fn the_two_wires_page_counts_what_lesson_21_printed() {
    let page = read(&root().join("docs/src/two-wires.md"));
    let output = read(&root().join("docs/src/output/21.txt"));
    let mut rows = 0;
    let mut prefix = "";
    for line in output.lines() {
        if line.starts_with("one chat message") {
            prefix = "one chat message: ";
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let [name @ .., socklab, sio] = words.as_slice() else {
            continue;
        };
        if !line.starts_with("  ")
            || name.is_empty()
            || !socklab.bytes().all(|b| b.is_ascii_digit())
            || !sio.bytes().all(|b| b.is_ascii_digit())
        {
            continue;
        }
        let row = format!("| {prefix}{} | {socklab} | {sio} |", name.join(" "));
        assert!(page.contains(&row), "two-wires.md lacks the row {row}");
        rows += 1;
    }
    assert_eq!(rows, 7, "lesson 21's output has the seven counted rows");
    let placeholder = socklab::wire::socketio::placeholder(0).to_string();
    let said = format!("`{placeholder}`, {} bytes)", placeholder.len());
    assert!(page.contains(&said), "two-wires.md should say {said}");
    let http = "(129 bytes of HTTP)";
    assert!(output.contains(http), "lesson 21's 101 is 129 bytes");
    assert!(page.contains("the `101` (129) and the open packet (109)"));
}
