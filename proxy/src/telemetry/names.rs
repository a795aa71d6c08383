//! Attribute keys (OpenTelemetry messaging semantic conventions where one applies) and the
//! names of Kafka APIs as they appear in metrics and spans.

use std::sync::OnceLock;

use kafka_protocol::messages::ApiKey;

/// `messaging.system` (always `kafka`).
pub const SYSTEM: &str = "messaging.system";
/// `messaging.client.id`.
pub const CLIENT_ID: &str = "messaging.client.id";
/// `network.peer.address`: the client's host.
pub const PEER_ADDRESS: &str = "network.peer.address";
/// `network.peer.port`.
pub const PEER_PORT: &str = "network.peer.port";
/// `messaging.consumer.group.name`.
pub const GROUP: &str = "messaging.consumer.group.name";
/// `messaging.destination.name`: the topic.
pub const TOPIC: &str = "messaging.destination.name";
/// `messaging.destination.partition.id`.
pub const PARTITION: &str = "messaging.destination.partition.id";
/// `network.io.direction`: `receive` (requests from the client) or `transmit` (responses).
pub const DIRECTION: &str = "network.io.direction";
/// `error.type`.
pub const ERROR_TYPE: &str = "error.type";
/// Kafka API name, e.g. `Fetch`.
pub const API_NAME: &str = "kafka.api.name";
/// Kafka API version.
pub const API_VERSION: &str = "kafka.api.version";
/// Kafka API key number.
pub const API_KEY: &str = "kafka.api.key";
/// Correlation id of a request/response pair.
pub const CORRELATION_ID: &str = "kafka.correlation_id";
/// Kafka error code of a response.
pub const ERROR_CODE: &str = "kafka.error_code";
/// Where topic bytes went: `produce`, `consume`, `replicate`.
pub const FLOW: &str = "sluice.flow";
/// Finding kind.
pub const FINDING_KIND: &str = "sluice.finding.kind";
/// Finding severity.
pub const FINDING_SEVERITY: &str = "sluice.finding.severity";
/// Client software name (KIP-511).
pub const SOFTWARE_NAME: &str = "sluice.client.software.name";
/// Client software version.
pub const SOFTWARE_VERSION: &str = "sluice.client.software.version";
/// The instrument a telemetry-health figure is about.
pub const INSTRUMENT: &str = "sluice.instrument";
/// Why a span was kept: `ratio`, `error`, `slow` or `finding`.
pub const SAMPLED_BY: &str = "sluice.sampled_by";
/// Throttle action (reserved for throttling).
pub const THROTTLE_ACTION: &str = "sluice.throttle.action";
/// The broker a sidecar fronts (resource attribute).
pub const BROKER: &str = "sluice.broker";
/// The overflow series of a capped instrument carries only this attribute, set to true.
pub const OVERFLOW: &str = "otel.metric.overflow";

/// The name of an API key: `Fetch`, `OffsetCommit`, … or `ApiKey<n>` for unknown numbers.
pub fn api_name(key: i16) -> &'static str {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    static UNKNOWN: &str = "Unknown";
    let names = NAMES.get_or_init(|| {
        (0..128i16)
            .map(|k| {
                ApiKey::try_from(k)
                    .map(|a| format!("{a:?}"))
                    .unwrap_or_else(|_| format!("ApiKey{k}"))
            })
            .collect()
    });
    usize::try_from(key)
        .ok()
        .and_then(|k| names.get(k))
        .map(String::as_str)
        .unwrap_or(UNKNOWN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_names_are_kafka_names() {
        assert_eq!(api_name(1), "Fetch");
        assert_eq!(api_name(8), "OffsetCommit");
        assert_eq!(api_name(68), "ConsumerGroupHeartbeat");
        assert_eq!(api_name(127), "ApiKey127");
        assert_eq!(api_name(-3), "Unknown");
    }
}
