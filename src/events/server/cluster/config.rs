//! A node's cluster settings.

use std::time::Duration;

/// Settings of a node's cluster part (the defaults are the adapter's).
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The stream's name (the adapter's `streamName`).
    pub stream: String,
    /// What the PUB/SUB channels' names start with (the adapter's `channelPrefix`).
    pub channel_prefix: String,
    /// What the sessions' keys start with (the adapter's `sessionKeyPrefix`).
    pub session_prefix: String,
    /// The stream is trimmed to about this many entries (`MAXLEN ~`), so that Redis's memory
    /// stays bounded.
    pub max_len: u64,
    /// Entries per `XREAD`, and how long one blocks.
    pub read_count: u32,
    pub block: Duration,
    /// Commands waiting for Redis, unreachable or only behind (a burst of broadcasts in one
    /// turn of the loop waits here until the turn's end, and then for the replies to the
    /// 1,024 commands already sent): at most this many...
    pub max_buffered: usize,
    /// ...and this many bytes.
    pub max_buffered_bytes: usize,
    /// The reconnect backoff: the first wait, doubled after each failure up to the last.
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// How long a request waits for the other nodes' answers.
    pub request_timeout: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            stream: "socket.io".into(),
            channel_prefix: "socket.io".into(),
            session_prefix: "sio:session:".into(),
            max_len: 10_000,
            read_count: 100,
            block: Duration::from_secs(5),
            max_buffered: 10_000,
            max_buffered_bytes: 8 << 20,
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
        }
    }
}
