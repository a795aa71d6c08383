//! Connection guards: how fast one client host may open connections, and how many one client
//! key (client host + `client.id`) may hold open and open per second (`guard.*`).
//!
//! [`Guards::admit`] runs in a connection's task before anything reaches the broker. Every
//! guard is off by default, and then it returns at once: nothing is read, nothing waits. The
//! host rate is checked first. The client key limits need the `client.id`, so the first
//! request header is peeked ([`header`]) — never read, so the bytes the forwarding path then
//! reads are the client's, untouched. First bytes that are not a Kafka request header (a TLS
//! ClientHello, garbage), or no whole header within [`HEADER_WAIT`], leave the connection
//! unchecked per client key and forwarded as any other.
//!
//! Beyond a limit a connection is refused (closed with a reset, before the broker is
//! contacted) or, with `guard.on_limit = "hold"`, held until there is room — a token for a
//! rate, a connection of the same key closing for the open limit — for at most
//! `guard.max_wait`, then refused. Refusals are counted by reason and client
//! ([`crate::stats::Refusals`]) and logged at most once per [`LOG_EVERY`] per reason.
//!
//! # Layout
//! - this file: [`Guards`], their admission and the refusal log; [`ClientSlot`].
//! - [`header`]: the first request header's `client.id`, peeked.
//! - [`table`]: token buckets and the bounded tables of them.

pub mod header;
pub mod table;

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sluice_config::{GuardConfig, OnLimit};
use tokio::net::TcpStream;
use tokio::sync::futures::Notified;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::stats::{ProxyStats, Reason};
use header::First;
use table::{Rate, Table};

/// Longest wait for a connection's first request header when a client key limit is on;
/// Kafka clients send theirs as soon as they connect.
pub const HEADER_WAIT: Duration = Duration::from_secs(5);
/// Most client hosts whose connection rate is followed at once.
pub const MAX_HOSTS: usize = 65_536;
/// Most client keys followed at once (a key holds a `client.id` of up to 1 KiB).
pub const MAX_CLIENTS: usize = 16_384;
/// At most one warning per reason per this long about refused connections.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// A client key: the client host and its `client.id`.
type ClientKey = (IpAddr, Box<str>);

/// Refusals since a reason's last warning, and when that was.
#[derive(Debug, Default, Clone, Copy)]
struct Logged {
    since: u64,
    at: Option<Instant>,
}

/// The connection guards of one proxy, shared by its connections.
#[derive(Debug)]
pub struct Guards {
    config: GuardConfig,
    stats: Arc<ProxyStats>,
    hosts: Mutex<Table<IpAddr>>,
    clients: Mutex<Table<ClientKey>>,
    /// Woken when a client key's connection closes (room for a held one).
    room: Notify,
    logged: Mutex<[Logged; 4]>,
}

/// One admitted connection's place in its client key's count, given back when dropped.
#[derive(Debug)]
pub struct ClientSlot {
    guards: Arc<Guards>,
    key: ClientKey,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        lock(&self.guards.clients).release(&self.key, Instant::now());
        self.guards.room.notify_waiters();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Why a client key has no room now, and when a rate's token will be there.
type NoRoom = (Reason, Option<Duration>);

impl Guards {
    /// Guards for `config`, counting into `stats`.
    pub fn new(config: &GuardConfig, stats: Arc<ProxyStats>) -> Arc<Guards> {
        Arc::new(Guards {
            hosts: Mutex::new(Table::new(
                MAX_HOSTS,
                Rate::new(config.new_connections_per_sec_per_host),
            )),
            clients: Mutex::new(Table::new(
                MAX_CLIENTS,
                Rate::new(config.new_connections_per_sec_per_client),
            )),
            config: config.clone(),
            stats,
            room: Notify::new(),
            logged: Mutex::new([Logged::default(); 4]),
        })
    }

    /// Whether any guard is on.
    pub fn any(&self) -> bool {
        self.config.any()
    }

    /// Lets the connection `client` from `host` through, holding its client key's slot while
    /// the slot lives (`None`: not counted per client key), or refuses it: counted, logged,
    /// set to close with a reset. `drain` starting refuses a held connection.
    pub async fn admit(
        self: &Arc<Self>,
        client: &TcpStream,
        host: IpAddr,
        drain: &CancellationToken,
    ) -> Result<Option<ClientSlot>, Reason> {
        if !self.any() {
            return Ok(None);
        }
        let host = host.to_canonical();
        let refuse = |reason| {
            let _ = client.set_zero_linger(); // closed with a reset: no TIME_WAIT kept here
            reason
        };
        let deadline = tokio::time::Instant::now() + self.config.max_wait;
        while let Some(wait) = self.take_host(host) {
            if !self.hold(Some(wait), deadline, drain, None).await {
                return Err(refuse(self.refused(Reason::PerHostRate, host, None)));
            }
        }
        if !self.config.per_client() {
            return Ok(None);
        }
        let id = match header::first(client, HEADER_WAIT).await {
            First::ClientId(id) => id,
            other => {
                tracing::debug!(first = ?other, "no Kafka request header: not counted per client key");
                return Ok(None);
            }
        };
        let key: ClientKey = (host, id.into_boxed_str());
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable(); // a connection closing from here on wakes this one
            match self.take_client(&key) {
                Ok(slot) => return Ok(slot),
                Err((reason, wait)) => {
                    if !self.hold(wait, deadline, drain, Some(room)).await {
                        return Err(refuse(self.refused(reason, host, Some(&key.1))));
                    }
                }
            }
        }
    }

