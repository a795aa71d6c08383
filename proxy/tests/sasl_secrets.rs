//! No SASL secret ever leaves Sluice. A `sluice` process at log level `trace`, in both log
//! formats, with every span kept and exported over OTLP/HTTP to a collector stand-in, proxies
//! SaslHandshake and SaslAuthenticate frames to a broker stand-in: PLAIN (accepted and
//! refused), SCRAM-SHA-512 (client-first, client-final with the proof, the server's signature),
//! OAUTHBEARER (a JWT with a random signature and a random `jti` claim), and malformed variants
//! (a PLAIN body with a third NUL, a JWT whose payload is not base64url, a body shorter than its
//! declared length, an unknown version, a proof without a first message). Then every output
//! channel — stderr and stdout, every `/api/v1/*` answer, `/metrics`, every byte the collector
//! received — is scanned for every secret in the forms a careless line would print it (as is,
//! base64 and base64url at each alignment, hex, a `Debug` list of bytes).
//!
//! How it would fail: a `debug!(body = ?bytes)` of a request or response body, a span
//! attribute holding the token, or a principal taken from the password would put one of those
//! forms in a channel; `the_scan_finds_a_planted_leak` shows the scan catching each form. (A
//! decoder changed to append the PLAIN password to the principal made this test fail on
//! `/api/v1/clients`, the first channel that showed it.)
//!
//! A little over 600 lines: besides the scan and the run, it holds its own broker and collector
//! stand-ins (SASL answers, OTLP/HTTP bodies kept whole), which no other test needs.

#[path = "support/process.rs"]
mod process;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{GeneralPurpose, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine;
use process::{http_get, sluice, Running};

// ---------------------------------------------------------------------------------------------
// The scan.

const B64: &GeneralPurpose = &STANDARD_NO_PAD;
const B64URL: &GeneralPurpose = &URL_SAFE_NO_PAD;

/// `bytes` in base64 with `engine`'s alphabet, unpadded (the `base64` crate's encoder).
fn base64(bytes: &[u8], engine: &GeneralPurpose) -> String {
    engine.encode(bytes)
}

/// The forms of `secret` a leak would show: as is, hex, a `Debug` list of its bytes, and the
/// part of its base64 / base64url encoding that is the same whatever bytes come before and
/// after it (one per alignment).
fn forms(secret: &str) -> Vec<String> {
    let b = secret.as_bytes();
    let mut out = vec![
        secret.to_owned(),
        b.iter().map(|x| format!("{x:02x}")).collect(),
        b.iter().map(u8::to_string).collect::<Vec<_>>().join(", "),
    ];
    for alphabet in [B64, B64URL] {
        for lead in 0..3usize {
            let mut padded = vec![0u8; lead];
            padded.extend_from_slice(b);
            let enc = base64(&padded, alphabet);
            // Characters mixing the lead bytes, and the last (mixing what follows), differ.
            let skip = (lead * 8).div_ceil(6);
            out.push(enc[skip..enc.len() - 3].to_owned());
        }
    }
    out
}

/// Every (secret, form) found in `text`.
fn leaks(text: &[u8], secrets: &[String]) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for s in secrets {
        for f in forms(s) {
            if text.windows(f.len()).any(|w| w == f.as_bytes()) {
                found.push((s.clone(), f));
            }
        }
    }
    found
}

fn assert_clean(what: &str, text: &[u8], secrets: &[String]) {
    let found = leaks(text, secrets);
    assert!(
        found.is_empty(),
        "{what} leaks {found:?}:\n{}",
        String::from_utf8_lossy(text)
    );
}

