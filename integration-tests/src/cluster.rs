//! A broker with Sluice in front of it: the broker advertises the proxy's address, so every
//! client connection goes through the proxy.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use sluice::{Proxy, ProxyStats};
use tokio::sync::oneshot;

use crate::broker::Broker;
use crate::clients::Client;
use crate::events::EventLog;
use crate::net::free_port;
use crate::tools::Tools;

/// A broker and an in-process proxy (on its own runtime thread) in front of it.
#[derive(Debug)]
pub struct Cluster {
    /// The tools used.
    pub tools: Tools,
    /// The broker (locked for crash/restart).
    pub broker: Mutex<Broker>,
    /// The proxy's listener: the bootstrap address clients use.
    pub proxy_addr: SocketAddr,
    /// The proxy's admin listener (`/metrics`, `/api/v1/...`).
    pub admin_addr: SocketAddr,
    /// The broker's own listener (the proxy's upstream).
    pub broker_addr: SocketAddr,
    /// The proxy's counters.
    pub stats: Arc<ProxyStats>,
    /// Every tap event of the proxy.
    pub events: Arc<EventLog>,
    /// The proxy's observer (clients, groups, findings).
    pub observer: Arc<sluice::observer::Observer>,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Cluster {
    /// The cluster shared by every test in this test binary, started on first use. Each test
    /// uses its own topics and groups ([`crate::unique`]).
    pub fn shared() -> &'static Cluster {
        static SHARED: OnceLock<Cluster> = OnceLock::new();
        SHARED.get_or_init(Cluster::start)
    }

    /// Starts a new broker with a proxy in front; returns once clients can use it.
    pub fn start() -> Cluster {
        Self::start_with(|_| {})
    }

    /// Like [`Cluster::start`], with `tweak` applied to the proxy's config.
    pub fn start_with(tweak: impl FnOnce(&mut sluice_config::Config)) -> Cluster {
        init_logging();
        let tools = Tools::load();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let proxy_addr = listener.local_addr().unwrap();
        let admin = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        admin.set_nonblocking(true).unwrap();
        let admin_addr = admin.local_addr().unwrap();
        let broker_port = free_port();
        let controller_port = free_port();
        let config = sluice_config::Loader::new()
            .flag("listen", "--listen", proxy_addr.to_string())
            .flag("upstream", "--upstream", format!("127.0.0.1:{broker_port}"))
            .flag("shutdown_grace", "--shutdown-grace", "5s")
            .load()
            .expect("valid test config");
        let mut config = config;
        tweak(&mut config);
        let events = Arc::new(EventLog::default());
        let proxy = Proxy::new(config).with_sink(events.clone());
        let stats = proxy.stats();
        let observer = proxy.observer();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sluice-proxy".into())
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
        let broker = Broker::start(&tools, broker_port, controller_port, proxy_addr);
        let cluster = Cluster {
            tools,
            broker: Mutex::new(broker),
            proxy_addr,
            admin_addr,
            broker_addr: SocketAddr::from(([127, 0, 0, 1], broker_port)),
            stats,
            events,
            observer,
            stop: Mutex::new(Some(stop)),
            thread: Mutex::new(Some(thread)),
        };
        cluster.wait_ready(Duration::from_secs(60));
        cluster
    }

    /// The bootstrap address for clients (the proxy).
    pub fn bootstrap(&self) -> String {
        self.proxy_addr.to_string()
    }

    /// Waits until a client, through the proxy, sees the broker.
    pub fn wait_ready(&self, deadline: Duration) {
        if let Err(e) = Client::Java.wait_ready(&self.tools, &self.bootstrap(), deadline) {
            let log = self.broker.lock().unwrap().log_tail(40);
            panic!("cluster not ready through the proxy: {e}\nbroker log:\n{log}");
        }
    }

    /// Creates a topic through the proxy.
    pub fn create_topic(&self, topic: &str, partitions: u32) {
        Client::Java
            .create_topic(&self.tools, &self.bootstrap(), topic, partitions)
            .unwrap_or_else(|e| panic!("create topic {topic}: {e}"));
    }

    /// Stops the proxy (drain) and the broker.
    pub fn stop(&self) {
        if let Some(tx) = self.stop.lock().unwrap().take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.lock().unwrap().take() {
            let _ = t.join();
        }
        self.broker.lock().unwrap().stop();
    }
}

impl Drop for Cluster {
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
