//! TLS from Sluice to the broker (`[upstream_tls]`): roots from `ca`, SNI and the name checked
//! from `server_name` or the upstream's host, an optional client certificate.

use std::sync::Arc;
use std::time::SystemTime;

use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use sluice_config::tls::{self as files, FileProblem};
use sluice_config::{Upstream, UpstreamTlsConfig};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// The connector to one listener's broker.
#[derive(Clone)]
pub struct UpstreamTls {
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("server_name", &self.name)
            .finish()
    }
}

impl UpstreamTls {
    /// The connector for `settings` (`None`: plaintext to the broker), reading the files now.
    pub fn new(
        settings: &UpstreamTlsConfig,
        upstream: &Upstream,
    ) -> Result<Option<UpstreamTls>, Vec<FileProblem>> {
        let Some(ca) = &settings.ca else {
            return Ok(None);
        };
        let now = SystemTime::now();
        let roots = files::roots("ca", ca, now).map_err(|p| vec![p])?;
        let builder = ClientConfig::builder_with_provider(files::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| vec![problem("ca", e)])?
            .with_root_certificates(roots);
        let config = match (&settings.cert, &settings.key) {
            (Some(cert), Some(key)) => {
                let identity = files::identity(cert, key, now)?;
                builder.with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(
                    identity,
                )))
            }
            _ => builder.with_no_client_auth(),
        };
        let host = settings
            .server_name
            .clone()
            .unwrap_or_else(|| upstream.host.clone());
        let name = ServerName::try_from(host).map_err(|e| vec![problem("server_name", e)])?;
        Ok(Some(UpstreamTls {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            name,
        }))
    }

    /// Runs the client handshake on a connection to the broker.
    pub async fn connect(&self, tcp: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        self.connector.connect(self.name.clone(), tcp).await
    }
}

fn problem(key: &'static str, e: impl std::fmt::Display) -> FileProblem {
    FileProblem {
        key,
        message: e.to_string(),
    }
}
