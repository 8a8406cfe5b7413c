//! A client of socklab's protocol over a blocking socket, with a deadline on every wait (a
//! `poll` before each read), so that a silent server cannot hang a demonstration: the clients
//! of lessons 23 and 24, which speak to servers in other processes.

use std::error::Error;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::apps::chat;
use crate::blocking;
use crate::sys::{self, Fd, PollFd, PollFlags};
use crate::wire::packet::{self, Limits, Packet, PacketDecoder};

/// An event's arguments, and its broadcast offset if it has one.
pub type Heard = (Vec<Value>, Option<u64>);

pub struct Peer {
    pub fd: Fd,
    decoder: PacketDecoder,
    /// The ack id of the last [`call`](Peer::call): each call takes a new one (a server
    /// answers a repeated id with its first answer, as a retry).
    last_id: u32,
}

impl Peer {
    /// Connects and says HELLO (the server answers with its own HELLO, skipped by the
    /// waits below).
    pub fn connect(addr: SocketAddr) -> Result<Peer, Box<dyn Error>> {
        let fd = blocking::connect_tcp(addr)?;
        blocking::write_all(&fd, &packet::greeting(None))?;
        Ok(Peer {
            fd,
            decoder: PacketDecoder::new(Limits::default()),
            last_id: 0,
        })
    }

    /// Joins namespace `ns` with `auth`; the server's answer (a CONNECT, or a refusal)
    /// within `wait`.
    pub fn join(
        &mut self,
        ns: &str,
        auth: Value,
        wait: Duration,
    ) -> Result<Packet, Box<dyn Error>> {
        self.send(&Packet::Connect {
            ns: ns.into(),
            data: Some(auth),
        })?;
        let deadline = Instant::now() + wait;
        while let Some(p) = self.next_packet(deadline)? {
            match &p {
                Packet::Connect { ns: n, .. } | Packet::ConnectError { ns: n, .. } if n == ns => {
                    return Ok(p)
                }
                _ => {}
            }
        }
        Err(format!("no answer to the CONNECT to {ns}").into())
    }

    /// Joins the chat (namespace `/chat`) as `name`, in room `lobby`; the CONNECT's data
    /// (`sid`, `pid`, `offset`).
    pub fn join_chat(&mut self, name: &str, wait: Duration) -> Result<Value, Box<dyn Error>> {
        let auth = json!({"name": name, "room": chat::DEFAULT_ROOM});
        match self.join(chat::NAMESPACE, auth, wait)? {
            Packet::Connect { data, .. } => Ok(data.unwrap_or(Value::Null)),
            _ => Err(format!("{name} was not let into the chat").into()),
        }
    }

    /// Says `text` in the chat's room `lobby`.
    pub fn say(&mut self, text: &str) -> Result<(), Box<dyn Error>> {
        self.send(&Packet::Event {
            ns: chat::NAMESPACE.into(),
            name: "chat message".into(),
            args: vec![json!(chat::DEFAULT_ROOM), json!(text)],
            attachments: Vec::new(),
            id: None,
            offset: None,
        })
    }

    /// Emits `event` in namespace `ns` with an ack id, and waits `wait` for the answer: its
    /// arguments.
    pub fn call(
        &mut self,
        ns: &str,
        event: &str,
        args: Vec<Value>,
        wait: Duration,
    ) -> Result<Vec<Value>, Box<dyn Error>> {
        self.last_id += 1;
        let want = self.last_id;
        self.send(&Packet::Event {
            ns: ns.into(),
            name: event.into(),
            args,
            attachments: Vec::new(),
            id: Some(want),
            offset: None,
        })?;
        let deadline = Instant::now() + wait;
        while let Some(p) = self.next_packet(deadline)? {
            if let Packet::Ack {
                ns: n, id, args, ..
            } = p
            {
                if n == ns && id == want {
                    return Ok(args);
                }
            }
        }
        Err(format!("no answer to {event} in time").into())
    }

    pub fn send(&mut self, p: &Packet) -> Result<(), Box<dyn Error>> {
        Ok(blocking::write_all(&self.fd, &packet::encode_to_vec(p))?)
    }

    /// The arguments of the next `event` in namespace `ns` within `wait`, other packets
    /// skipped (the chat's `system` lines); `None` if none came in time.
    pub fn wait_for(
        &mut self,
        ns: &str,
        event: &str,
        wait: Duration,
    ) -> Result<Option<Vec<Value>>, Box<dyn Error>> {
        Ok(self
            .wait_for_event(ns, event, wait)?
            .map(|(args, _offset)| args))
    }

    /// [`wait_for`](Peer::wait_for), with the event's broadcast offset (if it has one).
    pub fn wait_for_event(
        &mut self,
        ns: &str,
        event: &str,
        wait: Duration,
    ) -> Result<Option<Heard>, Box<dyn Error>> {
        let deadline = Instant::now() + wait;
        while let Some(p) = self.next_packet(deadline)? {
            if let Packet::Event {
                ns: n,
                name,
                args,
                offset,
                ..
            } = p
            {
                if n == ns && name == event {
                    return Ok(Some((args, offset)));
                }
            }
        }
        Ok(None)
    }

    /// The next packet, or `None` once `deadline` passed with nothing complete.
    pub fn next_packet(&mut self, deadline: Instant) -> Result<Option<Packet>, Box<dyn Error>> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(p) = self.decoder.next_packet()? {
                return Ok(Some(p));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
            let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
            if left.is_zero() || sys::poll(&mut fds, ms)? == 0 {
                return Ok(None);
            }
            let n = sys::read(&self.fd, &mut buf)?;
            if n == 0 {
                return Err("the server closed the connection".into());
            }
            self.decoder.feed(&buf[..n]);
        }
    }
}
