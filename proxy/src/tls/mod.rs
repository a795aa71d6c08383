//! TLS termination on a client listener and TLS to the broker, with rustls (`ring` provider).
//!
//! - [`server`]: [`ServerTls`], one listener's server settings (certificate, key, client CA):
//!   built from the config, read per accepted connection, replaced whole by a re-read
//!   ([`ServerTls::reload`]) on SIGHUP or when a file changes. A bad new file changes nothing.
//!   Connections already open keep the settings they were accepted with.
//! - [`handshake`]: the server handshake of one connection, in its own task, bounded by
//!   `tls.handshake_timeout`; a failure named in plain words.
//! - [`upstream`]: [`UpstreamTls`], the connector to a TLS broker listener.
//! - [`subject`]: a client certificate's subject as an RFC 4514 string.
//!
//! Nothing here logs or returns the contents of a file: messages name files.

pub mod handshake;
pub mod server;
pub mod subject;
pub mod upstream;

pub use handshake::{Failure, Session};
pub use server::{Reloaded, ServerTls};
pub use upstream::UpstreamTls;
