//! `[tls]`, `[upstream_tls]` and `[[listeners]]`: every bad value named, with its key, before
//! anything binds a port; good ones parsed.

#[path = "../../proxy/tests/support/certs.rs"]
mod certs;

use std::io::Write;
use std::path::Path;

use certs::{write, Ca, LeafSpec};
use sluice_config::{ClientAuth, Loader, TlsVersion};

fn load(text: &str) -> Result<sluice_config::Config, sluice_config::ConfigErrors> {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    Loader::new().file(f.path()).load()
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

#[test]
fn good_tls_settings_are_parsed() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test ca");
    let (cert, key) = ca.leaf(LeafSpec::default()).write(dir.path(), "server");
    let ca_file = write(dir.path(), "ca.pem", &ca.pem());
    let c = load(&format!(
        "listen = \"127.0.0.1:9093\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\n\
         min_version = \"1.3\"\nhandshake_timeout = \"3s\"\n\
         [upstream_tls]\nca = \"{}\"\nserver_name = \"broker-1.example\"\n\
         [[listeners]]\nname = \"plain\"\nlisten = \"127.0.0.1:9094\"\nupstream = \"127.0.0.1:19094\"\n\
         [[listeners]]\nname = \"tls\"\nlisten = \"127.0.0.1:9095\"\nupstream = \"127.0.0.1:19095\"\n\
         [listeners.tls]\ncert = \"{}\"\nkey = \"{}\"\nclient_auth = \"optional\"\nclient_ca = \"{}\"\n",
        p(&cert), p(&key), p(&ca_file), p(&ca_file), p(&cert), p(&key), p(&ca_file)
    ))
    .unwrap();
    assert!(c.tls.enabled());
    assert_eq!(
        c.tls.client_auth(),
        ClientAuth::Required,
        "the default with client_ca"
    );
    assert_eq!(c.tls.min_version, TlsVersion::V1_3);
    assert_eq!(c.tls.handshake_timeout.as_secs(), 3);
    assert_eq!(
        c.upstream_tls.server_name.as_deref(),
        Some("broker-1.example")
    );
    let names: Vec<_> = c
        .all_listeners()
        .iter()
        .map(|l| l.name.to_owned())
        .collect();
    assert_eq!(names, ["main", "plain", "tls"]);
    assert!(!c.listeners[0].tls.enabled());
    assert_eq!(c.listeners[1].tls.client_auth(), ClientAuth::Optional);
    assert_eq!(c.listeners[1].upstream.to_string(), "127.0.0.1:19095");
    // The effective configuration reads back the same.
    let back = load(&c.to_toml()).unwrap();
    assert_eq!(back, c);
    // Without any of it: plaintext, as before.
    let c = load("").unwrap();
    assert!(!c.tls.enabled() && !c.upstream_tls.enabled() && c.listeners.is_empty());
}

