//! Line-rate Fetch replay: a server that answers every request with one recorded Fetch
//! response (a real ~630 KB response from a Kafka 4.1 broker, carrying real record batches),
//! and a client that sends the matching recorded Fetch request, pipelined, for a fixed time.
//! No broker is involved, so the proxy in between is the only work besides two byte copies.
//!
//! Both sides patch only the correlation id (request: after api key and version; response:
//! right after the length, before the flexible header's tagged fields), so a proxy that follows
//! the protocol sees a consistent stream of Fetch requests and responses.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Responses above this size count as "the big Fetch response" of a capture.
const BIG_RESPONSE: usize = 100 * 1024;
/// Largest frame the replay server accepts from a client.
const MAX_REQUEST: usize = 1 << 20;

/// One recorded Fetch exchange, each a whole frame (4-byte length included).
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The Fetch request frame.
    pub request: Vec<u8>,
    /// The Fetch response frame answering it.
    pub response: Vec<u8>,
    /// Fetch version of the request.
    pub api_version: i16,
}

/// Splits a capture (`int32 length + body`, repeated) into whole frames.
pub fn frames(data: &[u8]) -> Result<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let Some(len) = data.get(at..at + 4) else {
            bail!("capture ends inside a frame length at byte {at}");
        };
        let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| (at + 4).checked_add(l))
            .filter(|&e| e <= data.len())
            .with_context(|| format!("bad frame length {len} at byte {at}"))?;
        out.push(&data[at..end]);
        at = end;
    }
    Ok(out)
}

fn i16_at(frame: &[u8], at: usize) -> Option<i16> {
    Some(i16::from_be_bytes(frame.get(at..at + 2)?.try_into().ok()?))
}

fn i32_at(frame: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_be_bytes(frame.get(at..at + 4)?.try_into().ok()?))
}

/// Correlation id of a request frame (after length, api key and api version).
fn request_correlation(frame: &[u8]) -> Option<i32> {
    i32_at(frame, 8)
}

/// Correlation id of a response frame (right after the length).
fn response_correlation(frame: &[u8]) -> Option<i32> {
    i32_at(frame, 4)
}

impl Recorded {
    /// From a capture's two streams: the first response frame larger than 100 KiB, and the
    /// Fetch request with its correlation id.
    pub fn from_captures(requests: &[u8], responses: &[u8]) -> Result<Recorded> {
        let response = frames(responses)?
            .into_iter()
            .find(|f| f.len() - 4 > BIG_RESPONSE)
            .context("no response frame larger than 100 KiB")?;
        let corr = response_correlation(response).context("response frame too short")?;
        let request = frames(requests)?
            .into_iter()
            .find(|f| request_correlation(f) == Some(corr))
            .with_context(|| format!("no request with correlation id {corr}"))?;
        let api_key = i16_at(request, 4).context("request frame too short")?;
        if api_key != 1 {
            bail!("request {corr} has api key {api_key}, not 1 (Fetch)");
        }
        Ok(Recorded {
            request: request.to_vec(),
            response: response.to_vec(),
            api_version: i16_at(request, 6).context("request frame too short")?,
        })
    }

    /// Loads `PREFIX.requests.bin` and `PREFIX.responses.bin`.
    pub fn load(prefix: &Path) -> Result<Recorded> {
        let read = |kind: &str| {
            let p = PathBuf::from(format!("{}.{kind}.bin", prefix.display()));
            std::fs::read(&p).with_context(|| format!("reading {}", p.display()))
        };
        Recorded::from_captures(&read("requests")?, &read("responses")?)
            .with_context(|| format!("finding the big Fetch exchange in {}", prefix.display()))
    }
}

/// The replay server: answers each request frame with the recorded response, its correlation
/// id set to the request's. Stops accepting when dropped; connection threads end when their
/// client closes.
#[derive(Debug)]
pub struct ReplayServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl ReplayServer {
    /// Listens on 127.0.0.1:0.
    pub fn start(response: Vec<u8>) -> Result<ReplayServer> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the replay server")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let response = Arc::new(response);
        let flag = stop.clone();
        let accept = std::thread::Builder::new()
            .name("replay-accept".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if flag.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(conn) = conn else { continue };
                    let r = response.clone();
                    let _ = std::thread::Builder::new()
                        .name("replay".into())
                        .spawn(move || serve(conn, &r));
                }
            })?;
        Ok(ReplayServer {
            addr,
            stop,
            accept: Some(accept),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for ReplayServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut conn: TcpStream, response: &[u8]) {
    let _ = conn.set_nodelay(true);
    let mut out = response.to_vec();
    let mut len = [0u8; 4];
    let mut body = Vec::new();
    loop {
        if conn.read_exact(&mut len).is_err() {
            return;
        }
        let n = i32::from_be_bytes(len);
        let Some(n) = usize::try_from(n)
            .ok()
            .filter(|&n| (8..=MAX_REQUEST).contains(&n))
        else {
            return;
        };
        body.resize(n, 0);
        if conn.read_exact(&mut body).is_err() {
            return;
        }
        out[4..8].copy_from_slice(&body[4..8]);
        if conn.write_all(&out).is_err() {
            return;
        }
    }
}

/// One client run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplayRun {
    /// Bytes of response frames received in the timed window.
    pub bytes: u64,
    /// Length of the timed window, seconds.
    pub secs: f64,
    /// Bytes received in all, warm-up included (for CPU per GB over the whole run).
    pub total_bytes: u64,
    /// Responses received in all, warm-up included.
    pub responses: u64,
}

