//! Re-reading the throttle policy file while the proxy runs, without dropping a connection:
//! on SIGHUP, and when the file's modification time or content changes (checked every
//! [`CHECK_EVERY`]). The TLS listeners' certificates, keys and client CAs are re-read the same
//! way, on SIGHUP and when one of their files changes ([`ServerTls::reload`]): new connections
//! get the new ones, open connections keep theirs; a bad new file keeps the old settings and
//! is logged at `warn`, naming the file.
//!
//! A file that fails validation changes nothing: the policies in force stay, every problem is
//! logged at `warn` and `sluice.throttle.reload_failures` counts it. A valid one replaces the
//! file's policies as a whole ([`Throttle::set_file_policies`]); the policies added, removed
//! and changed are logged by name. Other configuration keys are read at start only: on
//! SIGHUP the configuration is read again as at start and a key whose value changed is logged
//! as needing a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sluice_config::{policy_file, Config, ConfigErrors, PolicySpec};
use tokio::signal::unix::Signal;
use tokio_util::sync::CancellationToken;

use crate::stats::ProxyStats;
use crate::throttle::{Source, Throttle};
use crate::tls::server::{Reloaded, ServerTls};

/// Takes SIGHUP over from its default (ending the process) for the reloader: called before
/// the process says it is serving, so a SIGHUP sent as soon as it listens is never fatal.
pub fn hangup() -> Option<Signal> {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP: the policy file is re-read on change only");
            None
        }
    }
}

/// How often the policy file is looked at for a change.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);

/// What identifies one version of the file: modification time and content.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Version {
    modified: Option<SystemTime>,
    text: Result<String, String>,
}

/// What a valid re-read changed, by policy name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Policies new in the file.
    pub added: Vec<String>,
    /// Policies no longer in the file.
    pub removed: Vec<String>,
    /// Policies whose match, caps, mode or expiry changed.
    pub changed: Vec<String>,
}

impl Changes {
    fn between(old: &[PolicySpec], new: &[PolicySpec]) -> Changes {
        let find = |list: &[PolicySpec], name: &str| list.iter().position(|p| p.name == name);
        let mut c = Changes::default();
        for p in new {
            match find(old, &p.name) {
                None => c.added.push(p.name.clone()),
                Some(i) if old[i] != *p => c.changed.push(p.name.clone()),
                Some(_) => {}
            }
        }
        for p in old {
            if find(new, &p.name).is_none() {
                c.removed.push(p.name.clone());
            }
        }
        c
    }

    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// Reads the whole configuration again, as at start (file and environment).
pub type Reread = Arc<dyn Fn() -> Result<Config, ConfigErrors> + Send + Sync>;

/// Watches one policy file and applies it to the throttle.
pub struct Reloader {
    path: Option<PathBuf>,
    throttle: Arc<Throttle>,
    stats: Arc<ProxyStats>,
    seen: Option<Version>,
    config: Option<(Arc<Config>, Reread)>,
    tls: Vec<Arc<ServerTls>>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("path", &self.path)
            .field("rereads_config", &self.config.is_some())
            .finish()
    }
}

impl Reloader {
    /// A reloader for `path` (`None`: no policy file; SIGHUP is then only logged), applying to
    /// `throttle` and counting failures in `stats`.
    pub fn new(path: Option<PathBuf>, throttle: Arc<Throttle>, stats: Arc<ProxyStats>) -> Self {
        Reloader {
            path,
            throttle,
            stats,
            seen: None,
            config: None,
            tls: Vec::new(),
        }
    }

    /// Also re-reads the files of these TLS listeners: on SIGHUP, and when one changes.
    pub fn with_tls(mut self, tls: Vec<Arc<ServerTls>>) -> Self {
        self.tls = tls;
        self
    }

    /// Re-reads the TLS listeners' files (all of them with `force`, else those changed) and
    /// logs what each re-read did.
    pub async fn reload_tls(&self, force: bool) {
        for tls in &self.tls {
            let t = tls.clone();
            let Ok(outcome) = tokio::task::spawn_blocking(move || t.reload(force)).await else {
                continue;
            };
            match outcome {
                Reloaded::Unchanged => {}
                Reloaded::Replaced => tracing::info!(
                    listener = tls.listener(),
                    "TLS certificate, key and client CA re-read: in force for new connections"
                ),
                Reloaded::Kept(problems) => {
                    ProxyStats::add(&self.stats.tls_reload_failures, 1);
                    for problem in problems {
                        tracing::warn!(listener = tls.listener(), problem = %problem,
                            "TLS files rejected: the certificate in force stays");
                    }
                }
            }
        }
    }

    /// On SIGHUP, also reads the configuration again with `reread` and logs the keys whose
    /// value differs from `running`'s: they need a restart.
    pub fn with_config(mut self, running: Arc<Config>, reread: Reread) -> Self {
        self.config = Some((running, reread));
        self
    }

