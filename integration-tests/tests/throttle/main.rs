//! Issue 19's real tests: throttle policies and connection guards against a real broker and
//! real clients through Sluice.
//!
//! - `rates.rs`: the incident's looping Java consumer and a looping librdkafka consumer held
//!   to 256 KiB/s (one by the policy file, one through the admin API), a healthy group on the
//!   same topic keeping its pace and reading every record once, full speed again once the
//!   policies are removed.
//! - `exact.rs`: what the clients received compared byte for byte with what the broker sent
//!   (a recording relay on each side of the Sluice): a dry-run policy changes nothing, an
//!   enforced one nothing but `throttle_time_ms`.
//! - `churn.rs`: a producer per message held to its connection limits while other clients
//!   connect freely.
//!
//! Tests that measure take [`serial`] so that no other test's load is in their figures. The
//! figures go to the detection report (`detect-report.txt`, printed by scripts/test.sh).

mod churn;
mod cpu;
mod exact;
mod rates;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use serde_json::{json, Value};
use sluice_integration_tests::relay::RelayedCluster;
use sluice_integration_tests::scenario::args;
use sluice_integration_tests::{admin, Client, Cluster};

/// The cap the tests set: 256 KiB/s.
pub const CAP: u64 = 256 * 1024;

/// The admin token of every Sluice in this binary.
pub const TOKEN: &str = "throttle-tests-token-0123456789";

/// One measuring test at a time (the binary runs two test threads).
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A Sluice whose policy file the test rewrites.
#[derive(Debug)]
pub struct Rig {
    /// The broker and its Sluice.
    pub cluster: Cluster,
    /// `throttle.policy_file`.
    pub policy_file: PathBuf,
}

/// A broker and a Sluice with a policy file (empty at first) and an admin token, started on
/// first use.
pub fn rig() -> &'static Rig {
    static RIG: OnceLock<Rig> = OnceLock::new();
    RIG.get_or_init(|| {
        let policy_file = temp_dir().join("policies.toml");
        write_policies(&policy_file, "# no policy yet\n");
        let cluster = Cluster::start_keys(
            &[
                ("throttle.policy_file", policy_file.to_str().unwrap()),
                ("admin.token", TOKEN),
            ],
            |_| {},
        );
        Rig {
            cluster,
            policy_file,
        }
    })
}

/// The policy file of [`relayed`]: a dry-run policy for every `client.id` starting with
/// `dry-looper-`.
pub const RELAYED_POLICIES: &str = r#"
[[policy]]
name = "dry-looper"
client_id = "dry-looper-*"
fetch_bytes_per_sec = "256KiB"
mode = "dry-run"
"#;

/// At most this many connections open at once per client key on [`relayed`].
pub const MAX_PER_CLIENT: usize = 4;
/// At most this many new connections per second per client key on [`relayed`].
pub const NEW_PER_SEC: usize = 4;

