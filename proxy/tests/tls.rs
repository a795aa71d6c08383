//! TLS on the client listener: bytes round-trip unchanged through a TLS listener to a
//! plaintext broker; mTLS refuses clients without a good certificate and names the subject of
//! those with one; a plaintext or silent client is closed and counted without touching other
//! connections. Certificates are made by the test (rcgen).

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sluice::tls::handshake::FailureKind;
use sluice::{Config, ProxyStats};
use support::certs::{client_config, write, Ca, LeafSpec};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::client::TlsStream;

const T: Duration = Duration::from_secs(10);

/// A CA, a server certificate from it, and the files (in `dir`, removed on drop).
struct Pki {
    #[allow(dead_code)]
    dir: tempfile::TempDir,
    ca: Ca,
    cert: PathBuf,
    key: PathBuf,
    ca_file: PathBuf,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("sluice test ca");
        let (cert, key) = ca.leaf(LeafSpec::default()).write(dir.path(), "server");
        let ca_file = write(dir.path(), "ca.pem", &ca.pem());
        Pki {
            dir,
            ca,
            cert,
            key,
            ca_file,
        }
    }

    /// `[tls]` with this PKI's server certificate.
    fn tls(&self, c: &mut Config) {
        c.tls.cert = Some(self.cert.clone());
        c.tls.key = Some(self.key.clone());
    }

    /// The same, with client certificates required from this PKI's CA.
    fn mtls(&self, c: &mut Config) {
        self.tls(c);
        c.tls.client_ca = Some(self.ca_file.clone());
    }
}

