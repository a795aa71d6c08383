//! TLS load for the e2e harness's TLS part: a rustls client that downloads, uploads and does
//! small round trips, and the server it talks to — in plaintext behind a proxy that
//! terminates TLS, or terminating TLS itself (the "direct TLS" route).
//!
//! The client's first byte picks what the server does:
//! - `D` (download): the server writes 64 KiB chunks until the connection ends; the proxy
//!   encrypts, as for Kafka Fetch responses.
//! - `U` (upload): the client writes 64 KiB chunks, the first byte of each 0, of the last 1;
//!   after the last the server answers with the byte count (8 bytes, big-endian), so the
//!   client times delivery, not buffering. The proxy decrypts, as for Produce requests.
//! - `E` (echo): everything read is written back.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use rustls::crypto::ring::cipher_suite;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, StreamOwned};

/// Size of every chunk written by the download server and the upload client.
pub const CHUNK: usize = 64 * 1024;

/// The one cipher suite the client offers (TLS 1.3 only), so every route runs the same
/// cipher: the first suite a current JDK offers, and what OpenSSL and rustls prefer.
pub const SUITE: &str = "TLS13_AES_256_GCM_SHA384";

/// A client TLS configuration trusting only the CA in `ca` (PEM), offering [`SUITE`] over
/// TLS 1.3.
pub fn client_config(ca: &Path) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).with_context(|| format!("{}", ca.display()))? {
        roots.add(cert?)?;
    }
    // Sluice's own provider (ring), with the one suite.
    let mut p = (*sluice_config::tls::provider()).clone();
    p.cipher_suites = vec![cipher_suite::TLS13_AES_256_GCM_SHA384];
    let config = ClientConfig::builder_with_provider(Arc::new(p))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A server TLS configuration presenting `cert` (PEM chain) with `key` (PEM), with Sluice's
/// provider and rustls's defaults otherwise.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>> {
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("{}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| format!("{}", key.display()))?;
    let config = ServerConfig::builder_with_provider(sluice_config::tls::provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(Arc::new(config))
}

/// A client connection after its handshake.
pub type Client = StreamOwned<ClientConnection, TcpStream>;

/// Connects to `addr` (`TCP_NODELAY`), completes the handshake for `127.0.0.1` and sends
/// `mode`. Returns the stream and the negotiated version and cipher suite.
pub fn connect(addr: SocketAddr, config: &Arc<ClientConfig>, mode: u8) -> Result<(Client, String)> {
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("connecting to {addr}"))?;
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let name = ServerName::IpAddress(addr.ip().into());
    let conn = ClientConnection::new(config.clone(), name)?;
    let mut s = StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn
            .complete_io(&mut s.sock)
            .with_context(|| format!("TLS handshake with {addr}"))?;
    }
    let negotiated = format!(
        "{:?} {:?}",
        s.conn.protocol_version().context("no protocol version")?,
        s.conn
            .negotiated_cipher_suite()
            .context("no cipher suite")?
            .suite()
    );
    s.write_all(&[mode])?;
    s.flush()?;
    Ok((s, negotiated))
}

/// What one download or upload moved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamRun {
    /// Application bytes delivered.
    pub bytes: u64,
    /// Seconds they took.
    pub secs: f64,
}

impl StreamRun {
    /// Throughput in Gbit/s.
    pub fn gbit_per_sec(&self) -> f64 {
        self.bytes as f64 * 8.0 / self.secs / 1e9
    }
}

/// Reads a download for `secs` seconds, timed from the first byte.
pub fn download(addr: SocketAddr, config: &Arc<ClientConfig>, secs: u32) -> Result<StreamRun> {
    let (mut s, _) = connect(addr, config, b'D')?;
    let mut buf = vec![0u8; CHUNK];
    let n = s.read(&mut buf).context("reading the download")?;
    ensure!(n > 0, "the download ended at once");
    let start = Instant::now();
    let until = Duration::from_secs(u64::from(secs));
    let mut bytes = 0u64;
    while start.elapsed() < until {
        match s.read(&mut buf).context("reading the download")? {
            0 => bail!("the download ended after {bytes} bytes"),
            n => bytes += n as u64,
        }
    }
    Ok(StreamRun {
        bytes,
        secs: start.elapsed().as_secs_f64(),
    })
}

