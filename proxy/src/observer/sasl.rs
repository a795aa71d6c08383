//! SASL on a connection: the mechanism it asked for, the principal it claims, and the broker's
//! verdict. A claimed name becomes the connection's (and its client key's) principal only when
//! the broker answers the exchange's last step with error code 0; a refusal is counted per
//! mechanism, marked on the connection and its client key, and logged at `info` with the client
//! address, the mechanism and the claimed name (a name, never a secret: events carry none).

use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_protocol::event::SaslInfo;

use super::apply::Apply;

/// Mechanisms counted under their own name; further ones share [`OTHER`].
pub const MAX_MECHANISMS: usize = 8;

/// The name a mechanism that is not kept is counted under.
pub const OTHER: &str = "other";

/// Where a connection's SASL exchange stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslState {
    /// A handshake or a step was seen, the verdict not yet.
    InProgress,
    /// The broker accepted the exchange.
    Authenticated,
    /// The broker refused it.
    Failed,
}

impl SaslState {
    /// As shown in the views: `in_progress`, `authenticated`, `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            SaslState::InProgress => "in_progress",
            SaslState::Authenticated => "authenticated",
            SaslState::Failed => "failed",
        }
    }
}

/// A mechanism name as counted: a Kafka-like name (`PLAIN`, `SCRAM-SHA-512`, `OAUTHBEARER`,
/// up to 32 characters of `A-Z 0-9 - _`) as sent, anything else [`OTHER`].
pub fn mechanism_name(m: &str) -> Arc<str> {
    let kafka_like = !m.is_empty()
        && m.len() <= 32
        && m.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    Arc::from(if kafka_like { m } else { OTHER })
}

/// Counts one failure of `mechanism`, at most [`MAX_MECHANISMS`] names kept (then [`OTHER`]).
pub fn count_failure(by: &mut BTreeMap<Arc<str>, u64>, mechanism: Arc<str>) {
    let key = if by.len() >= MAX_MECHANISMS && !by.contains_key(&mechanism) {
        Arc::from(OTHER)
    } else {
        mechanism
    };
    *by.entry(key).or_default() += 1;
}

impl Apply<'_> {
    /// A SASL event of this connection.
    pub(super) fn sasl(&mut self, info: &SaslInfo) {
        match info {
            SaslInfo::Mechanism(m) => {
                self.conn.mechanism = Some(mechanism_name(m));
                self.conn.claimed = None;
                self.conn.sasl = Some(SaslState::InProgress);
            }
            SaslInfo::Principal(p) => {
                self.conn.claimed = Some(p.clone());
                self.conn.sasl = Some(SaslState::InProgress);
            }
            SaslInfo::Outcome {
                error_code: 0,
                done: true,
                ..
            } => {
                self.conn.sasl = Some(SaslState::Authenticated);
                if let Some(p) = self.conn.claimed.take() {
                    self.conn.principal = Some(p);
                }
                self.client_principal();
            }
            SaslInfo::Outcome { error_code: 0, .. } => {}
            SaslInfo::Outcome {
                error_code,
                error_message,
                ..
            } => self.failed(*error_code, error_message.as_deref()),
        }
    }

    fn failed(&mut self, error_code: i16, error_message: Option<&str>) {
        self.conn.sasl = Some(SaslState::Failed);
        let mechanism = self
            .conn
            .mechanism
            .clone()
            .unwrap_or_else(|| Arc::from(OTHER));
        let claimed = self.conn.claimed.take();
        tracing::info!(client.addr = %self.conn.client_addr,
            client.id = self.conn.client_id.as_deref().unwrap_or(""),
            sasl.mechanism = %mechanism, sasl.user = claimed.as_deref().unwrap_or(""),
            code = error_code, error = error_message.unwrap_or(""),
            "SASL authentication failed");
        count_failure(&mut self.model.sasl_failures, mechanism);
        let key = self
            .conn
            .counted_as
            .clone()
            .unwrap_or_else(|| self.conn.key());
        if let Some(c) = self.model.client(&key, self.now, self.cfg.max_clients) {
            c.sasl_failures += 1;
            c.sasl_failed = true;
        }
    }

    /// Copies the connection's principal to its client key.
    pub(super) fn client_principal(&mut self) {
        let Some(p) = &self.conn.principal else {
            return;
        };
        let Some(key) = self.conn.counted_as.clone() else {
            return;
        };
        if let Some(c) = self.model.client(&key, self.now, self.cfg.max_clients) {
            if c.principal.as_deref() != Some(p.as_str()) {
                c.principal = Some(Arc::from(p.as_str()));
            }
            if self.conn.sasl == Some(SaslState::Authenticated) {
                c.sasl_failed = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mechanism_names_are_bounded() {
        assert_eq!(&*mechanism_name("SCRAM-SHA-512"), "SCRAM-SHA-512");
        assert_eq!(&*mechanism_name("scram"), OTHER);
        assert_eq!(&*mechanism_name(&"A".repeat(33)), OTHER);
        assert_eq!(&*mechanism_name(""), OTHER);
        let mut by = BTreeMap::new();
        for i in 0..20 {
            count_failure(&mut by, mechanism_name(&format!("M{i}")));
        }
        assert_eq!(by.len(), MAX_MECHANISMS + 1);
        assert_eq!(by[OTHER], 20 - MAX_MECHANISMS as u64);
    }
}
