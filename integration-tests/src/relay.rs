//! A recording TCP relay: a vantage point on one side of a Sluice that does not depend on it.
//! Put one between the clients and Sluice and one between Sluice and the broker
//! ([`RelayedCluster`]), and what the clients received can be compared byte for byte with what
//! the broker sent, and the connections that reached the broker counted apart from those a
//! client tried to open.
//!
//! Each connection is relayed by two threads that copy and record both directions: the first
//! bytes always (the first request names its `client.id`), everything while the relay's
//! memory budget lasts ([`MAX_KEPT`]; past it a connection is marked `truncated`).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::broker::Broker;
use crate::clients::Client;
use crate::net::{bind_loopback_except, free_ports};
use crate::sidecar::Sidecar;
use crate::tools::Tools;

/// Most bytes one relay keeps, over all its connections and both directions.
pub const MAX_KEPT: u64 = 512 << 20;

/// Bytes always kept at the start of each direction, whatever the budget.
const HEAD: usize = 1024;

/// One relayed connection, as far as it went.
#[derive(Debug, Clone, Default)]
pub struct ConnRecord {
    /// When the relay accepted it.
    pub opened: Option<Instant>,
    /// When the first byte from the client side arrived.
    pub first_request: Option<Instant>,
    /// When both directions had ended.
    pub closed: Option<Instant>,
    /// Bytes from the client side (kept ones; see `truncated`).
    pub to_server: Vec<u8>,
    /// Bytes from the server side (kept ones; see `truncated`).
    pub to_client: Vec<u8>,
    /// Total bytes from the client side.
    pub to_server_len: u64,
    /// Total bytes from the server side.
    pub to_client_len: u64,
    /// Some bytes were not kept (the budget ran out).
    pub truncated: bool,
}

impl ConnRecord {
    /// The `client.id` of the first request (request header v1+), if one arrived.
    pub fn client_id(&self) -> Option<String> {
        let b = &self.to_server;
        if b.len() < 14 {
            return None;
        }
        let n = i16::from_be_bytes([b[12], b[13]]);
        let n = usize::try_from(n).ok()?;
        b.get(14..14 + n)
            .map(|s| String::from_utf8_lossy(s).into_owned())
    }

    /// True once both directions ended.
    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }
}

#[derive(Debug)]
struct Shared {
    conns: Mutex<Vec<Arc<Mutex<ConnRecord>>>>,
    budget: AtomicU64,
    stop: AtomicBool,
}

/// A relay listening on loopback and forwarding each connection to `target`.
#[derive(Debug)]
pub struct Relay {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// Where it forwards to.
    pub target: SocketAddr,
    shared: Arc<Shared>,
}

impl Relay {
    /// Starts a relay on `127.0.0.1:0` forwarding to `target` (connected when a client
    /// connects; a refused connection is closed at once).
    pub fn start(target: SocketAddr) -> Relay {
        // Never the target's port, which may be a broker's that is not up yet.
        let listener = bind_loopback_except(&[target.port()]);
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            conns: Mutex::new(Vec::new()),
            budget: AtomicU64::new(MAX_KEPT),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        std::thread::Builder::new()
            .name(format!("relay-{}", addr.port()))
            .spawn(move || {
                for client in listener.incoming() {
                    if s.stop.load(Relaxed) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    relay(&s, client, target);
                }
            })
            .unwrap();
        Relay {
            addr,
            target,
            shared,
        }
    }

    /// Every connection so far; `bytes`: with what was kept of their bytes.
    pub fn conns(&self, bytes: bool) -> Vec<ConnRecord> {
        let conns = self.shared.conns.lock().unwrap();
        conns
            .iter()
            .map(|c| {
                let c = c.lock().unwrap();
                if bytes {
                    c.clone()
                } else {
                    ConnRecord {
                        to_server: c.to_server[..c.to_server.len().min(HEAD)].to_vec(),
                        to_client: Vec::new(),
                        ..c.clone_without_bytes()
                    }
                }
            })
            .collect()
    }

    /// The connections whose first request named `client_id`, with their bytes.
    pub fn conns_of(&self, client_id: &str) -> Vec<ConnRecord> {
        let conns = self.shared.conns.lock().unwrap();
        conns
            .iter()
            .filter_map(|c| {
                let c = c.lock().unwrap();
                (c.client_id().as_deref() == Some(client_id)).then(|| c.clone())
            })
            .collect()
    }

    /// The connections whose first request named `client_id`, without their bytes.
    pub fn opened_by(&self, client_id: &str) -> Vec<ConnRecord> {
        self.conns(false)
            .into_iter()
            .filter(|c| c.client_id().as_deref() == Some(client_id))
            .collect()
    }
}

