"""python-socketio's client against socklab's server: client.js's scenarios, same lines.

    .venv/bin/python client.py SCENARIO URL      e.g.  client.py ack http://127.0.0.1:7100

tests/interop.rs runs this beside client.js and checks the same lines (see client.js for the
format, the stdin commands and the limits). Every wait is bounded: `fail ...` and exit 1 when
something is wrong, `timeout` and exit 3 when the whole run takes longer than LIMIT.

Not here: connection state recovery (client.js's `recovery`). python-socketio's client does
not implement it: it sends no `pid`/`offset` when it reconnects and has no `recovered` flag,
so a Python client always comes back as a new socket. Broadcasts still carry the offset as a
last string argument, so handlers of broadcast events take `*args`.

The transports are WebSocket unless a third argument lists others (`polling`, or
`polling,websocket` for the upgrade).
"""

import json
import os
import queue
import sys
import threading

import socketio

LIMIT = 45.0  # the whole run, seconds (a backstop: every wait is also bounded by STEP)
STEP = 8.0  # one wait (under the Rust side's WAIT of 10 s, so we speak first)


_out_lock = threading.Lock()


def out(line):
    # One line at a time: python-socketio calls handlers on threads of their own, and two
    # prints at once can interleave their text and newlines.
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def fail(message):
    out(f"fail {message}")
    os._exit(1)  # from any thread, without waiting for the client's own threads


def timeout():
    out("timeout")
    os._exit(3)


def show(value):
    """JSON as client.js prints it, binary values as `<bytes N HEX>`."""

    def binary(v):
        if isinstance(v, (bytes, bytearray)):
            tail = " " + bytes(v).hex() if len(v) <= 16 else ""
            return f"<bytes {len(v)}{tail}>"
        raise TypeError(f"not JSON: {type(v).__name__}")

    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=binary)


def pattern(length, seed):
    """The same bytes as client.js and tests/interop.rs make (a 32-bit LCG's high bytes)."""
    b = bytearray(length)
    x = seed
    for i in range(length):
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
        b[i] = (x >> 16) & 0xFF
    return bytes(b)


SMALL = bytes([0, 1, 2, 127, 128, 253, 254, 255])
BIG = pattern(100000, 7)


def split_offset(args):
    """A broadcast's arguments without Socket.IO's offset (a last string), and whether it was there."""
    if args and isinstance(args[-1], str):
        return list(args[:-1]), "string"
    return list(args), "none"


# Lines from stdin, one command each; command() waits (bounded) for the next.
commands = queue.Queue()


def read_stdin():
    for line in sys.stdin:
        commands.put(line.rstrip("\n"))


def command(what):
    try:
        return commands.get(timeout=STEP)
    except queue.Empty:
        fail(f"no command {what} within {STEP} s")


def expect_command(want):
    got = command(want)
    if got != want:
        fail(f"unexpected command {got}")


def client(reconnect=False):
    """A client; when it reconnects, it does so soon (0.1 s to 0.5 s), not to slow the test."""
    return socketio.Client(
        reconnection=reconnect,
        reconnection_delay=0.1,
        reconnection_delay_max=0.5,
        randomization_factor=0,
    )


def print_connects(sio, *namespaces):
    """Each namespace's connect prints `connect NS ok sid=SID`, from the listener itself."""
    for ns in namespaces:
        sio.on("connect", lambda ns=ns: out(f"connect {ns} ok sid={sio.get_sid(ns)}"), namespace=ns)


def connect(sio, namespaces, auth=None):
    try:
        sio.connect(
            URL, transports=TRANSPORTS, namespaces=namespaces, auth=auth, wait_timeout=STEP
        )
    except socketio.exceptions.ConnectionError as e:
        fail(f"connect {namespaces}: {e}")


def wait(event, what):
    if not event.wait(STEP):
        fail(f"no {what} within {STEP} s")


def call(sio, event, *args, namespace="/"):
    """Emits with an ack; returns the ack's arguments as a list (python-socketio's `call`
    folds one argument into a bare value, which would hide what came)."""
    done = threading.Event()
    reply = []

    def ack(*a):
        reply.extend(a)
        done.set()

    sio.emit(event, args, namespace=namespace, callback=ack)
    wait(done, f"ack for {event}")
    return reply


def next_event(sio, event, namespace="/"):
    """Registers for `event` now; the returned function waits (bounded) for its arguments."""
    got = []
    done = threading.Event()

    def handler(*a):
        got.extend(a)
        done.set()

    sio.on(event, handler, namespace=namespace)

    def result():
        wait(done, event)
        return got

    return result


def finish(sio):
    expect_command("done")
    sio.disconnect()
    out("bye")
    os._exit(0)


# a. `/` without auth and `/chat` with auth, on one connection (python-socketio connects
# every namespace of one client over one Engine.IO session; the auth goes to each).
def scenario_connect():
    sio = client()
    print_connects(sio, "/", "/chat")
    connect(sio, ["/", "/chat"], auth={"name": "pyth"})
    finish(sio)


# b. Client-to-server acks.
def scenario_ack():
    sio = client()
    print_connects(sio, "/")
    connect(sio, ["/"])
    out(f"ack {show(call(sio, 'echo', 'hi', {'n': 1}, [1, 2, 3], None))}")
    out(f"ack {show(call(sio, 'sum', 1, 2, 39))}")
    finish(sio)


# c. Server-to-client acks: the handler's return value is the answer (a tuple is several
# arguments).
def scenario_server_ack():
    sio = client()
    print_connects(sio, "/")

    def ask(question):
        out(f"ask {show(question)}")
        return {"answer": 42}, "and more"

    sio.on("ask", ask)
    answered = next_event(sio, "answered")
    connect(sio, ["/"])
    sio.emit("ask-me")
    out(f"answered {show(answered())}")
    finish(sio)


