//! The screen of `socklab chat` on a terminal: incoming lines appear above an input line
//! whose prompt and half-typed text are never broken.
//!
//! The line editing is `rustyline`'s (a well-kept crate, not the lesson). Its *external
//! printer* prints a line from another thread while the editor reads: it clears the input
//! row, prints the line, and draws the prompt and the text typed so far again. The client's
//! loop thread prints through [`Screen`]; the editor runs on a thread of its own
//! ([`Screen::read_lines`]).
//!
//! The printer must never block the client's loop: it hands a line to the editor through a
//! channel of one slot, and a second line waits until the editor reads it, which it does
//! not between two lines. So the loop thread only sends lines down an unbounded channel to a
//! printer thread of our own, which may wait.
//!
//! One more thing is ours: the line just typed should not stay on the screen as the
//! terminal echoed it (`[lobby] ada> hello`), since the client shows it like everyone
//! else's messages (`[lobby] ada: hello`) once the server has taken it. So after each line
//! the editor's thread erases the rows it took. A line printed between Enter and that
//! erasure would be erased instead; so from the moment Enter is pressed (a key binding sets
//! the `held` flag) until the next prompt, printed lines wait in a queue.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use rustyline::error::ReadlineError;
use rustyline::{
    Cmd, ConditionalEventHandler, Config, DefaultEditor, Event, EventContext, EventHandler,
    ExternalPrinter, KeyCode, KeyEvent, Modifiers, RepeatCount,
};

/// What the editor's thread does with a typed line: hand it over and get the next prompt,
/// or `None` to stop reading.
pub type OnLine = Box<dyn FnMut(String) -> Option<String> + Send>;

/// Prints lines above the input line, from any thread.
#[derive(Clone)]
pub struct Screen {
    lines: mpsc::Sender<String>,
    inner: Arc<Inner>,
}

struct Inner {
    queue: Mutex<Queue>,
    /// Set by Enter, cleared when the next prompt is drawn: lines wait meanwhile.
    held: Arc<AtomicBool>,
    /// Whether the editor is (or is about to be) reading, with the terminal in raw mode.
    reading: AtomicBool,
    /// The terminal's settings before the editor touched them.
    original: Mutex<Option<nix::sys::termios::Termios>>,
    /// Set by the printer thread when it has printed everything sent before the end.
    drained: Mutex<Option<mpsc::Receiver<()>>>,
}

struct Queue {
    printer: Box<dyn ExternalPrinter + Send>,
    waiting: Vec<String>,
}

impl Queue {
    fn flush(&mut self) {
        for line in self.waiting.drain(..) {
            // A terminal that cannot be written to has nobody to tell.
            let _ = self.printer.print(line + "\n");
        }
    }
}

/// Sets `held` when Enter is pressed, then lets the editor accept the line as usual.
struct HoldOnEnter(Arc<AtomicBool>);

impl ConditionalEventHandler for HoldOnEnter {
    fn handle(&self, _: &Event, _: RepeatCount, _: bool, _: &EventContext) -> Option<Cmd> {
        self.0.store(true, Ordering::SeqCst);
        Some(Cmd::AcceptLine)
    }
}

impl Screen {
    /// Prints `line` above the input line (or queues it, see the module's comment). Never
    /// blocks: the printer thread does the printing.
    pub fn print(&self, line: String) {
        let _ = self.lines.send(line);
    }

    /// Puts the terminal back as it was if the editor is still reading: for when the client
    /// ends on its own (refused, sent away) and the process exits under the editor's feet.
    pub fn restore(&self) {
        // What the client printed last (`disconnected: ...`) is on the screen first.
        let drained = self.inner.drained.lock().ok().and_then(|mut d| d.take());
        if let Some(d) = drained {
            let _ = self.lines.send(String::new()); // wakes the printer thread...
            let _ = d.recv_timeout(Duration::from_millis(500)); // ...which says it is done
        }
        if !self.inner.reading.load(Ordering::SeqCst) {
            return;
        }
        if let Some(t) = self.inner.original.lock().ok().and_then(|t| t.clone()) {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                &t,
            );
        }
        // Off the prompt row, so that what is printed next starts on a clean line.
        let mut out = std::io::stdout();
        let _ = out.write_all(b"\r\x1b[2K");
        let _ = out.flush();
    }
}

