//! The `sluice` binary with TLS on its client listener: a plaintext client is refused with a
//! log line that names it and its address; certificates are re-read on SIGHUP and when the
//! files change, a bad new file keeps the old certificate (and says which file), and an
//! established connection keeps working through all of it.

#[path = "support/process.rs"]
mod process;
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use process::{sluice, Running};
use rustls::pki_types::ServerName;
use support::certs::{client_config, write, Ca, LeafSpec};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const T: Duration = Duration::from_secs(15);

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

async fn tls(addr: SocketAddr, ca: &Ca) -> std::io::Result<Tls> {
    let tcp = connect(addr).await;
    tokio_rustls::TlsConnector::from(client_config(&ca.pem(), None))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

async fn echo(s: &mut Tls, data: &[u8]) {
    s.write_all(data).await.unwrap();
    let mut back = vec![0u8; data.len()];
    within("echo", T, s.read_exact(&mut back)).await.unwrap();
    assert_eq!(back, data);
}

/// Writes a new server certificate from `ca` over the files in `dir`.
fn issue(ca: &Ca, dir: &Path) {
    ca.leaf(LeafSpec::default()).write(dir, "server");
}

/// Waits for a log line containing `needle` that comes after every such line so far.
fn next_line(p: &mut Running, needle: &str) -> String {
    p.seen.retain(|l| !l.contains(needle));
    p.expect_line(needle, T)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_is_named_and_certificates_are_reread_without_dropping_connections() {
    let dir = tempfile::tempdir().unwrap();
    let first = Ca::new("first ca");
    issue(&first, dir.path());
    let (cert, key) = (dir.path().join("server.pem"), dir.path().join("server.key"));
    let mut cmd = sluice();
    cmd.args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args(["--upstream", &echo_server().await.to_string()])
        .env("SLUICE_LOOKUP_ENABLED", "false")
        .env("SLUICE_TLS_CERT", &cert)
        .env("SLUICE_TLS_KEY", &key);
    let mut p = Running::start(&mut cmd);
    let addr = p.logged_addr("proxy accepting connections", "listen");

    let mut open = tls(addr, &first).await.unwrap();
    echo(&mut open, b"first").await;

    // A plaintext Kafka client: closed, named with its address; the TLS client goes on.
    let mut plain = connect(addr).await;
    let port = plain.local_addr().unwrap().port();
    plain
        .write_all(&[0, 0, 0, 10, 0, 18, 0, 3, 0, 0, 0, 1, 0, 0])
        .await
        .unwrap();
    let mut buf = [0u8; 8];
    let n = within("plaintext client closed", T, plain.read(&mut buf)).await;
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    let line = p.expect_line("client sent plaintext to the TLS listener", T);
    assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
    echo(&mut open, b"still here").await;

    // SIGHUP after new files: new connections get the new certificate.
    let second = Ca::new("second ca");
    issue(&second, dir.path());
    p.signal("-HUP");
    next_line(&mut p, "TLS certificate, key and client CA re-read");
    let mut new = tls(addr, &second).await.unwrap();
    echo(&mut new, b"second").await;
    echo(&mut open, b"the first connection still works").await;

    // A bad key: the certificate in force stays; the warning names the file, not its bytes.
    write(
        dir.path(),
        "server.key",
        "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
    );
    p.signal("-HUP");
    let line = next_line(&mut p, "TLS files rejected");
    assert!(line.contains("server.key"), "{line}");
    assert!(!line.contains("bm90IGEga2V5"), "{line}");
    let mut again = tls(addr, &second).await.unwrap();
    echo(&mut again, b"old certificate kept").await;

    // Changed files without a signal: picked up by the periodic check.
    let third = Ca::new("third ca");
    issue(&third, dir.path());
    next_line(&mut p, "TLS certificate, key and client CA re-read");
    let mut third_conn = tls(addr, &third).await.unwrap();
    echo(&mut third_conn, b"third").await;
    assert!(
        tls(addr, &first).await.is_err(),
        "the first certificate is no longer shown"
    );
    echo(&mut open, b"and still").await;
    drop((open, new, again, third_conn));
    p.signal("-TERM");
    assert_eq!(p.exit_within(T), Some(0));
}