    /// Reads the configuration again; the keys whose value changed (they need a restart), or
    /// the problems of the configuration as it is now (it would fail a restart). `None`
    /// without [`Reloader::with_config`].
    pub async fn changed_config(&self) -> Option<Result<Vec<String>, ConfigErrors>> {
        let (running, reread) = self.config.clone()?;
        let again = tokio::task::spawn_blocking(move || reread()).await.ok()?;
        Some(again.map(|mut now| {
            now.throttle.policies = running.throttle.policies.clone();
            changed_keys(&running, &now)
        }))
    }

    /// The file policies in force.
    fn in_force(&self) -> Vec<PolicySpec> {
        self.throttle
            .status()
            .into_iter()
            .filter(|s| s.source == Source::File)
            .map(|s| s.spec)
            .collect()
    }

    /// Re-reads the file now, whether or not it changed: the changes applied, or every problem
    /// (the policies in force stay).
    pub async fn reload(&mut self) -> Option<Result<Changes, ConfigErrors>> {
        let path = self.path.clone()?;
        let version = read(&path).await;
        Some(self.apply(&path, version))
    }

    /// Re-reads the file if its modification time or content changed since the last look.
    pub async fn check(&mut self) -> Option<Result<Changes, ConfigErrors>> {
        let path = self.path.clone()?;
        let version = read(&path).await;
        if self.seen.as_ref() == Some(&version) {
            return None;
        }
        Some(self.apply(&path, version))
    }

    fn apply(&mut self, path: &Path, version: Version) -> Result<Changes, ConfigErrors> {
        let parsed = match &version.text {
            Ok(text) => policy_file::parse(text, path, SystemTime::now()),
            Err(message) => Err(ConfigErrors(vec![sluice_config::ConfigError {
                path: "throttle.policy_file".to_owned(),
                origin: sluice_config::Origin::File(path.to_owned()),
                message: message.clone(),
            }])),
        };
        self.seen = Some(version);
        let policies = parsed.inspect_err(|_| {
            ProxyStats::add(&self.stats.throttle_reload_failures, 1);
        })?;
        let changes = Changes::between(&self.in_force(), &policies);
        self.throttle.set_file_policies(policies);
        Ok(changes)
    }

    /// Checks the file every [`CHECK_EVERY`] and re-reads it on each signal `hup` receives
    /// (see [`hangup`]), until `stop`.
    pub async fn run(mut self, mut hup: Option<Signal>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        // The file was read with the config just now: only a change since is worth a line.
        if let (Some(outcome), Some(path)) = (self.check().await, &self.path) {
            if !matches!(&outcome, Ok(c) if c.is_empty()) {
                log(path, &outcome);
            }
        }
        loop {
            let outcome = tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {
                    self.reload_tls(false).await;
                    self.check().await
                }
                Some(()) = async { match hup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                } } => {
                    self.reload_tls(true).await;
                    let outcome = self.reload().await;
                    if outcome.is_none() && self.tls.is_empty() {
                        tracing::info!("SIGHUP: no throttle.policy_file to re-read (other keys need a restart)");
                    }
                    if let Some(changed) = self.changed_config().await {
                        log_config(&changed);
                    }
                    outcome
                }
            };
            if let (Some(outcome), Some(path)) = (outcome, &self.path) {
                log(path, &outcome);
            }
        }
    }
}

fn log(path: &Path, outcome: &Result<Changes, ConfigErrors>) {
    let file = path.display();
    match outcome {
        Ok(c) if c.is_empty() => {
            tracing::info!(file = %file, "throttle policy file re-read: no policy changed")
        }
        Ok(c) => tracing::info!(file = %file, added = ?c.added, removed = ?c.removed,
            changed = ?c.changed, "throttle policy file re-read: policies replaced"),
        Err(errors) => {
            for e in &errors.0 {
                tracing::warn!(file = %file, problem = %e,
                    "throttle policy file rejected: the policies in force stay");
            }
        }
    }
}

fn log_config(changed: &Result<Vec<String>, ConfigErrors>) {
    match changed {
        Ok(keys) if keys.is_empty() => {}
        Ok(keys) => tracing::warn!(keys = ?keys,
            "SIGHUP: configuration changed; these keys need a restart (only the throttle policy file is re-read)"),
        Err(errors) => {
            // The policy file's own problems were logged by its re-read.
            for e in errors.0.iter().filter(|e| !e.path.starts_with("policy")) {
                tracing::warn!(problem = %e,
                    "SIGHUP: the configuration as it is now would fail a restart");
            }
        }
    }
}

