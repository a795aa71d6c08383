//! The e2e harness's TLS part: TLS termination by haproxy (OpenSSL) and by Sluice (rustls)
//! with the same certificate, in front of the same plaintext server, beside the server
//! terminating TLS itself ("direct TLS"): download and upload throughput with the proxy's CPU
//! per GB, and 64-byte round trips. Routes interleaved and rotated each round; the report is
//! its own Markdown section.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use rustls::ClientConfig;
use sluice_integration_tests::certs::Pki;

use crate::proc::{cpu_seconds, ChildGuard};
use crate::servers::{run_haproxy, sluice_command, spawn_sluice, Sluice};
use crate::stats::{median, percentile};
use crate::tls::{self, StreamRun};

/// The routes, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsRoute {
    /// The server terminates TLS itself (rustls, in the harness's process); no proxy.
    Direct,
    /// haproxy terminates TLS (`bind … ssl crt`, OpenSSL) and forwards in plaintext.
    Haproxy,
    /// Sluice terminates TLS (`[tls]`, rustls, tap on) and forwards in plaintext.
    Sluice,
}

const ROUTES: [TlsRoute; 3] = [TlsRoute::Direct, TlsRoute::Haproxy, TlsRoute::Sluice];

impl TlsRoute {
    fn index(self) -> usize {
        self as usize
    }

    fn name(self) -> &'static str {
        match self {
            TlsRoute::Direct => "direct TLS",
            TlsRoute::Haproxy => "haproxy TLS",
            TlsRoute::Sluice => "Sluice TLS",
        }
    }
}

/// How much to run.
#[derive(Debug, Clone, Copy)]
pub struct TlsPlan {
    /// Interleaved rounds of download and upload.
    pub rounds: u32,
    /// Seconds per download or upload run.
    pub secs: u32,
    /// Round-trip blocks (routes rotated between blocks).
    pub rtt_blocks: usize,
    /// Timed round trips per block.
    pub rtt_per_block: usize,
    /// Untimed round trips before each block.
    pub rtt_warmup: usize,
}

impl TlsPlan {
    /// Progress steps [`run`] announces.
    pub fn steps(&self) -> usize {
        1 + ROUTES.len() * (2 * self.rounds as usize + self.rtt_blocks)
    }
}

/// Numbered progress (the e2e binary's).
pub trait Progress {
    /// A new step.
    fn step(&mut self, what: &str);
    /// A figure of the current step.
    fn note(&self, what: &str);
}

/// Everything measured, per route (indexed by [`TlsRoute`]).
#[derive(Debug, Default)]
pub struct TlsResults {
    download: [Vec<StreamRun>; 3],
    download_cpu: [Vec<f64>; 3],
    upload: [Vec<StreamRun>; 3],
    upload_cpu: [Vec<f64>; 3],
    /// Round-trip samples (ns), one vector per block.
    rtt: [Vec<Vec<u64>>; 3],
    negotiated: [Option<String>; 3],
    plan: Option<TlsPlan>,
    /// Steps that failed (`what: error`).
    pub failures: Vec<String>,
}

/// The proxies and servers of the part; stopped when dropped.
struct Running {
    fronts: [SocketAddr; 3],
    pids: [Option<u32>; 3],
    _haproxy: ChildGuard,
    _sluice: Sluice,
}

/// Sets up the routes with a certificate made for the run (`ports`: haproxy's, Sluice's and
/// Sluice's admin port) and measures them.
pub fn run(
    haproxy: &Path,
    sluice_bin: &Path,
    ports: [u16; 3],
    dir: &Path,
    plan: TlsPlan,
    progress: &mut dyn Progress,
) -> Result<TlsResults> {
    progress.step("TLS: making a CA and a server certificate, starting haproxy and Sluice");
    let pki = Pki::new();
    let client = tls::client_config(&pki.ca)?;
    let running = start(haproxy, sluice_bin, ports, &pki, dir)?;
    let mut r = TlsResults {
        plan: Some(plan),
        ..TlsResults::default()
    };
    for round in 1..=plan.rounds {
        for route in rotated(round as usize) {
            for up in [false, true] {
                let what = format!(
                    "TLS {} via {} (round {round}/{}, {} s)",
                    if up { "upload" } else { "download" },
                    route.name(),
                    plan.rounds,
                    plan.secs
                );
                progress.step(&what);
                match stream(&running, &client, route, up, plan.secs) {
                    Ok((run, cpu)) => {
                        let mut msg = format!("{:.2} Gbit/s", run.gbit_per_sec());
                        let i = route.index();
                        let (runs, cpus) = if up {
                            (&mut r.upload, &mut r.upload_cpu)
                        } else {
                            (&mut r.download, &mut r.download_cpu)
                        };
                        runs[i].push(run);
                        if let Some(c) = cpu {
                            let c = c / (run.bytes as f64 / 1e9);
                            cpus[i].push(c);
                            let _ = write!(msg, ", proxy CPU {c:.3} s/GB");
                        }
                        progress.note(&msg);
                    }
                    Err(e) => fail(&mut r, &what, &e),
                }
            }
        }
    }
    for block in 1..=plan.rtt_blocks {
        for route in rotated(block) {
            let what = format!(
                "TLS round trips via {} (block {block}/{}, {} × 64 B)",
                route.name(),
                plan.rtt_blocks,
                plan.rtt_per_block
            );
            progress.step(&what);
            let front = running.fronts[route.index()];
            match tls::round_trips(front, &client, plan.rtt_warmup, plan.rtt_per_block, 64) {
                Ok((mut s, negotiated)) => {
                    s.sort_unstable();
                    let us = |p| percentile(&s, p).unwrap_or(0) as f64 / 1000.0;
                    progress.note(&format!(
                        "p50 {:.1} µs, p99 {:.1} µs ({negotiated})",
                        us(50.0),
                        us(99.0)
                    ));
                    r.negotiated[route.index()] = Some(negotiated);
                    r.rtt[route.index()].push(s);
                }
                Err(e) => fail(&mut r, &what, &e),
            }
        }
    }
    drop(running);
    Ok(r)
}

