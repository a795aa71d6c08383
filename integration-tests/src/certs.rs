//! Certificates made when a test starts (nothing checked in that could expire): a CA, the
//! server certificate that the broker and Sluice both present (for `localhost` and
//! `127.0.0.1`), client certificates (a good one, an expired one, one from another CA), all
//! written as PEM files into a temporary directory.

use std::path::{Path, PathBuf};

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
};

/// One certificate with its key: `NAME.pem` (the certificate), `NAME.key` (its PKCS#8 key)
/// and `NAME.keystore.pem` (key then certificate, what Kafka's `PEM` keystore reads).
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, PKCS#8, unencrypted).
    pub key: PathBuf,
    /// Key and certificate in one file, for `ssl.keystore.type=PEM`.
    pub keystore: PathBuf,
}

/// Every file a TLS test needs, in a directory removed on drop (or, when the test process
/// died first, by the next broker's clean-up of stale `sluice-kafka-<pid>-*` directories).
#[derive(Debug)]
pub struct Pki {
    dir: PathBuf,
    /// The CA that signs the server and the good client certificates (PEM).
    pub ca: PathBuf,
    /// Another CA, which signed nothing the server trusts (PEM).
    pub other_ca: PathBuf,
    /// The server certificate (broker and Sluice), for `localhost` and `127.0.0.1`.
    pub server: CertFiles,
    /// A valid client certificate, subject [`CLIENT_SUBJECT`].
    pub client: CertFiles,
    /// A client certificate from the CA that expired in 2021.
    pub expired_client: CertFiles,
    /// A client certificate from the other CA.
    pub foreign_client: CertFiles,
}

/// The good client certificate's subject, as an RFC 4514 string (what Kafka's default SSL
/// principal builder and Sluice show).
pub const CLIENT_SUBJECT: &str = "CN=app-1,O=payments";

impl Pki {
    /// Makes the CAs and certificates and writes them.
    pub fn new() -> Pki {
        let dir = std::env::temp_dir().join(format!("{}-pki", crate::unique("sluice-kafka")));
        std::fs::create_dir_all(&dir).expect("a directory for certificates");
        let ca = Issuer::new("Sluice Test CA");
        let other = Issuer::new("Some Other CA");
        let p = dir.as_path();
        let server = ca.leaf("localhost", None, &["localhost", "127.0.0.1"], (2020, 2100));
        let client = ca.leaf("app-1", Some("payments"), &[], (2020, 2100));
        let expired = ca.leaf("expired-app", None, &[], (2020, 2021));
        let foreign = other.leaf("foreign-app", None, &[], (2020, 2100));
        Pki {
            ca: write(p, "ca.pem", &ca.issuer.pem()),
            other_ca: write(p, "other-ca.pem", &other.issuer.pem()),
            server: server.write(p, "server"),
            client: client.write(p, "client"),
            expired_client: expired.write(p, "expired-client"),
            foreign_client: foreign.write(p, "foreign-client"),
            dir,
        }
    }

    /// The directory the files are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Issuer {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

struct Leaf {
    cert: String,
    key: String,
}

impl Issuer {
    fn new(name: &str) -> Issuer {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2100, 1, 1);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Issuer { issuer }
    }

    /// A certificate for `names` (DNS names or IP addresses), valid from January 1st of
    /// `years.0` to January 1st of `years.1`.
    fn leaf(&self, cn: &str, org: Option<&str>, names: &[&str], years: (i32, i32)) -> Leaf {
        let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        // Encoded O then CN: RFC 4514 writes the last one first, "CN=...,O=...".
        if let Some(org) = org {
            params
                .distinguished_name
                .push(DnType::OrganizationName, org);
        }
        params.distinguished_name.push(DnType::CommonName, cn);
        params.not_before = date_time_ymd(years.0, 1, 1);
        params.not_after = date_time_ymd(years.1, 1, 1);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

impl Leaf {
    fn write(&self, dir: &Path, name: &str) -> CertFiles {
        CertFiles {
            cert: write(dir, &format!("{name}.pem"), &self.cert),
            key: write(dir, &format!("{name}.key"), &self.key),
            keystore: write(
                dir,
                &format!("{name}.keystore.pem"),
                &format!("{}{}", self.key, self.cert),
            ),
        }
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path
}