#[test]
fn every_bad_file_is_named_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test ca");
    let (cert, key) = ca.leaf(LeafSpec::default()).write(dir.path(), "server");
    let (other_cert, other_key) = ca.leaf(LeafSpec::default()).write(dir.path(), "other");
    let (expired, expired_key) = ca
        .leaf(LeafSpec {
            years: (2001, 2002),
            ..LeafSpec::default()
        })
        .write(dir.path(), "expired");
    let (future, future_key) = ca
        .leaf(LeafSpec {
            years: (2090, 2100),
            ..LeafSpec::default()
        })
        .write(dir.path(), "future");
    let no_cert = write(dir.path(), "nocert.pem", "just some text\n");
    let missing = dir.path().join("missing.pem");
    let _ = other_cert;

    let check = |tls: &str, want: &[&str], words: &[&str]| {
        let err = load(&format!("[tls]\n{tls}")).unwrap_err();
        let mut paths = err.paths();
        paths.sort();
        assert_eq!(paths, want, "{err}");
        let text = err.to_string();
        for w in words {
            assert!(text.contains(w), "`{w}` not in {text}");
        }
        // No key material in any message.
        assert!(!text.contains("-----BEGIN"), "{text}");
    };
    check(
        &format!("cert = \"{}\"\nkey = \"{}\"\n", p(&missing), p(&key)),
        &["tls.cert"],
        &["missing.pem", "cannot read"],
    );
    check(
        &format!("cert = \"{}\"\nkey = \"{}\"\n", p(&no_cert), p(&key)),
        &["tls.cert"],
        &["nocert.pem", "no certificate"],
    );
    check(
        &format!("cert = \"{}\"\nkey = \"{}\"\n", p(&cert), p(&cert)),
        &["tls.key"],
        &["server.pem", "no private key"],
    );
    check(
        &format!("cert = \"{}\"\nkey = \"{}\"\n", p(&cert), p(&other_key)),
        &["tls.key"],
        &["other.key", "does not match the certificate"],
    );
    check(
        &format!(
            "cert = \"{}\"\nkey = \"{}\"\n",
            p(&expired),
            p(&expired_key)
        ),
        &["tls.cert"],
        &["expired.pem", "has expired"],
    );
    check(
        &format!("cert = \"{}\"\nkey = \"{}\"\n", p(&future), p(&future_key)),
        &["tls.cert"],
        &["future.pem", "not valid yet"],
    );
    check(
        &format!(
            "cert = \"{}\"\nkey = \"{}\"\nclient_auth = \"required\"\n",
            p(&cert),
            p(&key)
        ),
        &["tls.client_auth"],
        &["needs `tls.client_ca`"],
    );
    check(
        &format!(
            "cert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\nmin_version = \"1.1\"\nclient_auth = \"maybe\"\n",
            p(&cert), p(&key), p(&missing)
        ),
        &["tls.client_auth", "tls.min_version"],
        &["`1.1` is not a TLS version", "`maybe` is not none, optional or required"],
    );
    check(
        &format!("cert = \"{}\"\nclient_ca = \"{}\"\n", p(&cert), p(&missing)),
        &["tls.client_ca", "tls.key"],
        &["required with `tls.cert`", "missing.pem"],
    );
    check(
        &format!(
            "cert = \"{}\"\nkey = \"{}\"\nhandshake_timeout = \"0s\"\nkee = 1\n",
            p(&cert),
            p(&key)
        ),
        &["tls.handshake_timeout", "tls.kee"],
        &[],
    );
    // Upstream TLS.
    let err = load(&format!(
        "[upstream_tls]\nserver_name = \"broker\"\ncert = \"{}\"\n",
        p(&cert)
    ))
    .unwrap_err();
    assert_eq!(
        err.paths(),
        ["upstream_tls.ca", "upstream_tls.key"],
        "{err}"
    );
    let err = load(&format!(
        "[upstream_tls]\nca = \"{}\"\nserver_name = \"not a name!\"\n",
        p(&no_cert)
    ))
    .unwrap_err();
    assert_eq!(
        err.paths(),
        ["upstream_tls.ca", "upstream_tls.server_name"],
        "{err}"
    );
}

#[test]
fn the_environment_sets_tls_and_names_its_variable() {
    let err = Loader::new()
        .env([
            (
                "SLUICE_TLS_CERT".to_owned(),
                "/nonexistent/server.pem".to_owned(),
            ),
            (
                "SLUICE_TLS_KEY".to_owned(),
                "/nonexistent/server.key".to_owned(),
            ),
        ])
        .load()
        .unwrap_err();
    assert_eq!(err.paths(), ["tls.cert", "tls.key"]);
    assert!(err.to_string().contains("env SLUICE_TLS_CERT"), "{err}");
}

#[test]
fn listeners_are_checked_each_and_together() {
    let dir = tempfile::tempdir().unwrap();
    let missing = p(&dir.path().join("missing.pem"));
    let err = load(&format!(
        "listen = \"127.0.0.1:9093\"\n\
         [[listeners]]\nname = \"a\"\nlisten = \"127.0.0.1:9093\"\nupstream = \"127.0.0.1:1\"\n\
         [[listeners]]\nname = \"a\"\nlisten = \"127.0.0.1:9094\"\nupstream = \"127.0.0.1:2\"\n\
         [[listeners]]\nname = \"main\"\nlisten = \"127.0.0.1:9094\"\nupstream = \"127.0.0.1:3\"\n\
         [[listeners]]\nname = \"b\"\nlisten = \"127.0.0.1:9095\"\nupstream = \"127.0.0.1:3\"\n\
         [listeners.tls]\ncert = \"{missing}\"\nkey = \"{missing}\"\n"
    ))
    .unwrap_err();
    let mut paths = err.paths();
    paths.sort();
    assert_eq!(
        paths,
        [
            "listeners[a].listen",
            "listeners[a].name",
            "listeners[b].tls.cert",
            "listeners[b].tls.key",
            "listeners[main].listen",
            "listeners[main].name",
        ],
        "{err}"
    );
    let err = load(
        "[[listeners]]\nlisten = \"nowhere\"\nport = 1\n\
         [[listeners]]\nname = \"x y\"\nupstream = \"127.0.0.1:1\"\nlisten = \"127.0.0.1:1\"\ntls = 1\n\
         [[listeners]]\nname = \"c\"\n[listeners.tls]\nmin_version = \"2\"\n",
    )
    .unwrap_err();
    let mut paths = err.paths();
    paths.sort();
    assert_eq!(
        paths,
        [
            "listeners[0].listen",
            "listeners[0].port",
            "listeners[0].upstream",
            "listeners[1].name",
            "listeners[1].tls",
            "listeners[c].listen",
            "listeners[c].tls.min_version",
            "listeners[c].upstream",
        ],
        "{err}"
    );
}