/// A broker and a Sluice between two recording relays, with [`RELAYED_POLICIES`], an admin
/// token and the per-client connection guards, started on first use.
pub fn relayed() -> &'static RelayedCluster {
    static RELAYED: OnceLock<RelayedCluster> = OnceLock::new();
    RELAYED.get_or_init(|| {
        let policy_file = temp_dir().join("relayed-policies.toml");
        write_policies(&policy_file, RELAYED_POLICIES);
        let (max, new) = (MAX_PER_CLIENT.to_string(), NEW_PER_SEC.to_string());
        RelayedCluster::start(&[
            ("throttle.policy_file", policy_file.to_str().unwrap()),
            ("admin.token", TOKEN),
            ("guard.max_connections_per_client", &max),
            ("guard.new_connections_per_sec_per_client", &new),
        ])
    })
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(sluice_integration_tests::unique("sluice-throttle"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Replaces the policy file as a whole (written aside, then renamed: a reload never reads
/// half a file).
pub fn write_policies(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A policy file entry capping `group` at [`CAP`].
pub fn group_policy(name: &str, group: &str) -> String {
    format!(
        "[[policy]]\nname = \"{name}\"\ngroup = \"{group}\"\nfetch_bytes_per_sec = \"256KiB\"\n"
    )
}

/// `POST /api/v1/throttles` body: a policy capping `client_id` at [`CAP`] for ten minutes.
pub fn client_policy(name: &str, client_id: &str, mode: &str) -> Value {
    json!({
        "name": name,
        "match": {"client_id": client_id},
        "fetch_bytes_per_sec": CAP,
        "mode": mode,
        "expires_in": "10m",
    })
}

/// Adds a policy through the admin API; asserts 201.
pub fn post_policy(admin_addr: std::net::SocketAddr, body: &Value) {
    let a = admin::call(
        admin_addr,
        "POST",
        "/api/v1/throttles",
        Some(TOKEN),
        Some(body),
    );
    assert_eq!(a.status, 201, "POST /api/v1/throttles {body}: {}", a.body);
}

/// Waits until the policy `name` is in force (`present`) or gone (`!present`).
pub fn wait_policy(admin_addr: std::net::SocketAddr, name: &str, present: bool) {
    sluice_integration_tests::net::wait_until(
        &format!(
            "policy {name} {}",
            if present { "in force" } else { "gone" }
        ),
        Duration::from_secs(15),
        || admin::throttle(admin_addr, Some(TOKEN), name).is_some() == present,
    );
}

/// A consumer stuck in the incident's loop: `consume-loop` (seek back to the record it
/// cannot parse, never commit past it) in its own group, as its own `client.id`.
#[derive(Debug, Clone)]
pub struct Looper {
    /// Its client library.
    pub client: Client,
    /// Its group.
    pub group: String,
    /// Its `client.id`.
    pub id: String,
}

impl Looper {
    /// A looper of `client` named after `label`.
    pub fn new(client: Client, label: &str) -> Looper {
        use sluice_integration_tests::unique;
        Looper {
            client,
            group: unique(&format!("billing-{label}")),
            id: unique(&format!("billing-service-{label}")),
        }
    }

    /// Starts it on `topic` for at most `secs` seconds, fetching at most 64 KiB per
    /// partition per request (so that a response is a quarter second of the cap and rates
    /// can be measured over seconds), plus `extra` options.
    pub fn spawn(
        &self,
        tools: &sluice_integration_tests::Tools,
        bootstrap: &str,
        topic: &str,
        secs: u32,
        extra: &[&str],
    ) -> sluice_integration_tests::clients::Running {
        let mut a = args(&[
            "consume-loop",
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
            "--group",
            &self.group,
            "--client-id",
            &self.id,
            "--duration-s",
            &secs.to_string(),
            "--max-partition-fetch-bytes",
            "65536",
        ]);
        if self.client == Client::Python {
            // As in detect_positive.rs: librdkafka's re-fetch after a seek waits for the
            // outstanding long poll; a short one keeps it looping.
            a.extend(args(&["--fetch-max-wait-ms", "50"]));
        }
        a.extend(args(extra));
        self.client.spawn(tools, &a)
    }
}

/// Lines of a client's stderr that tell of a request timing out or a connection lost.
pub fn client_errors(stderr: &str) -> Vec<String> {
    const SIGNS: [&str; 6] = [
        "timed out",
        "Timed out",
        "REQTMOUT",
        "TimeoutException",
        "Disconnected",
        "DisconnectException",
    ];
    stderr
        .lines()
        .filter(|l| SIGNS.iter().any(|s| l.contains(s)))
        .map(str::to_owned)
        .collect()
}

/// Median of `v` (not empty).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Bytes per second as KiB/s, for reports.
pub fn kib(rate: f64) -> String {
    format!("{:.0} KiB/s", rate / 1024.0)
}

/// Bytes per second as MB/s, for reports.
pub fn mb(rate: f64) -> String {
    format!("{:.1} MB/s", rate / 1e6)
}
