//! Attribute keys (OpenTelemetry messaging semantic conventions where one applies); API names
//! come from [`crate::stats::api_name`].

/// `messaging.system` (always `kafka`).
pub const SYSTEM: &str = "messaging.system";
/// `messaging.client.id`.
pub const CLIENT_ID: &str = "messaging.client.id";
/// `network.peer.address`: the client's host.
pub const PEER_ADDRESS: &str = "network.peer.address";
/// `network.peer.port`.
pub const PEER_PORT: &str = "network.peer.port";
/// `enduser.id`: the authenticated principal (SASL user name, OAUTHBEARER `sub` claim, TLS
/// client certificate subject).
pub const ENDUSER_ID: &str = "enduser.id";
/// A SASL mechanism, e.g. `SCRAM-SHA-512`.
pub const SASL_MECHANISM: &str = "sluice.sasl.mechanism";
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
/// Why Sluice closed a connection: `idle` or `half_closed`.
pub const TIMEOUT: &str = "sluice.timeout";
/// A throttle policy's name.
pub const POLICY: &str = "sluice.policy";
/// A throttle policy's mode: `enforce` or `dry-run`.
pub const MODE: &str = "sluice.mode";
/// What happened to a throttled Fetch response's `throttle_time_ms`: `set`, `missed` or
/// `forgotten`.
pub const HINT: &str = "sluice.throttle.hint";
/// Why a connection was refused: `per_host_open`, `per_host_rate`, `per_client_open` or
/// `per_client_rate`.
pub const REASON: &str = "sluice.reason";
/// Why a TLS handshake on a client listener failed: `plaintext`, `timeout`, `closed`,
/// `no_client_certificate`, `bad_client_certificate`, `client_alert` or `protocol`.
pub const TLS_FAILURE: &str = "sluice.tls.failure";
/// The broker a sidecar fronts (resource attribute).
pub const BROKER: &str = "sluice.broker";
/// The overflow series of a capped instrument carries only this attribute, set to true.
pub const OVERFLOW: &str = "otel.metric.overflow";

pub use crate::stats::api_name;
