//! The contract between the tap and whatever consumes its events: [`TapSink`], and
//! [`ConnMeta`], the connection an event is about. A leaf module: the tap glue calls sinks, the
//! stats, observer and telemetry implement them, and none of them import each other through it.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use sluice_protocol::TapEvent;

/// Who an event is about.
#[derive(Debug, Clone)]
pub struct ConnMeta {
    /// Connection number (unique in this process).
    pub id: u64,
    /// The client's address and port.
    pub client_addr: SocketAddr,
    /// The listener it came in on (`main` for the top-level one).
    pub listener: Arc<str>,
    /// The subject (RFC 4514) of the client's TLS certificate; `None` without one or on a
    /// plaintext listener.
    pub tls_subject: Option<Arc<str>>,
}

impl ConnMeta {
    /// Connection `id` from `client_addr` on the top-level listener, without TLS identity.
    pub fn new(id: u64, client_addr: SocketAddr) -> ConnMeta {
        ConnMeta {
            id,
            client_addr,
            listener: Arc::from("main"),
            tls_subject: None,
        }
    }
}

/// Receives the events of every connection. Called inline on the forwarding task, after the
/// bytes were forwarded: implementations must be quick and must not block.
pub trait TapSink: Send + Sync + fmt::Debug + 'static {
    /// One event of connection `conn`.
    fn on_event(&self, conn: &ConnMeta, event: &TapEvent);

    /// One event of connection `conn`, with the time the tap read the bytes it came from.
    /// The tap calls this one: a sink that needs the time overrides it and saves a clock
    /// read per event (several per Fetch round trip).
    fn on_event_at(&self, conn: &ConnMeta, event: &TapEvent, _now: Instant) {
        self.on_event(conn, event);
    }

    /// Events of connection `conn` in the order they came, each with the time the tap read
    /// it: a batch (see the module docs). A sink that looks something up per connection
    /// overrides it to do that once per batch.
    fn on_events(&self, conn: &ConnMeta, events: &[(TapEvent, Instant)]) {
        for (event, at) in events {
            self.on_event_at(conn, event, *at);
        }
    }

    /// Connection `conn` was opened to the broker and will be followed.
    fn on_open(&self, _conn: &ConnMeta) {}

    /// Connection `conn` ended. Sinks are told in the reverse order they were added.
    fn on_close(&self, _conn: &ConnMeta) {}
}