fn fail(r: &mut TlsResults, what: &str, e: &anyhow::Error) {
    crate::proc::halt_if_interrupted();
    eprintln!("e2e: FAILED: {what}: {e:#}");
    r.failures.push(format!("{what}: {e:#}"));
}

/// The routes in round `n`'s order (rotated by one each round).
fn rotated(n: usize) -> [TlsRoute; 3] {
    let mut routes = ROUTES;
    routes.rotate_left((n - 1) % ROUTES.len());
    routes
}

/// A download or upload on `route`, with the CPU seconds its proxy used meanwhile.
fn stream(
    running: &Running,
    client: &Arc<ClientConfig>,
    route: TlsRoute,
    up: bool,
    secs: u32,
) -> Result<(StreamRun, Option<f64>)> {
    let pid = running.pids[route.index()];
    let front = running.fronts[route.index()];
    let cpu0 = pid.map(cpu_seconds).transpose()?;
    let run = if up {
        tls::upload(front, client, secs)?
    } else {
        tls::download(front, client, secs)?
    };
    let cpu = match (pid, cpu0) {
        (Some(pid), Some(c0)) => Some(cpu_seconds(pid)? - c0),
        _ => None,
    };
    Ok((run, cpu))
}

/// haproxy's configuration: one TLS frontend (the same PEM certificate and key as Sluice's)
/// forwarding in plaintext to `upstream`; TCP mode, nothing tuned, as for the TCP routes.
pub fn haproxy_config(listen: u16, crt: &Path, upstream: SocketAddr) -> String {
    format!(
        "# Generated by the Sluice benchmark harness (TLS part).\n\
         global\n    maxconn 1000\n\n\
         defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 1h\n    \
         timeout server 1h\n\n\
         frontend tls\n    bind 127.0.0.1:{listen} ssl crt {crt}\n    default_backend tls_be\n\n\
         backend tls_be\n    server tls_1 {upstream}\n",
        crt = crt.display(),
    )
}

fn start(
    haproxy: &Path,
    sluice_bin: &Path,
    [h, s, admin]: [u16; 3],
    pki: &Pki,
    dir: &Path,
) -> Result<Running> {
    let plain = tls::start_server(None)?;
    let direct = tls::start_server(Some(tls::server_config(&pki.server.cert, &pki.server.key)?))?;
    let cfg = haproxy_config(h, &pki.server.keystore, plain);
    let hap = run_haproxy(haproxy, "haproxy-tls", &cfg, &[("tls".into(), h)], dir)?;
    let mut cmd = sluice_command(sluice_bin, s, plain, admin, true, None);
    cmd.env("SLUICE_TLS_CERT", &pki.server.cert)
        .env("SLUICE_TLS_KEY", &pki.server.key);
    let sluice = spawn_sluice(
        &mut cmd,
        "tls",
        s,
        admin,
        std::time::Duration::from_secs(5),
        dir,
    )?;
    let at = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    Ok(Running {
        fronts: [direct, at(h), at(s)],
        pids: [None, Some(hap.pid()), Some(sluice.pid())],
        _haproxy: hap,
        _sluice: sluice,
    })
}

