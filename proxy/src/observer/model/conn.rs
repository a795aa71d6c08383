//! One proxied connection, as the observer knows it.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::client::{api_slot, ApiCount, ApiCounts, ClientKey};

/// Groups a connection remembers having seen in its coordinator traffic.
pub const MAX_CONN_GROUPS: usize = 16;

/// One proxied connection.
#[derive(Debug, Clone)]
pub struct Conn {
    /// Client address and port.
    pub client_addr: SocketAddr,
    /// When it was opened.
    pub opened: Instant,
    /// Last frame seen.
    pub last_activity: Instant,
    /// `client.id` from its request headers.
    pub client_id: Option<Arc<str>>,
    /// The client key its open connection is counted under (from its first request on; moves
    /// with a `client.id` that changes mid-stream).
    pub counted_as: Option<ClientKey>,
    /// Client software name and version (ApiVersions v3+).
    pub software: Option<(String, String)>,
    /// SASL principal, where visible.
    pub principal: Option<String>,
    /// Requests and bytes by API key and version.
    pub api: ApiCounts,
    /// Bytes of request frames (client → broker).
    pub bytes_in: u64,
    /// Bytes of response frames (broker → client).
    pub bytes_out: u64,
    /// A follower broker's replica fetches, not a consumer.
    pub replica: bool,
    /// Groups seen in this connection's coordinator traffic (at most [`MAX_CONN_GROUPS`]).
    pub groups: BTreeSet<Arc<str>>,
    /// Group and member of the last JoinGroup / SyncGroup / ConsumerGroupHeartbeat request
    /// (for its response).
    pub pending_group: Option<(Arc<str>, String)>,
}

impl Conn {
    /// A connection opened at `opened`.
    pub fn new(client_addr: SocketAddr, opened: Instant) -> Conn {
        Conn {
            client_addr,
            opened,
            last_activity: opened,
            client_id: None,
            counted_as: None,
            software: None,
            principal: None,
            api: ApiCounts::new(),
            bytes_in: 0,
            bytes_out: 0,
            replica: false,
            groups: BTreeSet::new(),
            pending_group: None,
        }
    }

    /// Its client key.
    pub fn key(&self) -> ClientKey {
        (
            self.client_addr.ip(),
            self.client_id.clone().unwrap_or_else(|| Arc::from("")),
        )
    }

    /// The count of `api_key`/`api_version` (unusual numbers share one, see [`api_slot`]).
    pub fn api_count(&mut self, api_key: i16, api_version: i16) -> &mut ApiCount {
        self.api.entry(api_slot(api_key, api_version)).or_default()
    }

    /// Remembers that its coordinator traffic named `group`.
    pub fn saw_group(&mut self, group: &str) {
        if self.groups.len() < MAX_CONN_GROUPS && !self.groups.contains(group) {
            self.groups.insert(Arc::from(group));
        }
    }
}
