# socklab: `make tour` to watch every lesson, `make test` to check everything.
# Run `make help` for the list.

SHELL   := /bin/bash
CARGO   ?= cargo
MDBOOK  ?= $(shell command -v mdbook 2>/dev/null || echo $(HOME)/.cargo/bin/mdbook)
RELEASE := target/release
LESSONS := $(sort $(basename $(notdir $(wildcard bin/[0-9][0-9]_*.rs))))

.PHONY: help build tour test lesson trace docs check-tools bench bench-quick bench-harness bench-socketio bench-socketioxide bench-loop bench-events fuzz-codec

help:
	@echo "make tour        build, then run every lesson's demonstration with its self-trace"
	@echo "make test        fmt check, clippy, all tests (trace tests included), the book build"
	@echo "make lesson N=04 run one lesson's demonstration with its self-trace"
	@echo "make trace N=04  record lesson 04 under the real strace into docs/src (all lessons without N);"
	@echo "                 as root with tcpdump, also its TCP segments and their diagram"
	@echo "make docs        build the book into docs/book (needs mdbook)"
	@echo "make bench       socklab beside Socket.IO 4.8 (Node.js), socketioxide 0.18 and the raw-socket limit: target/bench/report.md"
	@echo "make bench-quick the same at reduced sizes, in about a minute"
	@echo "make bench-loop  echo round trips per second through the event loop (1, 100, 1000 connections)"
	@echo "make bench-events ack round trips and broadcast deliveries per second through the event layer"
	@echo "make fuzz-codec  a million random inputs through the packet decoders (release build; ~10 s once built)"

build:
	$(CARGO) build --release --quiet

# Every lesson in order: a header, then its narration (stdout) interleaved with its
# self-trace (stderr), exactly as they happen.
tour: build
	@for l in $(LESSONS); do \
	  echo; echo "=================== lesson $$l ==================="; \
	  $(RELEASE)/$$l --trace < /dev/null 2>&1 || exit 1; \
	done; echo; echo "tour finished: $(words $(LESSONS)) lessons"

lesson: build
	@test -n "$(N)" || { echo "usage: make lesson N=04"; exit 2; }
	@bin=$$(ls $(RELEASE)/$(N)_* 2>/dev/null | grep -v '\.d$$' | head -n1); \
	  test -n "$$bin" || { echo "no lesson $(N); lessons: $(LESSONS)"; exit 2; }; \
	  $$bin --trace < /dev/null

trace: build
	@command -v strace >/dev/null || { echo "strace not found: install it (apt-get install strace)"; exit 1; }
	@for l in $(if $(N),$(N),$(foreach x,$(LESSONS),$(firstword $(subst _, ,$(x))))); do \
	  $(RELEASE)/socklab trace $$l --write docs/src || exit 1; \
	done

docs:
	@if [ -x "$(MDBOOK)" ]; then $(MDBOOK) build docs; \
	else echo "mdbook not found: book not built (install: cargo install mdbook --locked)"; fi

# What `make test` could not check on this machine is said, never hidden.
check-tools:
	@command -v strace >/dev/null || echo "NOTE: strace not found: the live strace comparison is skipped (install: apt-get install strace)"
	@command -v nc >/dev/null || echo "NOTE: nc not found: the test of the book's nc commands is skipped (install: apt-get install netcat-openbsd)"
	@[ -x "$(MDBOOK)" ] || echo "NOTE: mdbook not found: the book build is skipped (install: cargo install mdbook --locked)"

# The whole workspace: the library, its lessons and tests, and the benchmark harness
# (benches/harness) with its smoke test.
test: check-tools
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --quiet -- -D warnings
	@mkdir -p target
	@set -o pipefail; $(CARGO) test --workspace --quiet --no-fail-fast 2>&1 | tee target/test.log
	@if [ -x "$(MDBOOK)" ]; then $(MDBOOK) build docs 2>&1 | tee target/mdbook.log; \
	  if grep -qiE 'error|warn' target/mdbook.log; then echo "the book build printed warnings"; exit 1; fi; \
	else echo "SKIPPED: book build (mdbook not found)"; fi
	@awk '/^test result:/ { p += $$4; f += $$6 } END { printf "tests: %d passed, %d failed\n", p, f }' target/test.log

# Benchmarks are not tests: they print figures and assert nothing.
# `make bench`: socklab, Socket.IO and the raw-socket limit side by side (docs/src/performance.md).
# The Socket.IO side needs Node.js; without it that column says "skipped: node not found".
# The socketioxide side (benches/socketioxide, a crate outside the workspace) needs crates.io
# the first time it is built; without it that column says why it was skipped.
# The harness is a crate of its own (benches/harness, binary socklab-bench); `make bench-loop`
# also runs lesson binaries, so the root's release build comes first.
SOCKETIO := benches/socketio
HARNESS  := $(RELEASE)/socklab-bench

bench-harness: build
	$(CARGO) build --release --quiet -p socklab-bench

bench: bench-harness bench-socketio bench-socketioxide
	$(HARNESS) compare

bench-quick: bench-harness bench-socketio bench-socketioxide
	$(HARNESS) compare --quick

# Installs the Socket.IO reference from its lock file (again only when the lock file changed).
bench-socketio:
	@if ! command -v node >/dev/null || ! command -v npm >/dev/null; then \
	  echo "skipped: node not found (the Socket.IO column will say so)"; \
	elif [ ! -f $(SOCKETIO)/node_modules/.package-lock.json ] || \
	     [ $(SOCKETIO)/package-lock.json -nt $(SOCKETIO)/node_modules/.package-lock.json ]; then \
	  echo "installing the Socket.IO reference: npm ci in $(SOCKETIO)"; \
	  (cd $(SOCKETIO) && npm ci --no-audit --no-fund --loglevel=error); \
	fi

# The socketioxide server, built in release; a failed build (no network, an old Rust) is said
# and skipped, never a failure of `make bench`: the harness skips a binary that is not there.
SOCKETIOXIDE := benches/socketioxide/Cargo.toml

bench-socketioxide:
	@mkdir -p target
	@if ! $(CARGO) build --release --quiet --manifest-path $(SOCKETIOXIDE) 2>target/socketioxide-build.log; then \
	  echo "skipped: socketioxide could not be built ($$(grep -m1 -E '^error' target/socketioxide-build.log || tail -n1 target/socketioxide-build.log); log: target/socketioxide-build.log)"; \
	fi

bench-loop: bench-harness
	$(HARNESS) loop

bench-events: bench-harness
	$(HARNESS) events

# The long run of the codec's random-bytes property (tests/codec_props.rs): a million inputs,
# in release mode because a debug build would take many minutes.
fuzz-codec:
	$(CARGO) test --release --test codec_props -- --ignored --nocapture
