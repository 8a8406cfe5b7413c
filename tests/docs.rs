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
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if word.is_empty() || word == "socklab" {
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