impl ConnRecord {
    fn clone_without_bytes(&self) -> ConnRecord {
        ConnRecord {
            opened: self.opened,
            first_request: self.first_request,
            closed: self.closed,
            to_server: Vec::new(),
            to_client: Vec::new(),
            to_server_len: self.to_server_len,
            to_client_len: self.to_client_len,
            truncated: self.truncated,
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Relaxed);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn relay(shared: &Arc<Shared>, client: TcpStream, target: SocketAddr) {
    let record = Arc::new(Mutex::new(ConnRecord {
        opened: Some(Instant::now()),
        ..ConnRecord::default()
    }));
    shared.conns.lock().unwrap().push(record.clone());
    let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(5)) else {
        let _ = client.shutdown(Shutdown::Both);
        record.lock().unwrap().closed = Some(Instant::now());
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let done = Arc::new(AtomicU64::new(0));
    for (from, to, to_server) in [
        (
            client.try_clone().unwrap(),
            server.try_clone().unwrap(),
            true,
        ),
        (server, client, false),
    ] {
        let (shared, record, done) = (shared.clone(), record.clone(), done.clone());
        std::thread::spawn(move || {
            copy(&shared, from, to, &record, to_server);
            if done.fetch_add(1, Relaxed) == 1 {
                record.lock().unwrap().closed = Some(Instant::now());
            }
        });
    }
}

/// Copies `from` to `to` until EOF or an error, recording the bytes; passes the half-close on.
fn copy(
    shared: &Shared,
    mut from: TcpStream,
    mut to: TcpStream,
    record: &Mutex<ConnRecord>,
    to_server: bool,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        {
            let mut guard = record.lock().unwrap();
            let r = &mut *guard;
            if to_server && r.first_request.is_none() {
                r.first_request = Some(Instant::now());
            }
            let (kept, total) = if to_server {
                (&mut r.to_server, &mut r.to_server_len)
            } else {
                (&mut r.to_client, &mut r.to_client_len)
            };
            // Kept bytes are always a prefix of the stream: appended only while whole.
            let whole = kept.len() as u64 == *total;
            *total += n as u64;
            let fits = whole
                && shared
                    .budget
                    .fetch_update(Relaxed, Relaxed, |b| b.checked_sub(n as u64))
                    .is_ok();
            if fits {
                kept.extend_from_slice(&buf[..n]);
            } else {
                if whole {
                    let head = HEAD.saturating_sub(kept.len()).min(n);
                    kept.extend_from_slice(&buf[..head]);
                }
                r.truncated = true;
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

/// A broker with a Sluice in front of it and a recording relay on each side of the Sluice:
/// clients → `front` → Sluice → `back` → broker. The broker advertises `front`, so every
/// client connection passes all three.
#[derive(Debug)]
pub struct RelayedCluster {
    /// The tools used.
    pub tools: Tools,
    /// The broker.
    pub broker: Mutex<Broker>,
    /// The relay the clients connect to (what the broker advertises).
    pub front: Relay,
    /// The Sluice between the relays.
    pub sidecar: Sidecar,
    /// The relay between the Sluice and the broker.
    pub back: Relay,
}

impl std::ops::Deref for RelayedCluster {
    type Target = Sidecar;

    fn deref(&self) -> &Sidecar {
        &self.sidecar
    }
}

impl RelayedCluster {
    /// Starts a broker, the relays and a Sluice with config `keys` (see
    /// [`Sidecar::start_keys`]); returns once a client sees the broker through all three.
    pub fn start(keys: &[(&str, &str)]) -> RelayedCluster {
        let tools = Tools::load();
        let [port, controller_port] = free_ports::<2>();
        let broker_addr = SocketAddr::from(([127, 0, 0, 1], port));
        let back = Relay::start(broker_addr);
        let sidecar = Sidecar::start_keys(back.addr, keys, |_| {});
        let front = Relay::start(sidecar.proxy_addr);
        let broker = Broker::start(&tools, port, controller_port, front.addr);
        let cluster = RelayedCluster {
            tools,
            broker: Mutex::new(broker),
            front,
            sidecar,
            back,
        };
        if let Err(e) = Client::Java.wait_ready(
            &cluster.tools,
            &cluster.bootstrap(),
            Duration::from_secs(60),
        ) {
            let log = cluster.broker.lock().unwrap().log_tail(40);
            panic!("cluster not ready through the relays and the proxy: {e}\nbroker log:\n{log}");
        }
        cluster
    }

    /// The bootstrap address for clients (the front relay).
    pub fn bootstrap(&self) -> String {
        self.front.addr.to_string()
    }

    /// Creates a topic.
    pub fn create_topic(&self, topic: &str, partitions: u32) {
        Client::Java
            .create_topic(&self.tools, &self.bootstrap(), topic, partitions)
            .unwrap_or_else(|e| panic!("create topic {topic}: {e}"));
    }
}

impl Drop for RelayedCluster {
    fn drop(&mut self) {
        self.sidecar.stop();
        self.broker.lock().unwrap().stop();
    }
}