impl ReplayRun {
    /// Timed throughput, GB (10⁹ bytes) per second.
    pub fn gb_per_sec(&self) -> f64 {
        self.bytes as f64 / 1e9 / self.secs
    }
}

/// Connects to `addr`, keeps `inflight` copies of the recorded request outstanding
/// (correlation ids 1, 2, 3, …), and reads the responses, checking each one's length and
/// correlation id (and the first and last byte for byte). The first `warmup` responses are
/// not timed; new requests stop after `duration` of timed run, and the responses still in
/// flight are read (and timed) before returning.
pub fn run_client(
    addr: SocketAddr,
    rec: &Recorded,
    inflight: usize,
    warmup: u64,
    duration: Duration,
) -> Result<ReplayRun> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("connecting to {addr}"))?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = rec.request.clone();
    let mut next: i32 = 1;
    let mut waiting = VecDeque::new();
    let mut send = |s: &mut TcpStream, waiting: &mut VecDeque<i32>| -> Result<()> {
        req[8..12].copy_from_slice(&next.to_be_bytes());
        s.write_all(&req).context("sending a Fetch request")?;
        waiting.push_back(next);
        next = next.wrapping_add(1);
        Ok(())
    };
    for _ in 0..inflight.max(1) {
        send(&mut s, &mut waiting)?;
    }
    let mut buf = vec![0u8; rec.response.len()];
    let (mut responses, mut total, mut timed) = (0u64, 0u64, 0u64);
    let mut start = Instant::now();
    let mut stopping = false;
    while let Some(corr) = waiting.pop_front() {
        let n = responses + 1;
        s.read_exact(&mut buf[..4])
            .with_context(|| format!("reading response {n}"))?;
        let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize + 4;
        if len != rec.response.len() {
            bail!(
                "response {n} is {len} bytes, expected {}",
                rec.response.len()
            );
        }
        s.read_exact(&mut buf[4..])
            .with_context(|| format!("reading response {n}"))?;
        let got = response_correlation(&buf);
        if got != Some(corr) {
            bail!("response {n} has correlation id {got:?}, expected {corr}");
        }
        let last = stopping && waiting.is_empty();
        if (n == 1 || last) && (buf[..4] != rec.response[..4] || buf[8..] != rec.response[8..]) {
            bail!("response {n} came back altered");
        }
        responses = n;
        total += len as u64;
        if responses == warmup {
            start = Instant::now();
        } else if responses > warmup {
            timed += len as u64;
        }
        stopping = stopping || (responses >= warmup && start.elapsed() >= duration);
        if !stopping {
            send(&mut s, &mut waiting)?;
        }
    }
    Ok(ReplayRun {
        bytes: timed,
        secs: start.elapsed().as_secs_f64().max(1e-9),
        total_bytes: total,
        responses,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut f = (body.len() as i32).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    }

    fn request(key: i16, corr: i32) -> Vec<u8> {
        let mut b = key.to_be_bytes().to_vec();
        b.extend_from_slice(&18i16.to_be_bytes());
        b.extend_from_slice(&corr.to_be_bytes());
        b.extend_from_slice(&[0, 2, b'c', b'x', 0, 7, 7, 7]);
        frame(&b)
    }

    fn response(corr: i32, size: usize) -> Vec<u8> {
        let mut b = corr.to_be_bytes().to_vec();
        b.extend((0..size).map(|i| i as u8));
        frame(&b)
    }

    fn synthetic() -> Recorded {
        let reqs = [request(18, 4), request(1, 14), request(1, 15)].concat();
        let resps = [response(4, 100), response(14, 200 * 1024), response(15, 10)].concat();
        Recorded::from_captures(&reqs, &resps).unwrap()
    }

    #[test]
    fn finds_the_big_response_and_its_request() {
        let r = synthetic();
        assert_eq!(request_correlation(&r.request), Some(14));
        assert_eq!(response_correlation(&r.response), Some(14));
        assert_eq!(r.response.len(), 4 + 4 + 200 * 1024);
        assert_eq!(r.api_version, 18);
        assert!(frames(&[0, 0, 0, 5, 1]).is_err());
        assert!(Recorded::from_captures(&request(1, 1), &response(1, 10)).is_err());
    }

    #[test]
    fn the_real_capture_has_a_fetch_exchange() {
        let prefix =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../protocol-ext/fixtures/java-session-3");
        let r = Recorded::load(&prefix).unwrap();
        assert!(r.response.len() > BIG_RESPONSE);
        assert_eq!(i16_at(&r.request, 4), Some(1));
    }

    #[test]
    fn replays_pipelined_with_patched_correlation_ids() {
        let r = synthetic();
        let server = ReplayServer::start(r.response.clone()).unwrap();
        let run = run_client(server.addr(), &r, 4, 3, Duration::from_millis(100)).unwrap();
        assert!(run.responses > 3);
        assert_eq!(run.total_bytes, run.responses * r.response.len() as u64);
        assert!(run.bytes > 0 && run.bytes < run.total_bytes);
        assert!(run.gb_per_sec() > 0.0);
        drop(server);
    }
}
