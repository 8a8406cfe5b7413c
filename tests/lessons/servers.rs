//! A lesson server driven by a raw std `TcpStream`, so the test chooses exactly which bytes go
//! on the wire and how they are split.

use super::*;

/// Sends `data` through the echo server and returns what came back. The writer runs on its
/// own thread so that neither side's socket buffers can fill up and block both; it ends with
/// shutdown(Write), the end of file that makes the server close after the echo.
fn echo_through(addr: SocketAddr, data: &[u8]) -> (Vec<u8>, SocketAddr) {
    let stream = connect(addr);
    let local = stream.local_addr().expect("getsockname");
    let mut writer = stream.try_clone().expect("clone the stream");
    let payload = data.to_vec();
    let sender = thread::spawn(move || -> io::Result<()> {
        writer.write_all(&payload)?;
        writer.shutdown(Shutdown::Write)
    });
    let mut back = Vec::with_capacity(data.len());
    // `take` bounds the loop: a server that sent more than it got fails the length check.
    (&stream)
        .take(data.len() as u64 + 1)
        .read_to_end(&mut back)
        .expect("read the echo");
    sender
        .join()
        .expect("the writer thread does not panic")
        .expect("write the payload and shut down");
    (back, local)
}

/// 4 MiB of pseudo-random bytes come back unchanged and in order, then a second client is
/// served by the same (sequential) server. The sizes are not multiples of the server's 64 KiB
/// buffer, so a lost or repeated partial read would show.
#[test]
fn echo_server_returns_large_payloads_unchanged() {
    let mut server = Server::start(ECHO, &[]);
    for (seed, len) in [(1, 4 * 1024 * 1024), (2, 1024 * 1024 + 7)] {
        let sent = pseudo_random(len, seed);
        let (back, local) = echo_through(server.addr, &sent);
        assert_same_bytes(&back, &sent, &format!("echo of {len} bytes"));
        server.expect_line(&format!("echoed {len} bytes to {local}"));
    }
    assert_eq!(server.stop(), "");
}

// ---------------------------------------------------------------------------------------------
// The framing server, byte by byte
// ---------------------------------------------------------------------------------------------

/// A frame written one byte per write() (TCP_NODELAY, so Nagle does not glue the bytes back
/// into one segment) still gets exactly one answer; then two frames in one write get two
/// answers, in order.
#[test]
fn framing_server_answers_a_frame_sent_one_byte_per_write() {
    let mut server = Server::start(FRAMING, &[]);
    let mut stream = connect(server.addr);
    stream.set_nodelay(true).expect("TCP_NODELAY");
    let local = stream.local_addr().expect("getsockname");

    for byte in frame(b"one byte at a time") {
        stream.write_all(&[byte]).expect("write one byte");
    }
    assert_eq!(read_frame(&mut stream), b"got 18 bytes");
    server.expect_line(&format!("{local}: frame \"one byte at a time\""));

    let mut two = frame(b"live");
    two.extend(frame(b"scores"));
    stream.write_all(&two).expect("write two frames");
    assert_eq!(read_frame(&mut stream), b"got 4 bytes");
    assert_eq!(read_frame(&mut stream), b"got 6 bytes");

    stream.shutdown(Shutdown::Write).expect("shutdown");
    assert_closed_by_server(&mut stream);
    assert_eq!(server.stop(), "");
}

/// A header declaring 0xfffffff0 bytes: the server closes that connection without an answer,
/// says why on stdout, and then serves the next client as if nothing happened.
#[test]
fn framing_server_drops_an_oversized_header_and_keeps_serving() {
    let mut server = Server::start(FRAMING, &[]);
    let mut stream = connect(server.addr);
    let local = stream.local_addr().expect("getsockname");
    stream
        .write_all(&[0xff, 0xff, 0xff, 0xf0])
        .expect("write the header");
    assert_closed_by_server(&mut stream);
    server.expect_line(&format!(
        "{local}: closing: frame declares {} bytes, over the limit of {DEFAULT_MAX_PAYLOAD}",
        0xffff_fff0u32
    ));

    frame_round_trip(server.addr, b"still here");
    assert_eq!(server.stop(), "");
}

/// End of file three bytes into a five-byte payload: the server reports the truncated frame,
/// closes without answering, and keeps serving.
#[test]
fn framing_server_reports_a_truncated_frame_and_keeps_serving() {
    let mut server = Server::start(FRAMING, &[]);
    let mut stream = connect(server.addr);
    let local = stream.local_addr().expect("getsockname");
    stream
        .write_all(b"\0\0\0\x05hel")
        .expect("write part of a frame");
    stream.shutdown(Shutdown::Write).expect("shutdown");
    assert_closed_by_server(&mut stream);
    server.expect_line(&format!(
        "{local}: closing: stream ended inside a frame (7 bytes of it arrived)"
    ));

    frame_round_trip(server.addr, b"after the truncated one");
    assert_eq!(server.stop(), "");
}
