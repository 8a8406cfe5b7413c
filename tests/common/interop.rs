//! Real Socket.IO clients as child processes: socket.io-client on Node.js and python-socketio,
//! installed in `tests/interop/` (see its package.json and requirements.txt), each running one
//! scenario of `client.js` / `client.py`; and a browser, Chromium driven by puppeteer-core
//! (`browser.js`, see [`browser_ready`]). And the one rule for a tool a test needs but the
//! machine may lack: [`skip_or_require`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::{Input, Proc};

/// A language whose Socket.IO client the interop tests run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Node,
    Python,
}

impl Runtime {
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Node => "node",
            Runtime::Python => "python",
        }
    }

    /// The variable that turns a missing client into a failure (CI sets it).
    fn require_var(self) -> &'static str {
        match self {
            Runtime::Node => "SOCKLAB_REQUIRE_NODE",
            Runtime::Python => "SOCKLAB_REQUIRE_PYTHON",
        }
    }

    /// How to install it, from the repository's root.
    fn install(self) -> &'static str {
        match self {
            Runtime::Node => "npm ci --prefix tests/interop",
            Runtime::Python => {
                "python3 -m venv tests/interop/.venv && \
                 tests/interop/.venv/bin/pip install -r tests/interop/requirements.txt"
            }
        }
    }

    /// The interpreter and the script, if this client is installed; else why not. Looked up
    /// once per test binary.
    fn found(self) -> &'static Result<(PathBuf, PathBuf), String> {
        static NODE: OnceLock<Result<(PathBuf, PathBuf), String>> = OnceLock::new();
        static PYTHON: OnceLock<Result<(PathBuf, PathBuf), String>> = OnceLock::new();
        match self {
            Runtime::Node => NODE.get_or_init(find_node),
            Runtime::Python => PYTHON.get_or_init(find_python),
        }
    }
}

/// `tests/interop/` in this checkout.
pub fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

/// Whether `cmd` runs and exits 0 (its output is not wanted).
fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn find_node() -> Result<(PathBuf, PathBuf), String> {
    if !succeeds(Command::new("node").arg("--version")) {
        return Err("node not found on PATH".into());
    }
    installed_at_pin("socket.io-client")?;
    Ok(("node".into(), interop_dir().join("client.js")))
}

/// Whether `tests/interop/node_modules` holds `package` at the version `package.json` pins
/// (the pin is read there, so this check cannot drift from it): a stale node_modules would
/// test another version than the one package-lock.json names. `Err` says what is wrong.
fn installed_at_pin(package: &str) -> Result<(), String> {
    let dir = interop_dir();
    let version_in = |file: &Path, pointer: &str| {
        std::fs::read_to_string(dir.join(file))
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .and_then(|v| {
                v.pointer(pointer)
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            })
    };
    // A JSON pointer escapes `/` (scoped packages: `@socket.io/...`) as `~1`.
    let pointer = format!(
        "/dependencies/{}",
        package.replace('~', "~0").replace('/', "~1")
    );
    let pinned = version_in(Path::new("package.json"), &pointer)
        .ok_or_else(|| format!("tests/interop/package.json pins no {package}"))?;
    let installed = Path::new("node_modules").join(package).join("package.json");
    match version_in(&installed, "/version") {
        Some(v) if v == pinned => Ok(()),
        Some(other) => Err(format!(
            "tests/interop/node_modules holds {package} {other}, not the pinned {pinned}"
        )),
        None => Err(format!(
            "{package} is not installed in tests/interop/node_modules"
        )),
    }
}

/// Node.js and the script `tests/interop/SCRIPT`, when node runs and socket.io-client and
/// each of `packages` are installed at their pins; else `None`, after [`skip_or_require`]
/// said what `what` lacks (a failure under `SOCKLAB_REQUIRE_NODE=1`).
pub fn node_script(what: &str, script: &str, packages: &[&str]) -> Option<(PathBuf, PathBuf)> {
    let rt = Runtime::Node;
    let found = rt.found().clone().and_then(|(node, _)| {
        packages
            .iter()
            .try_for_each(|p| installed_at_pin(p))
            .map(|()| node)
    });
    match found {
        Ok(node) => Some((node, interop_dir().join(script))),
        Err(why) => {
            skip_or_require(rt.require_var(), what, &why, rt.install());
            None
        }
    }
}