/// Uploads for `secs` seconds, then waits for the server's count of what it received.
pub fn upload(addr: SocketAddr, config: &Arc<ClientConfig>, secs: u32) -> Result<StreamRun> {
    let (mut s, _) = connect(addr, config, b'U')?;
    let mut chunk = vec![0x5au8; CHUNK];
    chunk[0] = 0;
    let start = Instant::now();
    let until = Duration::from_secs(u64::from(secs));
    let mut sent = 0u64;
    while start.elapsed() < until {
        s.write_all(&chunk).context("writing the upload")?;
        sent += CHUNK as u64;
    }
    chunk[0] = 1;
    s.write_all(&chunk)?;
    s.flush()?;
    sent += CHUNK as u64;
    let mut count = [0u8; 8];
    s.read_exact(&mut count)
        .context("reading the upload's count")?;
    let secs = start.elapsed().as_secs_f64();
    let bytes = u64::from_be_bytes(count);
    ensure!(
        bytes == sent,
        "sent {sent} bytes, the server counted {bytes}"
    );
    Ok(StreamRun { bytes, secs })
}

/// `warmup` untimed then `count` timed round trips of `size` bytes, one at a time. Returns
/// each timed one's duration in nanoseconds and the negotiated version and suite.
pub fn round_trips(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    warmup: usize,
    count: usize,
    size: usize,
) -> Result<(Vec<u64>, String)> {
    let (mut s, negotiated) = connect(addr, config, b'E')?;
    let samples = crate::measure::echo_round_trips(&mut s, addr, warmup, count, size)?;
    Ok((samples, negotiated))
}

/// Starts the server on `127.0.0.1:0` (a thread per connection), in plaintext or, with
/// `tls`, terminating TLS itself. It lives until the process exits.
pub fn start_server(tls: Option<Arc<ServerConfig>>) -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding the TLS load server")?;
    let addr = listener.local_addr()?;
    std::thread::Builder::new()
        .name("tls-load-accept".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                let tls = tls.clone();
                let _ = std::thread::Builder::new()
                    .name("tls-load".into())
                    .spawn(move || {
                        let _ = conn.set_nodelay(true);
                        let _ = match tls {
                            None => serve(conn),
                            Some(c) => rustls::ServerConnection::new(c)
                                .map_err(io::Error::other)
                                .and_then(|tls| serve(StreamOwned::new(tls, conn))),
                        };
                    });
            }
        })?;
    Ok(addr)
}

/// One connection of the server; returns when the client goes away.
fn serve(mut conn: impl Read + Write) -> io::Result<()> {
    let mut mode = [0u8; 1];
    conn.read_exact(&mut mode)?;
    let mut buf = vec![0x33u8; CHUNK];
    match mode[0] {
        b'D' => loop {
            conn.write_all(&buf)?;
        },
        b'U' => {
            let mut total = 0u64;
            loop {
                conn.read_exact(&mut buf)?;
                total += CHUNK as u64;
                if buf[0] == 1 {
                    conn.write_all(&total.to_be_bytes())?;
                    return conn.flush();
                }
            }
        }
        b'E' => loop {
            let n = conn.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            conn.write_all(&buf[..n])?;
            conn.flush()?;
        },
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_integration_tests::certs::Pki;

    #[test]
    fn download_upload_and_round_trips_over_direct_tls() {
        let pki = Pki::new();
        let server = server_config(&pki.server.cert, &pki.server.key).unwrap();
        let addr = start_server(Some(server)).unwrap();
        let client = client_config(&pki.ca).unwrap();
        let (samples, negotiated) = round_trips(addr, &client, 5, 20, 64).unwrap();
        assert_eq!(samples.len(), 20);
        assert_eq!(negotiated, format!("TLSv1_3 {SUITE}"));
        let up = upload(addr, &client, 0).unwrap();
        assert_eq!(up.bytes, CHUNK as u64);
        let down = download(addr, &client, 0).unwrap();
        assert!(down.secs >= 0.0);
    }

    #[test]
    fn a_client_trusting_another_ca_is_refused() {
        let pki = Pki::new();
        let server = server_config(&pki.server.cert, &pki.server.key).unwrap();
        let addr = start_server(Some(server)).unwrap();
        let client = client_config(&pki.other_ca).unwrap();
        assert!(connect(addr, &client, b'E').is_err());
    }
}
