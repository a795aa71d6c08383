//! Bad throttle policy files, as an operator meets them: `sluice check-config` and a start
//! both exit 64 before binding anything, naming the file, the policy and the key of every
//! error at once — like any other bad key.

use std::path::Path;
use std::time::Duration;

#[path = "support/process.rs"]
mod process;

use process::sluice;

/// A config file naming `policies` as its policy file, in `dir`.
fn config_with(dir: &Path, policies: &str) -> std::path::PathBuf {
    let file = dir.join("policies.toml");
    std::fs::write(&file, policies).unwrap();
    let config = dir.join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            "upstream = \"127.0.0.1:19093\"\n[throttle]\npolicy_file = \"{}\"\n",
            file.display()
        ),
    )
    .unwrap();
    config
}

/// `check-config` on a config whose policy file is `policies`: (exit code, stderr).
fn check(policies: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = sluice()
        .arg("check-config")
        .arg(config_with(dir.path(), policies))
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const GOOD: &str = r#"
[[policy]]
name = "incident-loop"
group = "billing-*"
fetch_bytes_per_sec = "256KiB"

[[policy]]
name = "legacy"
client_id = "legacy-consumer"
host = "10.0.0.0/8"
requests_per_sec = 50
mode = "dry-run"
"#;

/// Each bad policy, and what its error must name besides the file and the policy.
const BAD: [(&str, &str, &[&str]); 4] = [
    (
        "unknown key",
        "[[policy]]\nname = \"typo\"\ngroup = \"g\"\nfetch_bytes_per_sec = \"1MiB\"\nspeed = 3\n",
        &["typo", "speed"],
    ),
    (
        "bad CIDR",
        "[[policy]]\nname = \"wide\"\nhost = \"10.0.0.0/33\"\nfetch_bytes_per_sec = \"1MiB\"\n",
        &["wide", "host"],
    ),
    (
        "cap of 0",
        "[[policy]]\nname = \"zero\"\ngroup = \"g\"\nfetch_bytes_per_sec = 0\n",
        &["zero", "fetch_bytes_per_sec"],
    ),
    (
        "conflicting matches",
        "[[policy]]\nname = \"first\"\ngroup = \"orders\"\nfetch_bytes_per_sec = \"1MiB\"\n\
         [[policy]]\nname = \"second\"\ngroup = \"orders\"\nrequests_per_sec = 5\n",
        &["first", "second"],
    ),
];

#[test]
fn a_good_policy_file_passes_check_config() {
    let (code, err) = check(GOOD);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn each_bad_policy_fails_check_config_with_64_naming_it() {
    for (what, policies, names) in BAD {
        let (code, err) = check(policies);
        assert_eq!(code, Some(64), "{what}: {err}");
        assert!(
            err.contains("policies.toml"),
            "{what}: the file is not named: {err}"
        );
        for n in names {
            assert!(err.contains(n), "{what}: `{n}` is not named: {err}");
        }
    }
}

#[test]
fn every_bad_policy_of_a_file_is_named_at_once() {
    let all: String = BAD
        .iter()
        .map(|(_, p, _)| *p)
        .collect::<Vec<_>>()
        .join("\n");
    let (code, err) = check(&all);
    assert_eq!(code, Some(64), "{err}");
    for (what, _, names) in BAD {
        for n in names {
            assert!(err.contains(n), "{what}: `{n}` is not named: {err}");
        }
    }
}

#[test]
fn a_start_with_a_bad_policy_file_exits_64_without_binding() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(dir.path(), BAD[1].1);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = sluice()
        .args(["run", "--config"])
        .arg(&config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--admin-listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let end = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        // Bad config: nothing may ever listen on the port.
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "the port was bound"
        );
        assert!(std::time::Instant::now() < end, "still running after 10 s");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(64), "{err}");
    assert!(err.contains("wide") && err.contains("host"), "{err}");
}