#[test]
fn the_scan_finds_a_planted_leak() {
    let secret = "pw-PLAIN-5f1e0c9a8b7d6e2f".to_owned();
    let secrets = [secret.clone()];
    let body = format!("\0svc-orders\0{secret}").into_bytes();
    // What careless lines would print: the body's Debug as a byte string and as a Vec, its
    // base64 and hex, a JSON log escaping the NULs.
    let planted = [
        format!("TRACE tap event body={:?}", bytes_debug(&body)),
        format!("DEBUG body={body:?}"),
        format!("DEBUG body={}", base64(&body, B64)),
        format!(
            "DEBUG body={}",
            base64(&[&b"x"[..], &body].concat(), B64URL)
        ),
        format!(
            "DEBUG body={}",
            body.iter().map(|x| format!("{x:02x}")).collect::<String>()
        ),
        serde_json_like(&body),
    ];
    for line in planted {
        assert!(
            !leaks(line.as_bytes(), &secrets).is_empty(),
            "missed: {line}"
        );
    }
    assert!(leaks(b"principal=svc-orders", &secrets).is_empty());
}

/// `b"..."` as `bytes::Bytes` prints a body.
fn bytes_debug(b: &[u8]) -> String {
    b.iter()
        .flat_map(|c| std::ascii::escape_default(*c))
        .map(char::from)
        .collect()
}

/// A JSON log line with the body as a string (NULs escaped).
fn serde_json_like(b: &[u8]) -> String {
    let s: String = String::from_utf8_lossy(b).replace('\0', "\\u0000");
    format!(r#"{{"level":"DEBUG","fields":{{"body":"{s}"}}}}"#)
}

// ---------------------------------------------------------------------------------------------
// Frames.

fn uvarint(mut n: usize, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A request frame: header v1 (v2 with tagged fields when `flexible`), then `body`.
fn request(api_key: i16, version: i16, correlation: i32, client_id: &str, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend(api_key.to_be_bytes());
    f.extend(version.to_be_bytes());
    f.extend(correlation.to_be_bytes());
    f.extend((client_id.len() as i16).to_be_bytes());
    f.extend(client_id.as_bytes());
    if api_key == 36 && version >= 2 {
        f.push(0);
    }
    f.extend(body);
    let mut frame = (f.len() as i32).to_be_bytes().to_vec();
    frame.extend(f);
    frame
}

fn handshake(mechanism: &str) -> Vec<u8> {
    let mut b = (mechanism.len() as i16).to_be_bytes().to_vec();
    b.extend(mechanism.as_bytes());
    b
}

/// A SaslAuthenticate request body at `version` (1: bytes; 2: compact bytes, tagged fields).
fn authenticate(version: i16, auth: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    if version >= 2 {
        uvarint(auth.len() + 1, &mut b);
        b.extend(auth);
        b.push(0);
    } else {
        b.extend((auth.len() as i32).to_be_bytes());
        b.extend(auth);
    }
    b
}

fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; i32::from_be_bytes(len).max(0) as usize];
    s.read_exact(&mut body).ok()?;
    Some(body)
}

// ---------------------------------------------------------------------------------------------
// The broker stand-in.

/// What the broker says to one SaslAuthenticate body: (error code, server message).
fn verdict(auth: Option<&[u8]>, secrets: &Secrets) -> (i16, Vec<u8>) {
    let Some(auth) = auth else {
        return (58, Vec::new());
    };
    let text = String::from_utf8_lossy(auth);
    if text.starts_with("c=") {
        (0, format!("v={}", secrets.server_signature).into_bytes())
    } else if text.starts_with("n,,n=") {
        let nonce = secrets.client_nonce.clone() + "srvNonce7";
        (0, format!("r={nonce},s=c2FsdA==,i=4096").into_bytes())
    } else if text.contains("pw-FAIL") || text.contains("pw-MAL") {
        (58, Vec::new())
    } else {
        (0, Vec::new())
    }
}

/// Answers SaslHandshake (v1) and SaslAuthenticate (v1, v2) requests; ignores others.
fn broker(secrets: Arc<Secrets>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().map_while(Result::ok) {
            let secrets = secrets.clone();
            std::thread::spawn(move || serve(s, &secrets));
        }
    });
    addr
}

