//! The socketioxide server of `compare` (`benches/socketioxide`): socketioxide 0.18 on one
//! tokio thread, with the handlers of `benches/socketio/server.js`.
//!
//! It is a crate outside the workspace (tokio, hyper and socketioxide stay out of socklab's
//! build), built by `make bench-socketioxide`; the harness only finds its binary and starts
//! it. When it was not built (no network the first time, say), its column says so and the
//! rest of the run goes on.

use std::path::{Path, PathBuf};

use crate::child::Proc;
use crate::placement::Placement;
use crate::Res;

/// The crate, found from this one's so that the harness can run from any directory (and its
/// tests from their own).
const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../socketioxide");

/// Why the column is empty when the binary is not there.
pub const MISSING: &str = "skipped: socketioxide not built (make bench-socketioxide)";

/// The built release binary, or why there is none.
pub fn binary() -> Result<PathBuf, String> {
    let bin = Path::new(DIR).join("target/release/socketioxide-bench-server");
    // An absolute path: the child runs in another directory than this process.
    match bin.canonicalize() {
        Ok(path) if path.is_file() => Ok(path),
        _ => Err(MISSING.into()),
    }
}

/// The version of socketioxide the binary was built with, from the crate's lock file.
pub fn version() -> Option<String> {
    let lock = std::fs::read_to_string(Path::new(DIR).join("Cargo.lock")).ok()?;
    let mut lines = lock.lines();
    lines.find(|l| l.trim() == "name = \"socketioxide\"")?;
    let version = lines.next()?.trim().strip_prefix("version = ")?;
    Some(version.trim_matches('"').to_string())
}

/// Starts the server on `cpu` (any free port: its first line says which), its stderr into
/// `logs/NAME.log`, where it says any broadcast it could not queue.
pub fn start(placement: &Placement, logs: &Path, name: &str, cpu: usize) -> Res<Proc> {
    let args = ["--port", "0"].map(String::from);
    Proc::spawn(
        placement,
        logs,
        name,
        cpu,
        &binary()?,
        &args,
        Path::new("."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_the_pinned_one() {
        // The lock file is committed; the binary may not be built.
        let v = version().expect("benches/socketioxide/Cargo.lock names socketioxide");
        assert!(v.starts_with("0.18."), "{v}");
    }
}
