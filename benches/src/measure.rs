//! The raw-TCP measurements: iperf3 stream throughput and small-message round trips.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::proc::{tail, ChildGuard};

/// One iperf3 client run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IperfRun {
    /// `end.sum_received.bits_per_second`.
    pub bits_per_second: f64,
    /// `end.sum_received.bytes`.
    pub bytes: f64,
}

/// `iperf3 -c 127.0.0.1 -p PORT -t SECS -J`: one TCP stream for `secs` seconds.
pub fn iperf3_client(
    iperf3: &Path,
    port: u16,
    secs: u32,
    dir: &Path,
    name: &str,
) -> Result<IperfRun> {
    let log = dir.join(format!("{name}.json"));
    let _ = std::fs::remove_file(&log);
    let mut g = ChildGuard::spawn(
        name,
        Command::new(iperf3)
            .args(["-c", "127.0.0.1", "-p", &port.to_string()])
            .args(["-t", &secs.to_string(), "-J"]),
        &log,
        Duration::ZERO,
    )?;
    let status = g.wait_timeout(Duration::from_secs(u64::from(secs) + 60))?;
    let out = std::fs::read_to_string(&log).unwrap_or_default();
    let parsed = parse_iperf3(&out);
    if !status.success() || parsed.is_err() {
        bail!(
            "iperf3 client failed ({status}): {}; end of {}:\n{}",
            parsed.err().map_or_else(String::new, |e| format!("{e:#}")),
            log.display(),
            tail(&log, 2000)
        );
    }
    parsed
}

/// Reads `end.sum_received` from iperf3's JSON report.
pub fn parse_iperf3(out: &str) -> Result<IperfRun> {
    let start = out.find('{').context("no JSON in iperf3 output")?;
    let end = out.rfind('}').context("no JSON in iperf3 output")?;
    let v: serde_json::Value =
        serde_json::from_str(&out[start..=end]).context("parsing iperf3 JSON")?;
    if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
        bail!("iperf3: {e}");
    }
    let sum = &v["end"]["sum_received"];
    Ok(IperfRun {
        bits_per_second: sum["bits_per_second"]
            .as_f64()
            .context("no end.sum_received.bits_per_second")?,
        bytes: sum["bytes"].as_f64().context("no end.sum_received.bytes")?,
    })
}

/// Opens one connection to an echo server at `addr` (`TCP_NODELAY`), does `warmup` untimed
/// round trips of `size` bytes, then `count` timed ones, one at a time. Returns each round
/// trip's duration in nanoseconds.
pub fn round_trips(addr: SocketAddr, warmup: usize, count: usize, size: usize) -> Result<Vec<u64>> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("connecting to {addr}"))?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    echo_round_trips(&mut s, addr, warmup, count, size)
}

/// On stream `s` to the echo server at `addr`: `warmup` untimed then `count` timed round trips
/// of `size` bytes, one at a time, each checked to come back unaltered. Returns each timed
/// one's duration in nanoseconds.
pub fn echo_round_trips<S: Read + Write>(
    s: &mut S,
    addr: SocketAddr,
    warmup: usize,
    count: usize,
    size: usize,
) -> Result<Vec<u64>> {
    let msg: Vec<u8> = (0..size).map(|i| i as u8).collect();
    let mut back = vec![0u8; size];
    let mut samples = Vec::with_capacity(count);
    for i in 0..warmup + count {
        let t0 = Instant::now();
        s.write_all(&msg)?;
        s.flush()?;
        s.read_exact(&mut back)
            .with_context(|| format!("reading echo #{i} from {addr}"))?;
        let dt = t0.elapsed();
        if back != msg {
            bail!("echo #{i} from {addr} came back altered");
        }
        if i >= warmup {
            samples.push(dt.as_nanos() as u64);
        }
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_iperf3_json() {
        let out = r#"{"start":{},"end":{"sum_sent":{"bytes":10},
            "sum_received":{"bytes":1000000000,"bits_per_second":8.0e9}}}"#;
        let r = parse_iperf3(out).unwrap();
        assert_eq!(r.bytes, 1e9);
        assert_eq!(r.bits_per_second, 8e9);
        assert!(parse_iperf3(r#"{"error":"unable to connect"}"#).is_err());
        assert!(parse_iperf3("garbage").is_err());
    }

    #[test]
    fn round_trips_against_the_echo_server() {
        let addr = crate::servers::start_echo_server().unwrap();
        let s = round_trips(addr, 10, 100, 64).unwrap();
        assert_eq!(s.len(), 100);
        assert!(s.iter().all(|&ns| ns > 0));
    }
}
