//! A broker with Sluice in front of it: the broker advertises the proxy's address, so every
//! client connection goes through the proxy.

use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::broker::Broker;
use crate::clients::Client;
use crate::net::free_ports;
use crate::sidecar::Sidecar;
use crate::tools::Tools;

/// A broker and an in-process proxy (on its own runtime thread) in front of it. Derefs to its
/// [`Sidecar`] (`cluster.observer`, `cluster.events`, `cluster.stats`, `cluster.proxy_addr`).
#[derive(Debug)]
pub struct Cluster {
    /// The tools used.
    pub tools: Tools,
    /// The broker (locked for crash/restart).
    pub broker: Mutex<Broker>,
    /// The broker's own listener (the proxy's upstream).
    pub broker_addr: SocketAddr,
    /// The proxy in front of the broker.
    pub sidecar: Sidecar,
}

impl std::ops::Deref for Cluster {
    type Target = Sidecar;

    fn deref(&self) -> &Sidecar {
        &self.sidecar
    }
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
        Self::start_keys(&[], tweak)
    }

    /// Like [`Cluster::start_with`], with config `keys` set by path first (see
    /// [`Sidecar::start_keys`]).
    pub fn start_keys(
        keys: &[(&str, &str)],
        tweak: impl FnOnce(&mut sluice_config::Config),
    ) -> Cluster {
        let tools = Tools::load();
        let [port, controller_port] = free_ports::<2>();
        let broker_addr = SocketAddr::from(([127, 0, 0, 1], port));
        let sidecar = Sidecar::start_keys(broker_addr, keys, tweak);
        let broker = Broker::start(&tools, port, controller_port, sidecar.proxy_addr);
        let cluster = Cluster {
            tools,
            broker: Mutex::new(broker),
            broker_addr,
            sidecar,
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
        self.sidecar.stop();
        self.broker.lock().unwrap().stop();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}
