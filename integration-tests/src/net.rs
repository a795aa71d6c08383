//! Loopback ports and deadlines.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A loopback port that was free a moment ago (bound to :0, then released). Only for
/// processes that must be told a port up front, like the broker.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// `n` distinct loopback ports that were free a moment ago (all bound at once, then released,
/// so that none is handed out twice, as separate [`free_port`] calls may).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let held: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    std::array::from_fn(|i| held[i].local_addr().expect("local address").port())
}

/// A listener on a loopback port the OS picks, never `avoid`: a port picked by
/// [`free_port`] for a broker that has not bound it yet is free, and the OS may hand it out
/// again.
pub fn bind_loopback_except(avoid: &[u16]) -> TcpListener {
    // An avoided port is held until the end, so that the next bind gets another.
    let mut held = Vec::new();
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        if !avoid.contains(&l.local_addr().expect("local address").port()) {
            return l;
        }
        held.push(l);
    }
}

/// Polls `cond` every 50 ms until true; panics with `what` after `deadline`.
pub fn wait_until(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !cond() {
        assert!(
            Instant::now() < end,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// True if something accepts TCP connections at `addr`.
pub fn listening(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}