/// The keys whose value differs between two configurations, by their TOML form; a secret that
/// changed (shown redacted in that form) is named as such.
pub fn changed_keys(old: &Config, new: &Config) -> Vec<String> {
    fn flatten(
        prefix: &str,
        t: &toml::Table,
        out: &mut std::collections::BTreeMap<String, String>,
    ) {
        for (k, v) in t {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::Table(inner) => flatten(&path, inner, out),
                other => {
                    out.insert(path, other.to_string());
                }
            }
        }
    }
    let keys = |c: &Config| {
        let mut out = std::collections::BTreeMap::new();
        if let Ok(t) = c.to_toml().parse::<toml::Table>() {
            flatten("", &t, &mut out);
        }
        out
    };
    let (a, b) = (keys(old), keys(new));
    let mut changed: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect();
    changed.dedup();
    changed.sort();
    changed.dedup();
    if changed.is_empty() && old != new {
        changed.push("a secret (admin.token or a telemetry.otlp_* value)".to_owned());
    }
    changed
}

/// The file's modification time and text (or why it cannot be read).
async fn read(path: &Path) -> Version {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || Version {
        modified: std::fs::metadata(&path).and_then(|m| m.modified()).ok(),
        text: policy_file::read(&path),
    })
    .await
    .unwrap_or_else(|e| Version {
        modified: None,
        text: Err(format!("cannot read: {e}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> Vec<PolicySpec> {
        policy_file::parse(text, Path::new("p.toml"), SystemTime::now()).unwrap()
    }

    #[test]
    fn changes_are_named() {
        let old = spec(
            "[[policy]]\nname = \"a\"\ngroup = \"g\"\nrequests_per_sec = 1\n\
             [[policy]]\nname = \"b\"\ngroup = \"h\"\nrequests_per_sec = 1\n\
             [[policy]]\nname = \"c\"\ngroup = \"i\"\nrequests_per_sec = 1\n",
        );
        let new = spec(
            "[[policy]]\nname = \"a\"\ngroup = \"g\"\nrequests_per_sec = 1\n\
             [[policy]]\nname = \"b\"\ngroup = \"h\"\nrequests_per_sec = 2\n\
             [[policy]]\nname = \"d\"\ngroup = \"j\"\nrequests_per_sec = 1\n",
        );
        let c = Changes::between(&old, &new);
        assert_eq!(c.added, ["d"]);
        assert_eq!(c.removed, ["c"]);
        assert_eq!(c.changed, ["b"]);
        assert!(Changes::between(&new, &new).is_empty());
    }

    #[test]
    fn changed_keys_are_named_and_secrets_too() {
        let base = Config::default();
        assert!(changed_keys(&base, &base).is_empty());
        let mut c = base.clone();
        c.max_connections = 7;
        c.admin.metrics_listen = Some("127.0.0.1:9465".parse().unwrap());
        c.throttle.max_hold = Duration::from_secs(3);
        assert_eq!(
            changed_keys(&base, &c),
            [
                "admin.metrics_listen",
                "max_connections",
                "throttle.max_hold"
            ]
        );
        let mut c = base.clone();
        c.admin.token = Some(sluice_config::Secret::new("0123456789abcdef"));
        let mut d = c.clone();
        d.admin.token = Some(sluice_config::Secret::new("fedcba9876543210"));
        assert_eq!(changed_keys(&base, &c), ["admin.token"]);
        assert_eq!(
            changed_keys(&c, &d),
            ["a secret (admin.token or a telemetry.otlp_* value)"]
        );
    }

    #[tokio::test]
    async fn a_bad_file_keeps_the_policies_in_force_and_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        let good = "[[policy]]\nname = \"a\"\ngroup = \"g\"\nrequests_per_sec = 1\n";
        std::fs::write(&path, good).unwrap();
        let (throttle, stats) = (Throttle::new(), Arc::new(ProxyStats::default()));
        let mut r = Reloader::new(Some(path.clone()), throttle.clone(), stats.clone());
        let c = r.check().await.unwrap().unwrap();
        assert_eq!(c.added, ["a"]);
        assert!(r.check().await.is_none(), "unchanged: not re-read");
        std::fs::write(&path, "[[policy]]\nname = \"a\"\nrequests_per_sec = 0\n").unwrap();
        let err = r.check().await.unwrap().unwrap_err();
        assert_eq!(
            err.paths(),
            ["policy[a].requests_per_sec", "policy[a].match"]
        );
        assert_eq!(ProxyStats::get(&stats.throttle_reload_failures), 1);
        assert_eq!(throttle.status().len(), 1);
        assert!(r.check().await.is_none(), "a bad version is reported once");
        std::fs::remove_file(&path).unwrap();
        assert!(r.check().await.unwrap().is_err());
        assert_eq!(ProxyStats::get(&stats.throttle_reload_failures), 2);
        assert_eq!(throttle.status()[0].spec.name, "a");
        std::fs::write(&path, "").unwrap();
        let c = r.reload().await.unwrap().unwrap();
        assert_eq!(c.removed, ["a"]);
        assert!(throttle.status().is_empty());
        let mut none = Reloader::new(None, throttle, stats);
        assert!(none.reload().await.is_none());
    }
}