    /// Takes a token of `host`'s rate; `Some(wait)` when none is there.
    fn take_host(&self, host: IpAddr) -> Option<Duration> {
        let mut hosts = lock(&self.hosts);
        let rate = hosts.rate()?;
        let now = Instant::now();
        let Some(entry) = hosts.entry(&host, now) else {
            self.stats.refusals.untracked.fetch_add(1, Relaxed);
            return None;
        };
        let bucket = entry.bucket.as_mut()?;
        (!bucket.take(rate, now)).then(|| bucket.wait(rate, now))
    }

    /// A place for one more connection of `key`, or why there is none.
    fn take_client(self: &Arc<Self>, key: &ClientKey) -> Result<Option<ClientSlot>, NoRoom> {
        let max = self.config.max_connections_per_client;
        let now = Instant::now();
        let mut clients = lock(&self.clients);
        let rate = clients.rate();
        let Some(entry) = clients.entry(key, now) else {
            self.stats.refusals.untracked.fetch_add(1, Relaxed);
            return Ok(None);
        };
        if max > 0 && entry.open >= max {
            return Err((Reason::PerClientOpen, None));
        }
        if let (Some(bucket), Some(rate)) = (entry.bucket.as_mut(), rate) {
            if !bucket.take(rate, now) {
                return Err((Reason::PerClientRate, Some(bucket.wait(rate, now))));
            }
        }
        if max == 0 {
            return Ok(None);
        }
        entry.open += 1;
        Ok(Some(ClientSlot {
            guards: self.clone(),
            key: key.clone(),
        }))
    }

    /// With `on_limit = "hold"`: waits `wait` (or until `room`, or the deadline, whichever is
    /// first) and says to try again; `false`: refuse now.
    async fn hold(
        &self,
        wait: Option<Duration>,
        deadline: tokio::time::Instant,
        drain: &CancellationToken,
        room: Option<Pin<&mut Notified<'_>>>,
    ) -> bool {
        let now = tokio::time::Instant::now();
        if self.config.on_limit != OnLimit::Hold || now >= deadline || drain.is_cancelled() {
            return false;
        }
        let until = wait.map_or(deadline, |w| (now + w).min(deadline));
        let room = async {
            match room {
                Some(r) => r.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = drain.cancelled() => {}
            _ = tokio::time::sleep_until(until) => {}
            _ = room => {}
        }
        // A drain that started meanwhile wins over room made by a connection it closed.
        !drain.is_cancelled()
    }

    /// Counts a refusal, and logs it unless this reason was logged within [`LOG_EVERY`].
    fn refused(&self, reason: Reason, host: IpAddr, client_id: Option<&str>) -> Reason {
        self.stats.refusals.add(reason, host, client_id);
        let mut logged = lock(&self.logged);
        let l = &mut logged[reason as usize];
        l.since += 1;
        let now = Instant::now();
        if l.at.is_none_or(|at| now.duration_since(at) >= LOG_EVERY) {
            let (limit, name) = self.limit(reason);
            tracing::warn!(
                sluice.reason = reason.as_str(),
                client.host = %host,
                client.id = client_id.map(tracing::field::display), // escaped by the log format
                limit,
                on_limit = match self.config.on_limit {
                    OnLimit::Refuse => "refuse",
                    OnLimit::Hold => "hold",
                },
                refused = l.since,
                "connection refused: client at {name}"
            );
            (l.since, l.at) = (0, Some(now));
        }
        reason
    }

    /// The limit behind `reason`, and its key.
    fn limit(&self, reason: Reason) -> (u64, &'static str) {
        let c = &self.config;
        match reason {
            Reason::PerHostOpen => (0, "max_connections_per_host"),
            Reason::PerHostRate => (
                c.new_connections_per_sec_per_host.into(),
                "guard.new_connections_per_sec_per_host",
            ),
            Reason::PerClientOpen => (
                c.max_connections_per_client as u64,
                "guard.max_connections_per_client",
            ),
            Reason::PerClientRate => (
                c.new_connections_per_sec_per_client.into(),
                "guard.new_connections_per_sec_per_client",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_logged_once_per_reason_per_period_naming_host_and_escaped_client_id() {
        let config = GuardConfig {
            new_connections_per_sec_per_client: 2,
            ..GuardConfig::default()
        };
        let stats = Arc::new(ProxyStats::default());
        let guards = Guards::new(&config, stats.clone());
        let host = IpAddr::from([10, 1, 2, 3]);
        let text = crate::logging::logged(|| {
            for _ in 0..3 {
                guards.refused(
                    Reason::PerClientRate,
                    host,
                    Some("evil\nlevel=ERROR\x1b[2J"),
                );
            }
            guards.refused(Reason::PerHostRate, host, None);
        });
        assert_eq!(text.lines().count(), 2, "one line per reason: {text}");
        let line = text.lines().next().unwrap();
        assert!(line.contains("sluice.reason=\"per_client_rate\""), "{line}");
        assert!(line.contains("client.host=10.1.2.3"), "{line}");
        assert!(
            line.contains("limit=2 on_limit=\"refuse\" refused=1"),
            "{line}"
        );
        assert!(
            line.contains(r"client.id=evil\nlevel=ERROR\x1b[2J"),
            "{line}"
        );
        assert!(
            line.contains("guard.new_connections_per_sec_per_client"),
            "{line}"
        );
        assert!(
            !text.lines().nth(1).unwrap().contains("client.id"),
            "{text}"
        );
        assert_eq!(stats.refusals.total(Reason::PerClientRate), 3);
    }
}