/// Starts the line editor on a thread of its own: it reads lines with `prompt`, hands each
/// to `on_line` (which returns the next prompt) and stops at Ctrl-D, Ctrl-C, or when
/// `on_line` says so; then it calls `done`. Returns the screen to print to.
pub fn start(
    prompt: String,
    mut on_line: OnLine,
    done: Box<dyn FnOnce() + Send>,
) -> Result<Screen, Box<dyn std::error::Error>> {
    let config = Config::builder()
        .auto_add_history(true)
        // A paste is typed text here; and the bracketed paste mode would stay on if the
        // process ended while the editor reads.
        .bracketed_paste(false)
        .build();
    let mut editor = DefaultEditor::with_config(config)?;
    let held = Arc::new(AtomicBool::new(false));
    editor.bind_sequence(
        KeyEvent(KeyCode::Enter, Modifiers::NONE),
        EventHandler::Conditional(Box::new(HoldOnEnter(held.clone()))),
    );
    let printer = editor.create_external_printer()?;
    let (lines, incoming) = mpsc::channel::<String>();
    let (drained_tx, drained) = mpsc::channel::<()>();
    let screen = Screen {
        lines,
        inner: Arc::new(Inner {
            queue: Mutex::new(Queue {
                printer: Box::new(printer),
                waiting: Vec::new(),
            }),
            held,
            reading: AtomicBool::new(true),
            original: Mutex::new(nix::sys::termios::tcgetattr(std::io::stdin()).ok()),
            drained: Mutex::new(Some(drained)),
        }),
    };
    let printing = screen.inner.clone();
    std::thread::spawn(move || {
        for line in incoming.iter() {
            if line.is_empty() {
                // `restore` asks whether everything before is out; nobody prints an empty line.
                let _ = drained_tx.send(());
                continue;
            }
            let mut q = match printing.queue.lock() {
                Ok(q) => q,
                Err(poisoned) => poisoned.into_inner(), // a panic elsewhere; the queue is whole
            };
            if printing.held.load(Ordering::SeqCst) {
                q.waiting.push(line);
            } else {
                q.flush();
                let _ = q.printer.print(line + "\n");
            }
        }
    });
    let me = screen.clone();
    std::thread::spawn(move || {
        let mut prompt = prompt;
        loop {
            me.release();
            let line = match editor.readline(&prompt) {
                Ok(line) => line,
                Err(ReadlineError::Interrupted | ReadlineError::Eof) => break,
                Err(e) => {
                    me.print(format!("* cannot read the terminal: {e}"));
                    break;
                }
            };
            let cols = editor
                .dimensions()
                .map_or(80, |(c, _)| usize::from(c).max(1));
            me.erase_echo(&prompt, &line, cols);
            match on_line(line) {
                Some(next) => prompt = next,
                None => break,
            }
        }
        me.inner.reading.store(false, Ordering::SeqCst);
        me.release();
        done();
    });
    Ok(screen)
}

impl Screen {
    /// Erases the rows the line just typed took (prompt and text), right after the editor
    /// returned it: the cursor is at the start of the row below them.
    fn erase_echo(&self, prompt: &str, line: &str, cols: usize) {
        // Enter has set `held` already; Ctrl-J accepts a line too, without the binding.
        self.inner.held.store(true, Ordering::SeqCst);
        // The lock is held while erasing, so that no line is printed in between. If the
        // printer thread keeps it, it waits in the editor's channel: its line is not on the
        // screen yet, and erasing without the lock is safe.
        let _queue = self.lock_briefly();
        let width = unicode_width::UnicodeWidthStr::width(prompt)
            + unicode_width::UnicodeWidthStr::width(line);
        let rows = width.div_ceil(cols).max(1);
        let mut out = std::io::stdout();
        let _ = out.write_all("\x1b[1A\x1b[2K".repeat(rows).as_bytes());
        let _ = out.write_all(b"\r");
        let _ = out.flush();
    }

    /// Prints what waited and lets lines through again: the next prompt comes right after.
    fn release(&self) {
        if let Some(mut q) = self.lock_briefly() {
            q.flush();
        }
        self.inner.held.store(false, Ordering::SeqCst);
        if let Some(mut q) = self.lock_briefly() {
            q.flush(); // anything queued between the two
        }
    }

    /// The queue's lock, waited for at most a moment. The printer thread keeps it while it
    /// hands a line to the editor, and that waits until the editor reads again when a line
    /// is in its one-slot channel already.
    fn lock_briefly(&self) -> Option<std::sync::MutexGuard<'_, Queue>> {
        let deadline = Instant::now() + Duration::from_millis(200);
        loop {
            match self.inner.queue.try_lock() {
                Ok(q) => return Some(q),
                Err(std::sync::TryLockError::Poisoned(p)) => return Some(p.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(_) => return None,
            }
        }
    }
}