impl TlsResults {
    /// The section of the report.
    pub fn markdown(&self) -> String {
        let mut out = String::from("\n## TLS termination\n\n");
        let Some(plan) = self.plan else {
            return out;
        };
        let _ = writeln!(
            out,
            "A rustls client (TLS 1.3, offering only {}) → the proxy, terminating TLS with the \
             same certificate (ECDSA P-256, made for the run) → a plaintext server in the \
             harness; \"direct TLS\" is that server terminating TLS itself (rustls), no proxy. \
             Download: the server writes, the proxy encrypts (as for Fetch responses); upload: \
             the client writes, the proxy decrypts (as for Produce). {} round(s) of {} s per \
             route and direction, {} × 64 B round trips per route in {} block(s); medians, \
             [min–max] over rounds. Negotiated: {}.\n",
            tls::SUITE,
            plan.rounds,
            plan.secs,
            plan.rtt_blocks * plan.rtt_per_block,
            plan.rtt_blocks,
            self.negotiated_summary(),
        );
        out.push_str("| | direct TLS | haproxy (OpenSSL) | Sluice (rustls) | Sluice / haproxy |\n");
        out.push_str("|---|---|---|---|---|\n");
        let gbit = |runs: &[StreamRun]| runs.iter().map(StreamRun::gbit_per_sec).collect();
        let rows: [(&str, [Vec<f64>; 3], bool); 4] = [
            (
                "Download, Gbit/s",
                self.download.each_ref().map(|r| gbit(r)),
                true,
            ),
            ("Download, proxy CPU s/GB", self.download_cpu.clone(), false),
            (
                "Upload, Gbit/s",
                self.upload.each_ref().map(|r| gbit(r)),
                true,
            ),
            ("Upload, proxy CPU s/GB", self.upload_cpu.clone(), false),
        ];
        for (title, values, higher_better) in rows {
            row(&mut out, title, &values, higher_better);
        }
        for p in [50.0, 99.0] {
            let values = self.rtt.each_ref().map(|blocks| {
                blocks
                    .iter()
                    .filter_map(|b| percentile(b, p))
                    .map(|ns| ns as f64 / 1000.0)
                    .collect::<Vec<_>>()
            });
            row(&mut out, &format!("Round trip p{p:.0}, µs"), &values, false);
            let direct = median(&values[0]);
            let added = values.each_ref().map(|v| match (median(v), direct) {
                (Some(m), Some(d)) => vec![m - d],
                _ => Vec::new(),
            });
            row(
                &mut out,
                &format!("Added p{p:.0} vs direct TLS, µs"),
                &added,
                false,
            );
        }
        out
    }

    fn negotiated_summary(&self) -> String {
        ROUTES
            .iter()
            .map(|r| {
                let n = self.negotiated[r.index()]
                    .as_deref()
                    .unwrap_or("not measured");
                format!("{} {n}", r.name())
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One table row: each route's median and spread, and Sluice's ratio to haproxy with PASS
/// (at least as good) or MISS.
fn row(out: &mut String, title: &str, values: &[Vec<f64>; 3], higher_better: bool) {
    let _ = write!(out, "| {title} |");
    for v in values {
        let _ = write!(out, " {} |", cell(v));
    }
    let ratio = match (median(&values[2]), median(&values[1])) {
        (Some(s), Some(h)) if h > 0.0 => {
            let ok = if higher_better { s >= h } else { s <= h };
            format!("{:.2}× ({})", s / h, if ok { "PASS" } else { "MISS" })
        }
        _ => "—".into(),
    };
    let _ = writeln!(out, " {ratio} |");
}

fn cell(v: &[f64]) -> String {
    let Some(m) = median(v) else {
        return "—".into();
    };
    if v.len() < 2 {
        return format!("{m:.2}");
    }
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{m:.2} [{min:.2}–{max:.2}]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haproxy_terminates_tls_with_the_given_pem() {
        let cfg = haproxy_config(
            4433,
            Path::new("/x/server.keystore.pem"),
            "127.0.0.1:9".parse().unwrap(),
        );
        assert!(cfg.contains("bind 127.0.0.1:4433 ssl crt /x/server.keystore.pem\n"));
        assert!(cfg.contains("server tls_1 127.0.0.1:9\n"));
        assert!(cfg.contains("mode tcp"));
    }

    #[test]
    fn rows_compare_sluice_with_haproxy() {
        let mut out = String::new();
        row(&mut out, "x", &[vec![1.0], vec![2.0, 4.0], vec![3.0]], true);
        assert_eq!(
            out,
            "| x | 1.00 | 3.00 [2.00–4.00] | 3.00 | 1.00× (PASS) |\n"
        );
        out.clear();
        row(&mut out, "cpu", &[vec![], vec![1.0], vec![2.0]], false);
        assert_eq!(out, "| cpu | — | 1.00 | 2.00 | 2.00× (MISS) |\n");
    }

    #[test]
    fn rounds_rotate_the_routes() {
        assert_eq!(rotated(1), ROUTES);
        assert_eq!(rotated(2)[0], TlsRoute::Haproxy);
        assert_eq!(rotated(4), ROUTES);
    }
}