fn find_python() -> Result<(PathBuf, PathBuf), String> {
    let dir = interop_dir();
    let python = dir.join(".venv/bin/python");
    if !python.exists() {
        return Err("tests/interop/.venv does not exist".into());
    }
    let pinned = Command::new(&python)
        .args([
            "-c",
            "import socketio, importlib.metadata as m; print(m.version('python-socketio'))",
        ])
        .stderr(Stdio::null())
        .output();
    match pinned {
        Ok(out) if out.status.success() => {
            let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let requirements = std::fs::read_to_string(dir.join("requirements.txt"))
                .expect("tests/interop/requirements.txt is in the repository");
            if requirements.contains(&format!("python-socketio[client]=={version}\n")) {
                Ok((python, dir.join("client.py")))
            } else {
                Err(format!(
                    "tests/interop/.venv holds python-socketio {version}, not the pinned one"
                ))
            }
        }
        _ => Err("python-socketio is not installed in tests/interop/.venv".into()),
    }
}

/// The one rule for a tool a test needs and the machine may lack: returns false (skip)
/// after saying plainly what was skipped, why and how to get it; panics instead when
/// `require_var` is `1` (CI sets it: there, nothing may be skipped).
pub fn skip_or_require(require_var: &str, what: &str, why: &str, fix: &str) -> bool {
    if std::env::var_os(require_var).is_some_and(|v| v == "1") {
        panic!("{what}: {why}, and {require_var}=1 (run: {fix})");
    }
    eprintln!("SKIPPED: {what}: {why} (run: {fix})");
    false
}

thread_local! {
    /// The transports the clients of this test use (see [`over`]).
    static TRANSPORTS: std::cell::Cell<&'static str> = const { std::cell::Cell::new("websocket") };
}

/// Runs `f` with the clients it starts on `transports` (the clients' option, comma-separated:
/// `polling`, or `polling,websocket` for long-polling then the upgrade); WebSocket otherwise.
/// Each test runs on a thread of its own, so the setting is that test's alone.
pub fn over<T>(transports: &'static str, f: impl FnOnce() -> T) -> T {
    TRANSPORTS.with(|t| t.set(transports));
    let out = f();
    TRANSPORTS.with(|t| t.set("websocket"));
    out
}

/// Starts `rt`'s client on `scenario` against the server at `addr`, its stdin open for the
/// scenario's commands; `None` (after saying so) if that client is not installed.
pub fn interop_client(rt: Runtime, scenario: &str, addr: SocketAddr) -> Option<Proc> {
    let (interpreter, script) = match rt.found() {
        Ok(found) => found,
        Err(why) => {
            let what = format!("the {} client's `{scenario}` scenario", rt.name());
            skip_or_require(rt.require_var(), &what, why, rt.install());
            return None;
        }
    };
    let url = format!("http://{addr}");
    let interpreter = interpreter.to_str().expect("the checkout's path is UTF-8");
    let script = script.to_str().expect("the checkout's path is UTF-8");
    let transports = TRANSPORTS.with(|t| t.get());
    Some(Proc::spawn(
        interpreter,
        &[script, scenario, &url, transports],
        Input::Open,
    ))
}

/// Chromium, where the browser driver looks for it: `SOCKLAB_CHROMIUM`, else Debian's.
pub fn chromium_path() -> PathBuf {
    std::env::var_os("SOCKLAB_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/usr/bin/chromium".into())
}

/// What tests/browser.rs needs: node with the pinned socket.io-client (its browser bundle
/// goes into the pages), the pinned puppeteer-core, and Chromium; `Err` says what is missing.
fn find_browser() -> Result<(), String> {
    find_node()?;
    installed_at_pin("puppeteer-core")?;
    let chromium = chromium_path();
    if !succeeds(Command::new(&chromium).arg("--version")) {
        return Err(format!(
            "{} does not run (set SOCKLAB_CHROMIUM to another Chromium)",
            chromium.display()
        ));
    }
    Ok(())
}

/// Whether the browser tests can run here; if not, says so (a `SKIPPED:` line) or fails
/// when `SOCKLAB_REQUIRE_BROWSER=1` (CI). Looked up once per test binary.
pub fn browser_ready(test: &str) -> bool {
    static FOUND: OnceLock<Result<(), String>> = OnceLock::new();
    match FOUND.get_or_init(find_browser) {
        Ok(()) => true,
        Err(why) => skip_or_require(
            "SOCKLAB_REQUIRE_BROWSER",
            &format!("the browser test {test}"),
            why,
            "apt-get install chromium fonts-liberation && npm ci --prefix tests/interop",
        ),
    }
}