async fn tls_connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsStream<tokio::net::TcpStream>> {
    let tcp = connect(addr).await;
    tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// Writes `data` and reads as many bytes back (from an echo broker).
async fn echo(
    stream: &mut TlsStream<tokio::net::TcpStream>,
    data: &[u8],
) -> std::io::Result<Vec<u8>> {
    stream.write_all(data).await?;
    let mut back = vec![0u8; data.len()];
    stream.read_exact(&mut back).await?;
    Ok(back)
}

/// Whether the proxy refuses this client: the handshake or the first exchange fails, and
/// nothing comes back.
async fn refused(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> bool {
    let Ok(mut s) = tls_connect(addr, config).await else {
        return true;
    };
    within(
        "a refused client's first exchange",
        T,
        echo(&mut s, b"hello"),
    )
    .await
    .is_err()
}

fn failures(stats: &ProxyStats, kind: FailureKind) -> u64 {
    ProxyStats::get(&stats.tls_handshake_failures[kind.index()])
}

#[tokio::test]
async fn bytes_round_trip_unchanged_through_a_tls_listener() {
    let pki = Pki::new();
    let proxy = TestProxy::start(echo_server().await, |c| pki.tls(c)).await;
    let mut s = tls_connect(proxy.addr, client_config(&pki.ca.pem(), None))
        .await
        .unwrap();
    let data = random_bytes(20, 3 << 20);
    let (mut r, mut w) = tokio::io::split(&mut s);
    let (sent, got) = tokio::join!(
        async {
            write_chunked(&mut w, &data, 7).await;
            w.shutdown().await.unwrap();
        },
        read_hash(&mut r)
    );
    let () = sent;
    assert_eq!(got, (data.len() as u64, sha256(&data)));
    assert_eq!(
        ProxyStats::get(&proxy.stats.bytes_to_broker),
        data.len() as u64
    );
    proxy.shutdown(T).await;
}

#[tokio::test]
async fn mtls_refuses_clients_without_a_good_certificate_and_names_the_subject() {
    let pki = Pki::new();
    let mut observer = None;
    let proxy = TestProxy::start_with(
        echo_server().await,
        |c| pki.mtls(c),
        |p| {
            observer = Some(p.observer());
            p
        },
    )
    .await;
    let observer = observer.unwrap();
    let ca = pki.ca.pem();

    assert!(
        refused(proxy.addr, client_config(&ca, None)).await,
        "no certificate"
    );
    let stranger = Ca::new("another ca").leaf(LeafSpec {
        cn: "app-1",
        ..LeafSpec::default()
    });
    assert!(
        refused(proxy.addr, client_config(&ca, Some(&stranger))).await,
        "another CA"
    );
    let expired = pki.ca.leaf(LeafSpec {
        cn: "app-1",
        years: (2001, 2002),
        ..LeafSpec::default()
    });
    assert!(
        refused(proxy.addr, client_config(&ca, Some(&expired))).await,
        "expired"
    );
    wait_for("three refusals counted", T, || {
        failures(&proxy.stats, FailureKind::NoClientCertificate) == 1
            && failures(&proxy.stats, FailureKind::BadClientCertificate) == 2
    })
    .await;
    assert_eq!(
        ProxyStats::get(&proxy.stats.bytes_to_broker),
        0,
        "none reached the broker"
    );

    let good = pki.ca.leaf(LeafSpec {
        cn: "app-1",
        org: Some("payments"),
        ..LeafSpec::default()
    });
    let mut s = tls_connect(proxy.addr, client_config(&ca, Some(&good)))
        .await
        .unwrap();
    assert_eq!(echo(&mut s, b"kafka bytes").await.unwrap(), b"kafka bytes");
    wait_for("the subject as the connection's principal", T, || {
        observer
            .connections_json()
            .to_string()
            .contains("\"principal\":\"CN=app-1,O=payments\"")
    })
    .await;
    drop(s);
    proxy.shutdown(T).await;
}

#[tokio::test]
async fn a_plaintext_client_on_the_tls_port_is_closed_and_others_are_unaffected() {
    let pki = Pki::new();
    let proxy = TestProxy::start(echo_server().await, |c| pki.tls(c)).await;
    let mut good = tls_connect(proxy.addr, client_config(&pki.ca.pem(), None))
        .await
        .unwrap();
    assert_eq!(echo(&mut good, b"before").await.unwrap(), b"before");

    // A Kafka ApiVersions request as a PLAINTEXT client sends it: a size, then the header.
    let mut plain = connect(proxy.addr).await;
    plain
        .write_all(&[0, 0, 0, 10, 0, 18, 0, 3, 0, 0, 0, 1, 0, 0])
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    let n = within("the plaintext client closed", T, plain.read(&mut buf)).await;
    assert!(
        matches!(n, Ok(0) | Err(_)),
        "closed without an answer: {n:?}"
    );
    wait_for("counted as plaintext", T, || {
        failures(&proxy.stats, FailureKind::Plaintext) == 1
    })
    .await;

    assert_eq!(echo(&mut good, b"after").await.unwrap(), b"after");
    assert_eq!(
        ProxyStats::get(&proxy.stats.bytes_to_broker),
        11,
        "only the TLS client's bytes"
    );
    drop(good);
    proxy.shutdown(T).await;
}

#[tokio::test]
async fn a_silent_client_is_closed_at_the_handshake_timeout() {
    let pki = Pki::new();
    let proxy = TestProxy::start(echo_server().await, |c| {
        pki.tls(c);
        c.tls.handshake_timeout = Duration::from_millis(200);
    })
    .await;
    let mut silent = connect(proxy.addr).await;
    let mut buf = [0u8; 1];
    let n = within("the silent client closed", T, silent.read(&mut buf)).await;
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    wait_for("counted as a timeout, and closed", T, || {
        failures(&proxy.stats, FailureKind::Timeout) == 1
            && ProxyStats::get(&proxy.stats.connections_open) == 0
    })
    .await;
    proxy.shutdown(T).await;
}

/// A TLS broker stand-in: a certificate for `names` from `ca`; sends `tag`, then echoes.
/// Reports the SNI each connection asked for.
async fn tls_broker(
    ca: &Ca,
    names: &[&str],
    tag: &'static [u8],
) -> (
    SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<Option<String>>,
) {
    let leaf = ca.leaf(LeafSpec {
        names,
        ..LeafSpec::default()
    });
    let config = rustls::ServerConfig::builder_with_provider(sluice_config::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            CertificateDer::pem_slice_iter(leaf.cert_pem.as_bytes())
                .map(|c| c.unwrap())
                .collect(),
            PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = tx.send(s.get_ref().1.server_name().map(str::to_owned));
                let _ = s.write_all(tag).await;
                let (mut r, mut w) = tokio::io::split(s);
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    (addr, rx)
}

/// A plaintext broker stand-in that sends `tag`, then echoes.
async fn tagged_broker(tag: &'static [u8]) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = s.write_all(tag).await;
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn upstream_tls_checks_the_broker_certificate_and_sends_the_server_name() {
    let pki = Pki::new();
    let (broker, mut sni) = tls_broker(&pki.ca, &["broker-1.example"], b"B").await;
    let proxy = TestProxy::start(broker, |c| {
        c.upstream_tls.ca = Some(pki.ca_file.clone());
        c.upstream_tls.server_name = Some("broker-1.example".to_owned());
    })
    .await;
    let mut s = connect(proxy.addr).await;
    let mut tag = [0u8; 1];
    within("the broker's greeting", T, s.read_exact(&mut tag))
        .await
        .unwrap();
    assert_eq!(&tag, b"B");
    let data = random_bytes(3, 200_000);
    s.write_all(&data).await.unwrap();
    let mut back = vec![0u8; data.len()];
    within("echo through TLS to the broker", T, s.read_exact(&mut back))
        .await
        .unwrap();
    assert!(back == data, "bytes changed on the way");
    assert_eq!(
        sni.recv().await.unwrap().as_deref(),
        Some("broker-1.example")
    );
    drop(s);
    proxy.shutdown(T).await;

    // A name the broker's certificate does not carry: no connection, counted as unreachable.
    let proxy = TestProxy::start(broker, |c| {
        c.upstream_tls.ca = Some(pki.ca_file.clone());
        c.upstream_tls.server_name = Some("broker-2.example".to_owned());
    })
    .await;
    let mut s = connect(proxy.addr).await;
    let n = within(
        "closed: the broker's name does not match",
        T,
        s.read(&mut tag),
    )
    .await;
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    wait_for("counted as an upstream failure", T, || {
        ProxyStats::get(&proxy.stats.upstream_connect_failures) == 1
    })
    .await;
    proxy.shutdown(T).await;
}

#[tokio::test]
async fn a_plaintext_and_a_tls_listener_in_one_process_each_reach_their_broker() {
    let pki = Pki::new();
    let (plain_broker, tls_broker) = (tagged_broker(b"P").await, tagged_broker(b"T").await);
    let text = format!(
        "listen = \"127.0.0.1:0\"\nupstream = \"{plain_broker}\"\n[lookup]\nenabled = false\n\
         [[listeners]]\nname = \"tls\"\nlisten = \"127.0.0.1:0\"\nupstream = \"{tls_broker}\"\n\
         [listeners.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        pki.cert.display(),
        pki.key.display()
    );
    let file = write(pki.dir.path(), "sluice.toml", &text);
    let config = sluice_config::Loader::new().file(&file).load().unwrap();
    let a = tokio::net::TcpListener::bind(config.listen).await.unwrap();
    let b = tokio::net::TcpListener::bind(config.listeners[0].listen)
        .await
        .unwrap();
    let (plain_addr, tls_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    let proxy = sluice::Proxy::new(config);
    let stats = proxy.stats();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(proxy.run_all(vec![a, b], async {
        let _ = stopped.await;
    }));

    let mut p = connect(plain_addr).await;
    let mut tag = [0u8; 1];
    p.read_exact(&mut tag).await.unwrap();
    assert_eq!(&tag, b"P");
    let mut t = tls_connect(tls_addr, client_config(&pki.ca.pem(), None))
        .await
        .unwrap();
    t.read_exact(&mut tag).await.unwrap();
    assert_eq!(&tag, b"T");
    assert_eq!(echo(&mut t, b"over tls").await.unwrap(), b"over tls");
    p.write_all(b"plain").await.unwrap();
    let mut back = [0u8; 5];
    p.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"plain");
    // TLS bytes on the plaintext port go through as bytes: that listener does not speak TLS.
    assert!(tls_connect(plain_addr, client_config(&pki.ca.pem(), None))
        .await
        .is_err());
    assert_eq!(ProxyStats::get(&stats.connections_accepted), 3);
    drop((p, t));
    let _ = stop.send(());
    within("both listeners drained", T, task).await.unwrap();
}
