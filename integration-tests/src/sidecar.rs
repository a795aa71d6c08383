//! One in-process Sluice in front of one broker, on its own runtime thread: the sidecar of a
//! one-broker [`crate::Cluster`] or of each node of a [`crate::MultiCluster`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use sluice::{Proxy, ProxyStats};
use tokio::sync::oneshot;

use crate::events::EventLog;
use crate::net::bind_loopback_except;

/// A running Sluice: its listener (what the broker advertises), its admin listener, and its
/// counters, tap events and observer for tests to read.
#[derive(Debug)]
pub struct Sidecar {
    /// The proxy's listener: the address its broker advertises to clients.
    pub proxy_addr: SocketAddr,
    /// The proxy's admin listener (`/metrics`, `/api/v1/...`).
    pub admin_addr: SocketAddr,
    /// The broker listener it forwards to.
    pub upstream: SocketAddr,
    /// The proxy's counters.
    pub stats: Arc<ProxyStats>,
    /// Every tap event of the proxy.
    pub events: Arc<EventLog>,
    /// The proxy's observer (clients, groups, findings).
    pub observer: Arc<sluice::observer::Observer>,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Sidecar {
    /// Starts a Sluice on `127.0.0.1:0` (and an admin listener) forwarding to `upstream`,
    /// with `tweak` applied to its config. The broker need not be up yet: the proxy only
    /// connects upstream when a client connects.
    pub fn start(upstream: SocketAddr, tweak: impl FnOnce(&mut sluice_config::Config)) -> Sidecar {
        Sidecar::start_keys(upstream, &[], tweak)
    }

    /// Like [`Sidecar::start`], with config `keys` set by path (`("throttle.policy_file",
    /// "/tmp/p.toml")`), as a command-line flag would set them, before `tweak`.
    pub fn start_keys(
        upstream: SocketAddr,
        keys: &[(&str, &str)],
        tweak: impl FnOnce(&mut sluice_config::Config),
    ) -> Sidecar {
        init_logging();
        // Neither listener may take the broker's port while the broker is not up yet.
        let listener = bind_loopback_except(&[upstream.port()]);
        listener.set_nonblocking(true).unwrap();
        let proxy_addr = listener.local_addr().unwrap();
        let admin = bind_loopback_except(&[upstream.port()]);
        admin.set_nonblocking(true).unwrap();
        let admin_addr = admin.local_addr().unwrap();
        let mut loader = sluice_config::Loader::new()
            .flag("listen", "--listen", proxy_addr.to_string())
            .flag("upstream", "--upstream", upstream.to_string())
            .flag("shutdown_grace", "--shutdown-grace", "5s");
        for (key, value) in keys {
            loader = loader.flag(key, &format!("--{key}"), *value);
        }
        let mut config = loader
            .load()
            .unwrap_or_else(|e| panic!("valid test config: {e}"));
        tweak(&mut config);
        let events = Arc::new(EventLog::default());
        let proxy = Proxy::new(config).with_sink(events.clone());
        let stats = proxy.stats();
        let observer = proxy.observer();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("sluice-proxy-{}", proxy_addr.port()))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    let admin = tokio::net::TcpListener::from_std(admin).unwrap();
                    sluice::app::serve_proxy(proxy, listener, admin, async move {
                        let _ = stopped.await;
                    })
                    .await
                    .expect("proxy starts");
                });
            })
            .unwrap();
        Sidecar {
            proxy_addr,
            admin_addr,
            upstream,
            stats,
            events,
            observer,
            stop: Mutex::new(Some(stop)),
            thread: Mutex::new(Some(thread)),
        }
    }

    /// Stops the proxy (drain) and waits for its thread; idempotent.
    pub fn stop(&self) {
        if let Some(tx) = self.stop.lock().unwrap().take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.lock().unwrap().take() {
            let _ = t.join();
        }
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        self.stop();
    }
}

fn init_logging() {
    let level = std::env::var("SLUICE_TEST_LOG").unwrap_or_else(|_| "warn".to_owned());
    sluice::logging::init(&sluice_config::LogConfig {
        format: sluice_config::LogFormat::Plain,
        level,
    });
}