# d. Binary both ways (Python bytes).
def scenario_binary():
    sio = client()
    print_connects(sio, "/")
    blob = next_event(sio, "blob")
    connect(sio, ["/"])
    lens, *back = call(sio, "upload", {"name": "blob", "data": SMALL}, BIG)
    same = back == [SMALL, BIG]
    out(f"upload ack {show(lens)} same={'true' if same else 'false'}")
    sio.emit("download")
    meta, extra = blob()
    out(f"blob {show(meta)} {show(extra)}")
    out(f"blob lengths {show([len(meta['data']), len(extra)])}")
    out(f"returned {show(call(sio, 'returned', meta['data'], extra))}")
    finish(sio)


# e. The chat room with the test's socklab-protocol client in it.
def scenario_rooms():
    sio = client()
    print_connects(sio, "/chat")
    for name in ["chat message", "system"]:

        def show_broadcast(*args, name=name):
            rest, offset = split_offset(args)
            out(f"{name} {show(rest)} offset={offset}")

        sio.on(name, show_broadcast, namespace="/chat")
    connect(sio, ["/chat"], auth={"name": "pyth"})
    out(f"ack join {show(call(sio, 'join', 'kitchen', namespace='/chat'))}")
    expect_command("say")
    reply = call(sio, "chat message", "lobby", "hello from python", namespace="/chat")
    out(f"ack chat message {show(reply)}")
    finish(sio)


# f. A namespace the server does not have, middleware refusing with data, then admitting.
def scenario_refused():
    for ns, auth in [("/nope", None), ("/vault", {"token": "guess"})]:
        sio = client()
        errors = []
        sio.on("connect_error", lambda data: errors.append(data), namespace=ns)
        try:
            sio.connect(
                URL, transports=TRANSPORTS, namespaces=[ns], auth=auth, wait_timeout=STEP
            )
            fail(f"{ns}: connected")
        except socketio.exceptions.ConnectionError:
            pass
        if len(errors) != 1 or not isinstance(errors[0], dict):
            fail(f"{ns}: connect_error got {errors!r}")
        err = errors[0]
        data = show(err["data"]) if "data" in err else "none"
        out(f"connect_error {ns} {err.get('message')} data={data}")
    sio = client()
    print_connects(sio, "/vault")
    connect(sio, ["/vault"], auth={"token": "letmein"})
    finish(sio)


# g. The server disconnects this socket; the client must not reconnect.
def scenario_kick():
    sio = client(reconnect=True)
    print_connects(sio, "/")
    gone = next_event(sio, "disconnect")
    connect(sio, ["/"])
    sio.emit("kick-me")
    (reason,) = gone()
    out(f"disconnect {reason}")
    # Give a reconnection (which must not happen) the time it would take, then look.
    sio.sleep(0.5)
    out(f"active {'true' if sio.connected else 'false'}")
    finish(sio)


# h. The server stops and a new one starts on the same port; the client reconnects by itself.
def scenario_restart():
    sio = client(reconnect=True)
    connects = threading.Semaphore(0)
    first_done = threading.Event()

    # python-socketio runs the connect handler on its own thread and sets `sio.connected`
    # only when `connect()` returns, a moment later on this one; a server that stops in
    # between (the test stops it once it reads the line) is no disconnect to the client,
    # which reconnects without a word. So the first connect's line comes from here, after
    # `connect()`; the reconnection's from the handler.
    def connected():  # python-socketio keeps one handler an event: print_connects' would go
        if first_done.is_set():
            out(f"connect / ok sid={sio.get_sid('/')}")
        connects.release()

    disconnects = threading.Semaphore(0)

    finishing = threading.Event()

    def disconnected(reason):
        if finishing.is_set():
            return
        out(f"disconnect {reason}")
        disconnects.release()

    sio.on("connect", connected)
    sio.on("disconnect", disconnected)
    connect(sio, ["/"])
    if not connects.acquire(timeout=STEP):
        fail("no first connect")
    first_done.set()
    out(f"connect / ok sid={sio.get_sid('/')}")
    # Each wait is bounded on its own: the server's stop and restart are the test's, and
    # take longer on a loaded machine.
    if not disconnects.acquire(timeout=STEP):
        fail(f"no disconnect within {STEP} s of the first connect")
    if not connects.acquire(timeout=STEP):
        fail(f"no reconnection within {STEP} s of the disconnect")
    # Our own disconnect is not reported: after a reconnection python-socketio calls the
    # disconnect handler for it on another thread, or not at all (seen in one run of three).
    finishing.set()
    finish(sio)


SCENARIOS = {
    "connect": scenario_connect,
    "ack": scenario_ack,
    "server-ack": scenario_server_ack,
    "binary": scenario_binary,
    "rooms": scenario_rooms,
    "refused": scenario_refused,
    "kick": scenario_kick,
    "restart": scenario_restart,
}

if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.stderr.write("usage: client.py SCENARIO URL [TRANSPORTS]\n")
        sys.exit(2)
    scenario, URL = sys.argv[1], sys.argv[2]
    # python-socketio's `transports`, comma-separated (as client.js takes it).
    TRANSPORTS = (sys.argv[3] if len(sys.argv) == 4 else "websocket").split(",")
    if scenario not in SCENARIOS:
        fail(f"unknown scenario {scenario}")
    limit = threading.Timer(LIMIT, timeout)
    limit.daemon = True
    limit.start()
    threading.Thread(target=read_stdin, daemon=True).start()
    try:
        SCENARIOS[scenario]()
    except Exception as e:  # noqa: BLE001: any surprise is a failed run, said plainly
        fail(f"{type(e).__name__}: {e}")
