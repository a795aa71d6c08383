//! Headless Chromium (Debian's `chromium`, installed by `scripts/setup.sh --only chromium`):
//! a screenshot of a page, and its DOM after its scripts ran. Each run gets a fresh profile
//! directory and no network access beyond the page's own requests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// The window size of every run.
pub const WINDOW: (u32, u32) = (1280, 800);

/// The `chromium` binary: `$CHROMIUM`, else the first on `PATH`, else `/usr/bin`.
pub fn binary() -> PathBuf {
    crate::tools::binary("CHROMIUM", "chromium")
}

/// Runs headless Chromium on `url` with `mode` (`--screenshot=FILE` or `--dump-dom`),
/// letting the page's scripts and requests run for up to `budget` of virtual time.
fn run(url: &str, mode: &str, budget: Duration) -> Output {
    let profile = tempfile::Builder::new()
        .prefix("sluice-chromium-")
        .tempdir()
        .expect("create chromium profile dir");
    let bin = binary();
    Command::new(&bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--window-size={},{}", WINDOW.0, WINDOW.1))
        .arg(format!("--virtual-time-budget={}", budget.as_millis()))
        .arg(mode)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "start {}: {e} (scripts/setup.sh --only chromium installs it)",
                bin.display()
            )
        })
}

/// Saves a screenshot of `url` to `png`; panics with Chromium's stderr if none was written.
pub fn screenshot(url: &str, png: &Path, budget: Duration) {
    let _ = std::fs::remove_file(png);
    let out = run(url, &format!("--screenshot={}", png.display()), budget);
    assert!(
        png.exists(),
        "chromium wrote no screenshot of {url} ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The DOM of `url` after its scripts ran for up to `budget` of virtual time.
pub fn dump_dom(url: &str, budget: Duration) -> String {
    let out = run(url, "--dump-dom", budget);
    assert!(
        out.status.success(),
        "chromium --dump-dom {url} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Width and height of a PNG, from its IHDR chunk; `None` if `bytes` is not a PNG.
pub fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.len() < 24 || !bytes.starts_with(SIGNATURE) || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    Some((be(&bytes[16..20]), be(&bytes[20..24])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_size_reads_ihdr() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend_from_slice(&1280u32.to_be_bytes());
        png.extend_from_slice(&800u32.to_be_bytes());
        assert_eq!(png_size(&png), Some((1280, 800)));
        assert_eq!(png_size(b"<html>error</html> and more bytes here"), None);
    }
}
