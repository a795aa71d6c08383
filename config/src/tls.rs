//! Reading and checking the TLS files a configuration names: certificate chains, private keys
//! and CA bundles, all PEM. Used when the configuration is loaded (every problem named before
//! a port is bound) and by the proxy when it builds, and later re-reads, its TLS settings.
//!
//! Messages name the file and what is wrong with it, never its contents.

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;

use crate::error::{ConfigError, Origin};
use crate::listener::{ClientAuth, ListenerRef};

/// The crypto provider every TLS setting uses: rustls' `ring` provider (it builds for the
/// static musl binary without cmake; rustls marks it deprecated only for lacking
/// post-quantum key exchange).
#[allow(deprecated)]
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A problem with one file, naming the key that points at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProblem {
    /// The key, relative to its section: `cert`, `key`, `client_ca` or `ca`.
    pub key: &'static str,
    /// What is wrong, naming the file.
    pub message: String,
}

fn problem(key: &'static str, path: &Path, what: impl std::fmt::Display) -> FileProblem {
    FileProblem {
        key,
        message: format!("{}: {what}", path.display()),
    }
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, FileProblem> {
    std::fs::read(path).map_err(|e| problem(key, path, format_args!("cannot read: {e}")))
}

/// A PEM error in words that quote nothing from the file.
fn pem_error(e: &pem::Error) -> &'static str {
    match e {
        pem::Error::NoItemsFound => "no PEM item of the expected kind",
        pem::Error::Io(_) => "cannot read",
        pem::Error::Base64Decode(_) => "a PEM section is not valid base64",
        _ => "not a valid PEM file",
    }
}

/// The certificates of a PEM file (at least one), each checked to be valid now.
fn certs(
    key: &'static str,
    path: &Path,
    now: SystemTime,
) -> Result<Vec<CertificateDer<'static>>, FileProblem> {
    let bytes = read(key, path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| problem(key, path, pem_error(&e)))?;
    if certs.is_empty() {
        return Err(problem(
            key,
            path,
            "no certificate (expected a PEM `CERTIFICATE` section)",
        ));
    }
    for (i, der) in certs.iter().enumerate() {
        validity(der, now).map_err(|what| {
            let which = if i == 0 {
                "the certificate".to_owned()
            } else {
                format!("certificate {} in the file", i + 1)
            };
            problem(key, path, format_args!("{which} {what}"))
        })?;
    }
    Ok(certs)
}

/// Whether a certificate is valid at `now`: `Err` says how not.
pub fn validity(der: &[u8], now: SystemTime) -> Result<(), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|_| "is not a valid X.509 certificate".to_owned())?;
    let now = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let v = cert.validity();
    if now < v.not_before.timestamp() {
        return Err(format!("is not valid yet (not before {})", v.not_before));
    }
    if now > v.not_after.timestamp() {
        return Err(format!("has expired (not after {})", v.not_after));
    }
    Ok(())
}

/// A certificate chain and its private key, read, checked to match and to be valid now.
pub fn identity(
    cert: &Path,
    key: &Path,
    now: SystemTime,
) -> Result<Arc<CertifiedKey>, Vec<FileProblem>> {
    let chain = certs("cert", cert, now);
    let private = read("key", key).and_then(|bytes| {
        PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
            pem::Error::NoItemsFound => problem(
                "key",
                key,
                "no private key (expected a PEM `PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY` section; encrypted keys are not supported)",
            ),
            e => problem("key", key, pem_error(&e)),
        })
    });
    let (chain, private) = match (chain, private) {
        (Ok(c), Ok(k)) => (c, k),
        (c, k) => return Err(c.err().into_iter().chain(k.err()).collect()),
    };
    let signing = provider()
        .key_provider
        .load_private_key(private)
        .map_err(|_| {
            vec![problem(
                "key",
                key,
                "not a usable private key (RSA, ECDSA P-256/P-384 or Ed25519)",
            )]
        })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(Arc::new(certified))
        }
        Err(_) => Err(vec![problem(
            "key",
            key,
            format_args!("does not match the certificate in {}", cert.display()),
        )]),
    }
}

/// The CA certificates of a PEM bundle, as trust roots.
pub fn roots(
    key: &'static str,
    path: &Path,
    now: SystemTime,
) -> Result<Arc<RootCertStore>, FileProblem> {
    let mut store = RootCertStore::empty();
    for der in certs(key, path, now)? {
        store
            .add(der)
            .map_err(|_| problem(key, path, "a certificate cannot be used as a trust root"))?;
    }
    Ok(Arc::new(store))
}

/// Checks every TLS setting of one listener and the files it names; appends a problem per
/// bad key, named with the listener's prefix (`tls.cert`, `listeners[tls].tls.key`).
pub(crate) fn check(l: &ListenerRef<'_>, origin: &Origin, errors: &mut Vec<ConfigError>) {
    let now = SystemTime::now();
    let mut push = |section: &str, key: &str, message: String| {
        errors.push(ConfigError {
            path: format!("{}{section}.{key}", l.prefix),
            origin: origin.clone(),
            message,
        })
    };
    let tls = l.tls;
    match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            if let Err(problems) = identity(cert, key, now) {
                for p in problems {
                    push("tls", p.key, p.message);
                }
            }
        }
        (Some(_), None) => push("tls", "key", "required with `tls.cert`".to_owned()),
        (None, Some(_)) => push("tls", "cert", "required with `tls.key`".to_owned()),
        (None, None) => {
            if tls.client_ca.is_some() || tls.client_auth_set.is_some() {
                push("tls", "cert", "required with `tls.client_ca` or `tls.client_auth` (TLS is on only with a certificate and key)".to_owned());
            }
        }
    }
    if let Some(ca) = &tls.client_ca {
        if let Err(p) = roots("client_ca", ca, now) {
            push("tls", p.key, p.message);
        }
    } else if matches!(
        tls.client_auth(),
        ClientAuth::Optional | ClientAuth::Required
    ) {
        push(
            "tls",
            "client_auth",
            "needs `tls.client_ca` (the CA bundle client certificates are checked against)"
                .to_owned(),
        );
    }
    let up = l.upstream_tls;
    match &up.ca {
        Some(ca) => {
            if let Err(p) = roots("ca", ca, now) {
                push("upstream_tls", p.key, p.message);
            }
        }
        None if up.server_name.is_some() || up.cert.is_some() || up.key.is_some() => push(
            "upstream_tls",
            "ca",
            "required: TLS to the broker is on only with the roots its certificate chains to"
                .to_owned(),
        ),
        None => {}
    }
    match (&up.cert, &up.key) {
        (Some(cert), Some(key)) => {
            if let Err(problems) = identity(cert, key, now) {
                for p in problems {
                    push("upstream_tls", p.key, p.message);
                }
            }
        }
        (Some(_), None) => push(
            "upstream_tls",
            "key",
            "required with `upstream_tls.cert`".to_owned(),
        ),
        (None, Some(_)) => push(
            "upstream_tls",
            "cert",
            "required with `upstream_tls.key`".to_owned(),
        ),
        (None, None) => {}
    }
    if let Some(name) = &up.server_name {
        if rustls::pki_types::ServerName::try_from(name.as_str()).is_err() {
            push(
                "upstream_tls",
                "server_name",
                format!("`{name}` is not a DNS name or IP address"),
            );
        }
    }
}
