//! Finding the external tools (what `scripts/setup.sh` installs) and describing the machine.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

const SETUP_HINT: &str = "run scripts/setup.sh";

/// Paths of the tools the harness drives.
#[derive(Debug, Clone)]
pub struct Tools {
    /// `haproxy`.
    pub haproxy: PathBuf,
    /// `iperf3`.
    pub iperf3: PathBuf,
    /// `java`.
    pub java: PathBuf,
    /// Directory of Kafka jars (broker and kafka-tools).
    pub kafka_libs: PathBuf,
    /// This checkout's `integration-tests/scripts/kafka-broker.sh`.
    pub broker_script: PathBuf,
    /// Kafka version, from `env.sh` or the tools jar name.
    pub kafka_version: String,
}

impl Tools {
    /// Finds every tool, reading `SLUICE_*` from the environment first and then from
    /// `$SLUICE_CACHE/env.sh` (default `~/.cache/sluice/env.sh`). Fails with a hint to run
    /// `scripts/setup.sh` when something is missing. `kafka` false skips the Kafka tools.
    pub fn load(kafka: bool) -> Result<Tools> {
        let vars = sluice_env();
        let mut missing = Vec::new();
        let mut find = |name: &str| {
            let p = find_command(name);
            if p.is_none() {
                missing.push(format!("`{name}` not found on PATH"));
            }
            p.unwrap_or_default()
        };
        let haproxy = find("haproxy");
        let iperf3 = find("iperf3");
        let java = if kafka { find("java") } else { PathBuf::new() };
        let mut var = |k: &str| -> PathBuf {
            match vars.get(k) {
                Some(v) if Path::new(v).exists() => PathBuf::from(v),
                Some(v) => {
                    missing.push(format!("{k}={v} does not exist"));
                    PathBuf::new()
                }
                None => {
                    missing.push(format!("{k} is not set (no env.sh?)"));
                    PathBuf::new()
                }
            }
        };
        let (kafka_libs, broker_script) = if kafka {
            let script = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../integration-tests/scripts/kafka-broker.sh");
            (var("SLUICE_KAFKA_LIBS"), script)
        } else {
            (PathBuf::new(), PathBuf::new())
        };
        let mut kafka_version = vars
            .get("SLUICE_KAFKA_VERSION")
            .cloned()
            .unwrap_or_default();
        if kafka && !kafka_libs.as_os_str().is_empty() {
            match tools_jar_version(&kafka_libs) {
                Some(v) => {
                    if kafka_version.is_empty() {
                        kafka_version = v;
                    }
                }
                None => missing.push(format!("no kafka-tools-*.jar in {}", kafka_libs.display())),
            }
        }
        if !missing.is_empty() {
            bail!("missing tools: {} — {SETUP_HINT}", missing.join("; "));
        }
        Ok(Tools {
            haproxy,
            iperf3,
            java,
            kafka_libs,
            broker_script,
            kafka_version,
        })
    }

    /// `haproxy -v`, first line up to the URL.
    pub fn haproxy_version(&self) -> String {
        let v = first_line(&self.haproxy, &["-v"]);
        v.split(" - ").next().unwrap_or(&v).trim().to_owned()
    }

    /// `iperf3 --version`, first line.
    pub fn iperf3_version(&self) -> String {
        first_line(&self.iperf3, &["--version"])
    }

    /// `java -version`, first line.
    pub fn java_version(&self) -> String {
        if self.java.as_os_str().is_empty() {
            return String::new();
        }
        first_line(&self.java, &["-version"])
    }
}

/// The OpenTelemetry Collector binary (`SLUICE_OTELCOL`, built by
/// `scripts/setup.sh --only collector`).
pub fn otelcol() -> Result<PathBuf> {
    match sluice_env().get("SLUICE_OTELCOL") {
        Some(v) if Path::new(v).is_file() => Ok(PathBuf::from(v)),
        Some(v) => bail!(
            "missing tools: SLUICE_OTELCOL={v} does not exist — run scripts/setup.sh --only \
             collector, or pass --skip telemetry"
        ),
        None => bail!(
            "missing tools: SLUICE_OTELCOL is not set (no env.sh?) — run scripts/setup.sh \
             --only collector, or pass --skip telemetry"
        ),
    }
}

