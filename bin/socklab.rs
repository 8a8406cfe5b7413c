//! `socklab`: the project's own command line (not a lesson).
//!
//! `socklab trace NN` runs lesson NN under the real strace and prints its socket calls,
//! normalised; `make trace N=NN` uses it to refresh `docs/src/traces/NN.txt` and
//! `docs/src/output/NN.txt`.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use clap::{Parser, Subcommand};
use socklab::strace::{self, Normalizer};

/// socklab: real-time messaging from the socket syscalls up.
#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run lesson NN's demonstration under the real strace; print its socket calls, with
    /// ports, inodes and pointers normalised
    Trace {
        /// The lesson number, e.g. 04
        lesson: String,
        /// Instead of printing, write DIR/traces/NN.txt (the calls) and DIR/output/NN.txt
        /// (what the lesson printed on stdout), e.g. `--write docs/src`
        #[arg(long, value_name = "DIR")]
        write: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Trace { lesson, write } => trace(&lesson, write.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The lesson binary built next to this one whose name starts with `NN_`.
fn lesson_binary(number: &str) -> Result<PathBuf, Box<dyn Error>> {
    let dir = std::env::current_exe()?
        .parent()
        .ok_or("cannot tell where this program lives")?
        .to_path_buf();
    let prefix = format!("{number}_");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && !n.contains('.') && !n.contains('-'))
        })
        .collect();
    found.sort();
    found.pop().ok_or_else(|| {
        format!(
            "no lesson binary {prefix}* in {} (build it first)",
            dir.display()
        )
        .into()
    })
}

fn trace(number: &str, write: Option<&Path>) -> Result<(), Box<dyn Error>> {
    let bin = lesson_binary(number)?;
    let tmp =
        std::env::temp_dir().join(format!("socklab-trace-{}-{number}.txt", std::process::id()));
    let args = strace::record_command(&tmp.to_string_lossy());
    let out = Command::new(&args[0])
        .args(&args[1..])
        .arg(&bin)
        .env_remove("SOCKLAB_TRACE")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            format!("cannot run strace ({e}); install it with `apt-get install strace`")
        })?;
    let raw = std::fs::read_to_string(&tmp)?;
    std::fs::remove_file(&tmp)?;
    if !out.status.success() {
        return Err(format!(
            "{} failed under strace: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let mut norm = Normalizer::new();
    let calls = strace::mask_varying(
        &(strace::fold_repeats(&strace::socket_lines(&raw, &mut norm)).join("\n") + "\n"),
    );
    // The output gets its own numbering, so a test can normalise a fresh run's stdout alone.
    let printed =
        strace::mask_varying(&Normalizer::new().apply(&String::from_utf8_lossy(&out.stdout)));
    match write {
        None => print!("{calls}"),
        Some(dir) => {
            for (sub, text) in [("traces", &calls), ("output", &printed)] {
                let path = dir.join(sub).join(format!("{number}.txt"));
                std::fs::create_dir_all(dir.join(sub))?;
                std::fs::write(&path, text)?;
                println!("wrote {}", path.display());
            }
        }
    }
    Ok(())
}
