//! The lesson catalogue is written once, in `socklab::lesson::LESSONS` (`socklab lessons`
//! prints it). The tables in `README.md` and in the crate doc (`src/lib.rs`) repeat it for
//! readers who start there; this test keeps them saying exactly the same thing, so that the
//! three cannot drift apart again.

use std::path::Path;

use socklab::lesson::LESSONS;

fn read(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The rows `| NN | `binary` | teaches |` of a Markdown table, after `prefix` on each line
/// (`//! ` in the crate doc).
fn lesson_rows(text: &str, prefix: &str) -> Vec<(String, String, String)> {
    text.lines()
        .filter_map(|line| line.strip_prefix(prefix))
        .filter_map(|line| {
            let cells: Vec<&str> = line
                .strip_prefix('|')?
                .strip_suffix('|')?
                .split(" | ")
                .map(str::trim)
                .collect();
            let [number, binary, teaches] = cells[..] else {
                return None;
            };
            let is_number = number.len() == 2 && number.bytes().all(|b| b.is_ascii_digit());
            let binary = binary.strip_prefix('`')?.strip_suffix('`')?;
            is_number.then(|| (number.into(), binary.into(), teaches.into()))
        })
        .collect()
}

fn catalogue() -> Vec<(String, String, String)> {
    LESSONS
        .iter()
        .map(|(n, b, t)| (n.to_string(), b.to_string(), t.to_string()))
        .collect()
}

#[test]
fn the_readme_lists_the_lessons_as_the_catalogue_does() {
    assert_eq!(lesson_rows(&read("README.md"), ""), catalogue());
}

#[test]
fn the_crate_doc_lists_the_lessons_as_the_catalogue_does() {
    assert_eq!(lesson_rows(&read("src/lib.rs"), "//! "), catalogue());
}

#[test]
fn the_catalogue_names_every_lesson_binary_in_order() {
    let cargo = read("Cargo.toml");
    for (i, (number, binary, _)) in LESSONS.iter().enumerate() {
        assert_eq!(*number, format!("{i:02}"), "lessons are numbered in order");
        assert!(
            binary.starts_with(&format!("{number}_")),
            "{binary} does not start with its number {number}"
        );
        assert!(
            cargo.contains(&format!("name = \"{binary}\"")),
            "Cargo.toml declares no binary {binary}"
        );
    }
}