/// `SLUICE_*` settings: `$SLUICE_CACHE/env.sh`, overridden by the process environment.
pub fn sluice_env() -> HashMap<String, String> {
    let cache = std::env::var_os("SLUICE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/sluice")
        });
    let mut vars: HashMap<String, String> = std::fs::read_to_string(cache.join("env.sh"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), unquote(v)))
        .collect();
    vars.extend(std::env::vars().filter(|(k, _)| k.starts_with("SLUICE_")));
    vars
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
        .unwrap_or(v)
        .to_owned()
}

/// `name` on PATH, or in /usr/sbin or /sbin (where Debian puts haproxy).
pub fn find_command(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn tools_jar_version(libs: &Path) -> Option<String> {
    std::fs::read_dir(libs).ok()?.flatten().find_map(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        let v = name.strip_prefix("kafka-tools-")?.strip_suffix(".jar")?;
        (!v.starts_with("api")).then(|| v.to_owned())
    })
}

/// First non-empty line of a command's stdout, or else its stderr.
pub fn first_line(program: &Path, args: &[&str]) -> String {
    let Ok(out) = Command::new(program).args(args).output() else {
        return "?".into();
    };
    let pick = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(str::to_owned)
    };
    pick(&out.stdout)
        .or_else(|| pick(&out.stderr))
        .unwrap_or_else(|| "?".into())
}

/// One line describing the machine: CPUs, CPU model, memory, kernel.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim())
        .to_owned();
    let mem_kib: f64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cpus} CPUs (nproc), {model}, {:.1} GiB RAM, Linux {}",
        mem_kib / 1024.0 / 1024.0,
        kernel.trim()
    )
}

/// The 1-minute load average.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Current UTC date and time.
pub fn date() -> String {
    first_line(Path::new("date"), &["-u", "+%Y-%m-%d %H:%M:%S UTC"])
}

/// Short commit of the workspace checkout, with `+dirty` when it has local changes.
pub fn git_describe(repo: &Path) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(rev) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            format!("{rev}{}", if dirty { "+dirty" } else { "" })
        }
        None => "unknown commit".into(),
    }
}

/// The workspace root (this crate's parent directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_owned)
}

/// The Sluice binary to test: `explicit` if given (it must exist); else, when run by cargo,
/// `cargo build --release -p sluice` into the target directory the running binary lives in
/// (announced through `step`), and that build.
pub fn sluice_binary(explicit: Option<&Path>, mut step: impl FnMut(&str)) -> Result<PathBuf> {
    if let Some(bin) = explicit {
        if !bin.is_file() {
            bail!("--sluice-bin {} does not exist", bin.display());
        }
        return Ok(bin.to_owned());
    }
    let exe = std::env::current_exe().context("locating the running binary")?;
    let target_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("the running binary has no target directory")?
        .to_owned();
    let bin = target_dir.join("release").join("sluice");
    if let Some(cargo) = std::env::var_os("CARGO") {
        step("building sluice (cargo build --release -p sluice)");
        let status = Command::new(cargo)
            .args(["build", "--release", "-p", "sluice", "--bin", "sluice"])
            .arg("--manifest-path")
            .arg(workspace_root().join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target_dir)
            .status()
            .context("running cargo build")?;
        if !status.success() {
            bail!(
                "cargo build --release -p sluice failed ({status}); fix the build, or pass \
                 --sluice-bin PATH to test an existing binary"
            );
        }
    }
    if !bin.is_file() {
        bail!(
            "no Sluice binary at {}: run `cargo build --release -p sluice` or pass --sluice-bin",
            bin.display()
        );
    }
    Ok(bin)
}
