//! [`ServerTls`]: one listener's TLS server settings (certificate, key, client CA), built from
//! the config, read per accepted connection, and replaced whole by a re-read
//! ([`ServerTls::reload`]). A bad new file changes nothing; open connections keep the settings
//! they were accepted with.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use sluice_config::tls::{self as files, FileProblem};
use sluice_config::{ClientAuth, TlsConfig, TlsVersion};

/// One listener's TLS server settings, re-readable.
#[derive(Debug)]
pub struct ServerTls {
    listener: Arc<str>,
    settings: TlsConfig,
    current: RwLock<Option<Arc<ServerConfig>>>,
    /// The files' modification times and sizes when last read.
    seen: Mutex<Vec<Stamp>>,
}

/// What identifies one version of a file without reading it.
type Stamp = Option<(SystemTime, u64)>;

/// What a re-read did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    /// No file changed since the last read (only when not forced).
    Unchanged,
    /// The files were read and are in force for new connections.
    Replaced,
    /// A file is bad: the settings in force stay. Each problem names its file.
    Kept(Vec<String>),
}

impl ServerTls {
    /// The settings of listener `listener`, read now. The config was validated, so the files
    /// were good a moment ago; if one went bad since, every handshake fails (and says so) until
    /// a re-read succeeds.
    pub fn new(listener: Arc<str>, settings: TlsConfig) -> Arc<ServerTls> {
        let tls = Arc::new(ServerTls {
            seen: Mutex::new(stamps(&settings)),
            current: RwLock::new(None),
            listener,
            settings,
        });
        match build(&tls.settings) {
            Ok(config) => *tls.write() = Some(Arc::new(config)),
            Err(problems) => {
                for p in problems {
                    tracing::error!(listener = %tls.listener, key = %format!("tls.{}", p.key),
                        problem = %p.message, "TLS settings unusable: handshakes on this listener fail until the files are fixed");
                }
            }
        }
        tls
    }

    /// The listener's name.
    pub fn listener(&self) -> &str {
        &self.listener
    }

    /// The settings.
    pub fn settings(&self) -> &TlsConfig {
        &self.settings
    }

    /// The server settings for a connection accepted now (`None`: none usable).
    pub fn config(&self) -> Option<Arc<ServerConfig>> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Option<Arc<ServerConfig>>> {
        self.current.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Re-reads the files if one changed since the last read (or always, `force`), and puts
    /// the new settings in force if they are good.
    pub fn reload(&self, force: bool) -> Reloaded {
        let now = stamps(&self.settings);
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if !force && *seen == now {
                return Reloaded::Unchanged;
            }
            *seen = now;
        }
        match build(&self.settings) {
            Ok(config) => {
                *self.write() = Some(Arc::new(config));
                Reloaded::Replaced
            }
            Err(problems) => Reloaded::Kept(
                problems
                    .into_iter()
                    .map(|p| format!("tls.{}: {}", p.key, p.message))
                    .collect(),
            ),
        }
    }
}

/// The files a listener's TLS settings read.
fn paths(settings: &TlsConfig) -> Vec<PathBuf> {
    [&settings.cert, &settings.key, &settings.client_ca]
        .into_iter()
        .flatten()
        .cloned()
        .collect()
}

fn stamps(settings: &TlsConfig) -> Vec<Stamp> {
    paths(settings)
        .iter()
        .map(|p| {
            let m = std::fs::metadata(p).ok()?;
            Some((m.modified().ok()?, m.len()))
        })
        .collect()
}

/// Reads the files and builds the server settings.
fn build(settings: &TlsConfig) -> Result<ServerConfig, Vec<FileProblem>> {
    let now = SystemTime::now();
    let (Some(cert), Some(key)) = (&settings.cert, &settings.key) else {
        return Err(vec![FileProblem {
            key: "cert",
            message: "TLS needs tls.cert and tls.key".to_owned(),
        }]);
    };
    let identity = files::identity(cert, key, now)?;
    let provider = files::provider();
    let versions: &[&rustls::SupportedProtocolVersion] = match settings.min_version {
        TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::V1_3 => &[&rustls::version::TLS13],
    };
    let other = |e: rustls::Error| {
        vec![FileProblem {
            key: "cert",
            message: format!("cannot build the TLS settings: {e}"),
        }]
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(other)?;
    let builder = match (settings.client_auth(), &settings.client_ca) {
        (ClientAuth::None, _) | (_, None) => builder.with_no_client_auth(),
        (auth, Some(ca)) => {
            let roots = files::roots("client_ca", ca, now).map_err(|p| vec![p])?;
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
            let verifier = if auth == ClientAuth::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier.build().map_err(|e| {
                vec![FileProblem {
                    key: "client_ca",
                    message: format!("{}: {e}", ca.display()),
                }]
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    Ok(builder.with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(identity))))
}
