//! Throttling: the policies in force ([`Throttle`]), which connections each one holds back,
//! and what it held. The policy file's policies are replaced as a whole on reload; policies
//! added through the admin API live beside them until they expire or are removed.
//!
//! Enforcement (holding a matching connection's traffic to the caps, signalling
//! `throttle_time_ms`) is done by the connection's halves through its per-connection handle; this
//! module decides which connections a policy matches.

use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use serde::Serialize;
use sluice_config::PolicySpec;

/// Where a policy came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The policy file (`throttle.policy_file`).
    File,
    /// Added at run time through the admin API.
    Api,
}

/// A policy in force, with what it does now.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyStatus {
    /// The policy.
    #[serde(flatten)]
    pub spec: PolicySpec,
    /// Where it came from.
    pub source: Source,
    /// Connections it currently matches.
    pub connections: Vec<ThrottledConn>,
    /// Bytes held back so far (in dry-run: that would have been).
    pub held_bytes: u64,
    /// Time traffic was held so far, in milliseconds (in dry-run: would have been).
    pub held_ms: u64,
    /// Decisions to hold traffic so far.
    pub decisions: u64,
    /// What it held back, per group of the connections it held ("" when not known).
    pub groups: Vec<GroupHeld>,
}

/// What one policy held back from the connections of one group.
#[derive(Debug, Clone, Serialize)]
pub struct GroupHeld {
    /// Group ("" when not known).
    pub group: String,
    /// Bytes held back (dry-run: would have been).
    pub held_bytes: u64,
    /// Milliseconds held (dry-run: would have been).
    pub held_ms: u64,
}

/// One connection a policy currently matches.
#[derive(Debug, Clone, Serialize)]
pub struct ThrottledConn {
    /// Connection number.
    pub id: u64,
    /// Client address and port.
    pub client: String,
    /// `client.id`, when known.
    pub client_id: Option<String>,
    /// Group, when known.
    pub group: Option<String>,
}

/// Why a policy could not be removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoveError {
    /// No policy of that name.
    NotFound,
    /// It comes from the policy file: edit the file instead.
    FromFile,
}

/// Why a policy could not be added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddError {
    /// A policy of that name is already in force.
    NameTaken,
    /// Already expired.
    Expired,
}

#[derive(Debug, Default)]
struct Policies {
    file: Vec<PolicySpec>,
    api: Vec<PolicySpec>,
}

/// The policies in force; one per proxy, shared by the reloader, the admin API and every
/// connection.
#[derive(Debug, Default)]
pub struct Throttle {
    policies: RwLock<Arc<Policies>>,
}

impl Throttle {
    /// No policies.
    pub fn new() -> Arc<Throttle> {
        Arc::new(Throttle::default())
    }

    fn current(&self) -> Arc<Policies> {
        self.policies
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn replace(&self, f: impl FnOnce(&Policies) -> Policies) {
        let mut w = self.policies.write().unwrap_or_else(|e| e.into_inner());
        let next = f(&w);
        *w = Arc::new(next);
    }

    /// Replaces the policy file's policies (validated) as a whole: at start and on reload.
    /// A run-time policy with the same name as a file policy is dropped.
    pub fn set_file_policies(&self, file: Vec<PolicySpec>) {
        self.replace(|p| Policies {
            api: p
                .api
                .iter()
                .filter(|a| !file.iter().any(|f| f.name == a.name))
                .cloned()
                .collect(),
            file,
        });
    }

    /// Adds a run-time policy.
    pub fn add(&self, spec: PolicySpec) -> Result<(), AddError> {
        if spec.expired(SystemTime::now()) {
            return Err(AddError::Expired);
        }
        let mut result = Ok(());
        self.replace(|p| {
            if p.file.iter().chain(&p.api).any(|q| q.name == spec.name) {
                result = Err(AddError::NameTaken);
                return Policies {
                    file: p.file.clone(),
                    api: p.api.clone(),
                };
            }
            let mut api = p.api.clone();
            api.push(spec);
            Policies {
                file: p.file.clone(),
                api,
            }
        });
        result
    }

    /// Removes a run-time policy.
    pub fn remove(&self, name: &str) -> Result<(), RemoveError> {
        let mut result = Ok(());
        self.replace(|p| {
            if p.file.iter().any(|q| q.name == name) {
                result = Err(RemoveError::FromFile);
            } else if !p.api.iter().any(|q| q.name == name) {
                result = Err(RemoveError::NotFound);
            }
            Policies {
                file: p.file.clone(),
                api: p.api.iter().filter(|q| q.name != name).cloned().collect(),
            }
        });
        result
    }

    /// Every policy in force (expired ones left out), with what it does now.
    pub fn status(&self) -> Vec<PolicyStatus> {
        let now = SystemTime::now();
        let p = self.current();
        let with = |specs: &[PolicySpec], source| {
            specs
                .iter()
                .filter(|s| !s.expired(now))
                .map(move |spec| PolicyStatus {
                    spec: spec.clone(),
                    source,
                    connections: Vec::new(),
                    held_bytes: 0,
                    held_ms: 0,
                    decisions: 0,
                    groups: Vec::new(),
                })
                .collect::<Vec<_>>()
        };
        let mut out = with(&p.file, Source::File);
        out.extend(with(&p.api, Source::Api));
        out
    }
}