fn serve(mut s: TcpStream, secrets: &Secrets) {
    while let Some(f) = read_frame(&mut s) {
        if f.len() < 10 {
            return;
        }
        let key = i16::from_be_bytes([f[0], f[1]]);
        let version = i16::from_be_bytes([f[2], f[3]]);
        let correlation = &f[4..8];
        let id_len = i16::from_be_bytes([f[8], f[9]]).max(0) as usize;
        let mut body = f.get(10 + id_len..).unwrap_or_default();
        let mut out = correlation.to_vec();
        match (key, version) {
            (17, _) => {
                out.extend([0, 0, 0, 0, 0, 3]);
                for m in ["PLAIN", "SCRAM-SHA-512", "OAUTHBEARER"] {
                    out.extend(handshake(m));
                }
            }
            (36, 1) => {
                let auth = body.get(..4).and_then(|l| {
                    body.get(4..4 + i32::from_be_bytes(l.try_into().unwrap()).max(0) as usize)
                });
                let (error, server) = verdict(auth, secrets);
                out.extend(error.to_be_bytes());
                let message: &[u8] = if error == 0 {
                    b""
                } else {
                    b"Authentication failed"
                };
                if error == 0 {
                    out.extend((-1i16).to_be_bytes());
                } else {
                    out.extend((message.len() as i16).to_be_bytes());
                    out.extend(message);
                }
                out.extend((server.len() as i32).to_be_bytes());
                out.extend(&server);
                out.extend(3_600_000i64.to_be_bytes());
            }
            (36, 2) => {
                body = body.get(1..).unwrap_or_default(); // the header's tagged fields
                let auth = body
                    .first()
                    .filter(|n| **n > 0 && **n < 0x80)
                    .and_then(|n| body.get(1..usize::from(*n)));
                let (error, server) = verdict(auth, secrets);
                out.push(0); // response header tagged fields
                out.extend(error.to_be_bytes());
                if error == 0 {
                    out.push(0);
                } else {
                    let m = b"Authentication failed";
                    uvarint(m.len() + 1, &mut out);
                    out.extend(m);
                }
                uvarint(server.len() + 1, &mut out);
                out.extend(&server);
                out.extend(3_600_000i64.to_be_bytes());
                out.push(0);
            }
            _ => continue,
        }
        let mut frame = (out.len() as i32).to_be_bytes().to_vec();
        frame.extend(out);
        if s.write_all(&frame).is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The collector stand-in: keeps every byte of every OTLP/HTTP request and answers 200.

fn collector() -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let keep = got.clone();
    std::thread::spawn(move || {
        for s in l.incoming().map_while(Result::ok) {
            let keep = keep.clone();
            std::thread::spawn(move || collect(s, &keep));
        }
    });
    (addr, got)
}

fn collect(mut s: TcpStream, keep: &Mutex<Vec<u8>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 << 10];
    loop {
        // One request: headers, then a Content-Length body.
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < end + len {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        keep.lock().unwrap().extend(buf.drain(..end + len));
        let ok =
            "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
        if s.write_all(ok.as_bytes()).is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The run.

struct Secrets {
    plain: String,
    refused: String,
    client_nonce: String,
    proof: String,
    server_signature: String,
    token: String,
    token_payload: String,
    token_signature: String,
    jti: String,
    malformed: Vec<String>,
}

fn random(prefix: &str) -> String {
    format!(
        "{prefix}{:016x}{:08x}",
        rand::random::<u64>(),
        rand::random::<u32>()
    )
}

impl Secrets {
    fn new() -> Secrets {
        let jti = random("jti-");
        let header = base64(br#"{"alg":"RS256","typ":"JWT"}"#, B64URL);
        let payload = base64(
            format!(r#"{{"sub":"svc-oauth","jti":"{jti}","scope":"kafka"}}"#).as_bytes(),
            B64URL,
        );
        let signature = base64(random("sig-").as_bytes(), B64URL);
        Secrets {
            plain: random("pw-PLAIN-"),
            refused: random("pw-FAIL-"),
            client_nonce: random("cnonce"),
            proof: base64(random("proof-").as_bytes(), B64),
            server_signature: base64(random("srvsig-").as_bytes(), B64),
            token: format!("{header}.{payload}.{signature}"),
            token_payload: payload,
            token_signature: signature,
            jti,
            malformed: (0..5).map(|i| random(&format!("pw-MAL{i}-"))).collect(),
        }
    }

    fn all(&self) -> Vec<String> {
        let mut v = vec![
            self.plain.clone(),
            self.refused.clone(),
            self.proof.clone(),
            self.server_signature.clone(),
            self.token.clone(),
            self.token_payload.clone(),
            self.token_signature.clone(),
            self.jti.clone(),
        ];
        v.extend(self.malformed.iter().cloned());
        v
    }
}

/// One client connection: each frame sent, and its answer read when one comes.
fn exchange(proxy: SocketAddr, frames: &[Vec<u8>]) -> TcpStream {
    let mut s = TcpStream::connect(proxy).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for f in frames {
        s.write_all(f).unwrap();
        let _ = read_frame(&mut s);
    }
    s
}

/// Every client's exchanges; the streams are kept open so the views show them.
fn clients(proxy: SocketAddr, x: &Secrets) -> Vec<TcpStream> {
    let hs = |c: &str, m: &str| request(17, 1, 1, c, &handshake(m));
    let auth = |c: &str, v: i16, n: i32, a: &[u8]| request(36, v, n, c, &authenticate(v, a));
    let scram_first = format!("n,,n=svc-scram,r={}", x.client_nonce);
    let scram_final = format!("c=biws,r={}srvNonce7,p={}", x.client_nonce, x.proof);
    let oauth = format!("n,,\x01auth=Bearer {}\x01\x01", x.token);
    let [m0, m1, m2, m3, m4] = &x.malformed[..] else {
        unreachable!()
    };
    // A body that declares more auth bytes than it holds.
    let mut short = 200i32.to_be_bytes().to_vec();
    short.extend(format!("\0svc-short\0{m2}").as_bytes());
    vec![
        exchange(
            proxy,
            &[
                hs("plain-app", "PLAIN"),
                auth(
                    "plain-app",
                    1,
                    2,
                    format!("\0svc-plain\0{}", x.plain).as_bytes(),
                ),
            ],
        ),
        exchange(
            proxy,
            &[
                hs("denied-app", "PLAIN"),
                auth(
                    "denied-app",
                    2,
                    2,
                    format!("\0svc-denied\0{}", x.refused).as_bytes(),
                ),
            ],
        ),
        exchange(
            proxy,
            &[
                hs("scram-app", "SCRAM-SHA-512"),
                auth("scram-app", 2, 2, scram_first.as_bytes()),
                auth("scram-app", 2, 3, scram_final.as_bytes()),
            ],
        ),
        exchange(
            proxy,
            &[
                hs("oauth-app", "OAUTHBEARER"),
                auth("oauth-app", 1, 2, oauth.as_bytes()),
            ],
        ),
        exchange(
            proxy,
            &[
                hs("mal-app", "PLAIN"),
                auth("mal-app", 1, 2, format!("\0svc-mal\0{m0}\0x").as_bytes()),
                auth(
                    "mal-app",
                    2,
                    3,
                    format!("n,,\x01auth=Bearer eyJ.{m1}!.sig\x01\x01").as_bytes(),
                ),
                request(36, 1, 4, "mal-app", &short),
                auth("mal-app", 2, 5, format!("c=biws,r=x,p={m3}").as_bytes()),
            ],
        ),
        // An unknown version last, on its own: the tap may stop following this connection.
        exchange(
            proxy,
            &[request(
                36,
                99,
                1,
                "v99-app",
                format!("\0svc-v99\0{m4}").as_bytes(),
            )],
        ),
    ]
}

/// The `listen` address on the log line with `needle`, in either log format.
fn addr(p: &mut Running, needle: &str) -> SocketAddr {
    let line = p.expect_line(needle, Duration::from_secs(10));
    let at = ["listen=", "\"listen\":\""]
        .iter()
        .find_map(|f| line.find(f).map(|i| i + f.len()))
        .unwrap_or_else(|| panic!("no listen field: {line}"));
    line[at..]
        .split(|c: char| c.is_whitespace() || c == '"')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn poll(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn no_sasl_secret_reaches_any_output() {
    let secrets = Arc::new(Secrets::new());
    let all = secrets.all();
    let upstream = broker(secrets.clone());
    let dir = tempfile::tempdir().unwrap();
    for format in ["plain", "json"] {
        let (otlp, received) = collector();
        let file = dir.path().join(format!("sasl-{format}.toml"));
        std::fs::write(
            &file,
            format!(
                "[telemetry]\notlp_endpoint = \"http://{otlp}\"\notlp_protocol = \"http/protobuf\"\n\
                 metrics_interval = \"200ms\"\nspan_sample_ratio = 1.0\n"
            ),
        )
        .unwrap();
        let stdout_path = dir.path().join(format!("stdout-{format}"));
        let stdout = std::fs::File::create(&stdout_path).unwrap();
        let mut p = Running::start_with_stdout(
            sluice()
                .args(["--config", file.to_str().unwrap()])
                .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
                .args(["--upstream", &upstream.to_string()])
                .args(["--log-format", format, "--log-level", "trace"])
                .env("SLUICE_LOOKUP_ENABLED", "false"),
            Stdio::from(stdout),
        );
        let proxy = addr(&mut p, "proxy accepting connections");
        let admin = addr(&mut p, "admin API listening");
        let open = clients(proxy, &secrets);

        // The channels hold what they should: the principals, the refusal.
        poll(
            "the principals in the clients view",
            Duration::from_secs(15),
            || {
                let (_, body) = http_get(admin, "/api/v1/clients");
                ["svc-plain", "svc-scram", "svc-oauth"]
                    .iter()
                    .all(|p| body.contains(p))
                    && body.contains("\"failed\"")
            },
        );
        let mut answers = Vec::new();
        for path in [
            "/api/v1/stats",
            "/api/v1/clients",
            "/api/v1/groups",
            "/api/v1/topics",
            "/api/v1/connections",
            "/api/v1/findings",
            "/api/v1/throttles",
            "/api/v1/observer",
            "/metrics",
        ] {
            let (status, body) = http_get(admin, path);
            assert_eq!(status, 200, "{path}");
            assert_clean(path, body.as_bytes(), &all);
            answers.push(body);
        }
        assert!(answers[4].contains("\"sasl\":\"failed\""), "{}", answers[4]);
        assert!(
            answers[8].contains("enduser_id=\"svc-oauth\""),
            "{}",
            answers[8]
        );
        assert!(
            answers[8].contains("sluice_sasl_failures_total"),
            "{}",
            answers[8]
        );

        drop(open);
        p.signal("-TERM");
        // Generous: the shutdown flushes the exporters, on a machine that may be busy.
        let code = p.exit_within(Duration::from_secs(60));
        assert_eq!(code, Some(0), "{format}: {}", p.seen.join("\n"));
        let mut log = p.seen.join("\n");
        log.push('\n');
        log.push_str(&p.drain_lines(Duration::from_secs(2)).join("\n"));
        assert!(
            log.contains("SASL authentication failed") && log.contains("svc-denied"),
            "the refusal is logged: {log}"
        );
        assert!(!log.contains("panicked"), "{log}");
        assert!(log.contains("tap event"), "trace lines are on: {log}");
        assert_clean(&format!("the {format} log"), log.as_bytes(), &all);
        assert_clean("stdout", &std::fs::read(&stdout_path).unwrap(), &all);
        let otlp_bytes = received.lock().unwrap().clone();
        let has = |needle: &[u8]| otlp_bytes.windows(needle.len()).any(|w| w == needle);
        assert!(
            has(b"enduser.id") && has(b"svc-oauth"),
            "spans reached the collector"
        );
        assert_clean("OTLP", &otlp_bytes, &all);
    }
}
