//! The disconnect reasons, with Socket.IO's wording where Socket.IO has one, and the two
//! decisions they drive: whether the server keeps a session, whether a client comes back.

/// The peer closed the connection.
pub const TRANSPORT_CLOSE: &str = "transport close";
/// The connection failed (reset, broken pipe).
pub const TRANSPORT_ERROR: &str = "transport error";
/// No heartbeat in time.
pub const PING_TIMEOUT: &str = "ping timeout";
/// The peer sent bytes that are not the protocol.
pub const PARSE_ERROR: &str = "parse error";
/// The server is stopping (SIGINT/SIGTERM).
pub const SERVER_SHUTTING_DOWN: &str = "server shutting down";
/// The client left the namespace.
pub const CLIENT_NAMESPACE_DISCONNECT: &str = "client namespace disconnect";
/// The server disconnected the socket (`Io::disconnect`).
pub const SERVER_NAMESPACE_DISCONNECT: &str = "server namespace disconnect";
/// Another node of the cluster disconnected this socket: its `disconnect_sockets`, or the
/// socket's client came back on that node with its session. The session is not kept here.
pub const CLUSTER_DISCONNECT: &str = "cluster disconnect";
/// The connection was closed by this side for another reason.
pub const FORCED_CLOSE: &str = "forced close";
/// A handler panicked; its socket's connection was closed.
pub const SERVER_ERROR: &str = "server error";
/// The peer did not read: its outbound buffer reached the cap.
pub const OUTBOUND_FULL: &str = "outbound buffer full";
/// Client side: the server disconnected this socket.
pub const IO_SERVER_DISCONNECT: &str = "io server disconnect";
/// Client side: one of this client's listeners or callbacks panicked; the client closed
/// its connection and comes back as after any lost connection.
pub const CLIENT_ERROR: &str = "client error";
/// Client side: this client called `disconnect`.
pub const IO_CLIENT_DISCONNECT: &str = "io client disconnect";
/// A CONNECT with this socket's private session id came on another connection: the
/// session moved there (its client came back before this side noticed the old
/// connection was dead).
pub const SESSION_REPLACED: &str = "session replaced";

/// Whether the connection ended by accident, not by anyone's choice: the server keeps
/// the session for the client's return, and the client comes back.
pub fn unexpected(reason: &str) -> bool {
    matches!(
        reason,
        TRANSPORT_CLOSE | TRANSPORT_ERROR | PING_TIMEOUT | PARSE_ERROR
    )
}

/// Server side: whether a socket removed for `reason` leaves its session kept for its
/// client (docs/protocol.md 11.3): after an accident, and when the client itself took
/// the session to a new connection (it is restored at once).
pub fn session_kept(reason: &str) -> bool {
    unexpected(reason) || reason == SESSION_REPLACED
}

/// Client side: whether a client that lost its connection for `reason` reconnects
/// (docs/protocol.md 11.2): after an accident, and also when the server is restarting,
/// stopped reading for a while, or one of the client's own callbacks panicked.
pub fn client_reconnects(reason: &str) -> bool {
    unexpected(reason) || matches!(reason, SERVER_SHUTTING_DOWN | OUTBOUND_FULL | CLIENT_ERROR)
}
