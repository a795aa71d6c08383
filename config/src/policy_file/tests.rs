use std::path::Path;
use std::time::{Duration, SystemTime};

use super::*;

fn now() -> SystemTime {
    humantime::parse_rfc3339("2026-06-01T00:00:00Z").unwrap()
}

fn check(text: &str) -> Result<Vec<PolicySpec>, ConfigErrors> {
    parse(text, Path::new("/etc/sluice/policies.toml"), now())
}

/// The error paths of a bad file, sorted.
fn bad(text: &str) -> (Vec<String>, String) {
    let err = check(text).unwrap_err();
    let mut paths: Vec<String> = err.paths().iter().map(|p| p.to_string()).collect();
    paths.sort();
    (paths, err.to_string())
}

#[test]
fn a_full_policy_is_parsed() {
    let p = check(
        r#"
[[policy]]
name = "incident-loop"
group = "orders-*"
client_id = "legacy-consumer"
host = "10.0.0.0/8"
principal = "User:alice"
finding = "fetch_without_commit"
fetch_bytes_per_sec = "256KiB"
requests_per_sec = 50
mode = "enforce"
expires = "2026-12-31T00:00:00Z"

[[policy]]
name = "watch"
client_id = "tools"
requests_per_sec = 5
mode = "dry-run"
expires = 2026-12-31T00:00:00Z
"#,
    )
    .unwrap();
    assert_eq!(p.len(), 2);
    let a = &p[0];
    assert_eq!(a.name, "incident-loop");
    assert_eq!(a.matcher.group, Some(Glob("orders-*".into())));
    assert_eq!(a.matcher.host, Some(Cidr::parse("10.0.0.0/8").unwrap()));
    assert_eq!(a.matcher.finding.as_deref(), Some("fetch_without_commit"));
    assert_eq!(a.action.fetch_bytes_per_sec, Some(262_144));
    assert_eq!(a.action.requests_per_sec, Some(50));
    assert_eq!(a.action.mode, Mode::Enforce);
    assert_eq!(
        a.expires,
        Some(humantime::parse_rfc3339("2026-12-31T00:00:00Z").unwrap())
    );
    assert_eq!(p[1].action.mode, Mode::DryRun);
    assert_eq!(p[1].action.fetch_bytes_per_sec, None);
    assert_eq!(p[1].expires, a.expires);
    // The file's own form reads back the same.
    assert_eq!(check(&to_toml(&p)).unwrap(), p);
}

#[test]
fn an_empty_file_has_no_policies() {
    assert_eq!(check("").unwrap(), []);
    assert_eq!(check("# nothing yet\n").unwrap(), []);
}

#[test]
fn unknown_keys_are_named_with_file_and_policy() {
    let (paths, text) = bad(
        "limit = 1\n[[policy]]\nname = \"a\"\ngroup = \"g\"\nrequests_per_sec = 1\nfetch_bytes = 5\n",
    );
    assert_eq!(paths, ["limit", "policy[a].fetch_bytes"]);
    assert!(
        text.contains("policy[a].fetch_bytes (file /etc/sluice/policies.toml): unknown key"),
        "{text}"
    );
    let (paths, text) = bad("[[policy]]\nname = \"a\"\ngroup = \"g\"\nrequest_per_sec = 1\n");
    assert_eq!(paths, ["policy[a].action", "policy[a].request_per_sec"]);
    assert!(text.contains("did you mean `requests_per_sec`"), "{text}");
}

#[test]
fn a_name_is_required_and_unique() {
    let (paths, _) = bad("[[policy]]\ngroup = \"g\"\nrequests_per_sec = 1\n");
    assert_eq!(paths, ["policy[#1].name"]);
    let (paths, _) = bad("[[policy]]\nname = \"\"\ngroup = \"g\"\nrequests_per_sec = 1\n");
    assert_eq!(paths, ["policy[#1].name"]);
    let (paths, text) = bad(
        "[[policy]]\nname = \"a\"\ngroup = \"g\"\nrequests_per_sec = 1\n\
         [[policy]]\nname = \"a\"\ngroup = \"h\"\nrequests_per_sec = 1\n",
    );
    assert_eq!(paths, ["policy[a].name"]);
    assert!(text.contains("duplicate name"), "{text}");
}

#[test]
fn a_policy_needs_a_criterion_and_a_cap() {
    let (paths, text) = bad("[[policy]]\nname = \"a\"\nrequests_per_sec = 1\n");
    assert_eq!(paths, ["policy[a].match"]);
    assert!(text.contains("no criterion"), "{text}");
    let (paths, text) = bad("[[policy]]\nname = \"a\"\ngroup = \"g\"\nmode = \"dry-run\"\n");
    assert_eq!(paths, ["policy[a].action"]);
    assert!(text.contains("no cap"), "{text}");
}

#[test]
fn a_cap_of_zero_is_refused() {
    let (paths, text) = bad(
        "[[policy]]\nname = \"a\"\ngroup = \"g\"\nfetch_bytes_per_sec = \"0KiB\"\nrequests_per_sec = 0\n",
    );
    assert_eq!(
        paths,
        [
            "policy[a].fetch_bytes_per_sec",
            "policy[a].requests_per_sec"
        ]
    );
    assert!(text.contains("a cap of 0"), "{text}");
    let (paths, _) = bad(
        "[[policy]]\nname = \"a\"\ngroup = \"g\"\nfetch_bytes_per_sec = \"lots\"\nrequests_per_sec = -1\n",
    );
    assert_eq!(
        paths,
        [
            "policy[a].fetch_bytes_per_sec",
            "policy[a].requests_per_sec"
        ]
    );
    let (paths, _) =
        bad("[[policy]]\nname = \"a\"\ngroup = \"g\"\nrequests_per_sec = 5000000000\n");
    assert_eq!(paths, ["policy[a].requests_per_sec"]);
}

#[test]
fn bad_cidr_finding_mode_and_expiry_are_named() {
    let (paths, text) = bad(
        "[[policy]]\nname = \"a\"\nhost = \"10.0.0.1/8\"\nfinding = \"slow_consumer\"\n\
         requests_per_sec = 1\nmode = \"gentle\"\nexpires = \"tomorrow\"\n\
         [[policy]]\nname = \"b\"\nhost = \"10.0.0.0/33\"\nrequests_per_sec = 1\n\
         expires = \"2026-01-01T00:00:00Z\"\n",
    );
    assert_eq!(
        paths,
        [
            "policy[a].expires",
            "policy[a].finding",
            "policy[a].host",
            "policy[a].mode",
            "policy[b].expires",
            "policy[b].host",
        ]
    );
    for needle in [
        "host bits set",
        "not a finding kind (one of fetch_loop",
        "`gentle` is not a mode (enforce or dry-run)",
        "not an RFC 3339 time",
        "already past",
        "prefix length",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
}

#[test]
fn two_policies_with_the_same_match_conflict_and_both_are_named() {
    let (paths, text) = bad(
        "[[policy]]\nname = \"first\"\ngroup = \"g\"\nhost = \"10.0.0.0/8\"\nrequests_per_sec = 1\n\
         [[policy]]\nname = \"second\"\nhost = \"10.0.0.0/8\"\ngroup = \"g\"\n\
         fetch_bytes_per_sec = 1000\nmode = \"dry-run\"\n",
    );
    assert_eq!(paths, ["policy[second].match"]);
    assert!(
        text.contains("policy[second].match") && text.contains("policy `first`"),
        "{text}"
    );
    // Reported beside the other problems of a policy that is bad anyway.
    let (paths, text) = bad(
        "[[policy]]\nname = \"first\"\ngroup = \"g\"\nrequests_per_sec = 1\ncolour = 1\n\
         [[policy]]\nname = \"second\"\ngroup = \"g\"\nrequests_per_sec = 0\n",
    );
    assert_eq!(
        paths,
        [
            "policy[first].colour",
            "policy[second].match",
            "policy[second].requests_per_sec"
        ]
    );
    assert!(text.contains("policy `first`"), "{text}");
    // Narrower is not the same.
    check(
        "[[policy]]\nname = \"first\"\ngroup = \"g\"\nrequests_per_sec = 1\n\
         [[policy]]\nname = \"second\"\ngroup = \"g\"\nclient_id = \"c\"\nrequests_per_sec = 1\n",
    )
    .unwrap();
}

#[test]
fn every_problem_of_every_policy_is_reported_at_once() {
    let (paths, text) = bad(
        "[[policy]]\nname = \"a\"\nhost = \"nope\"\nrequests_per_sec = 0\n\
         [[policy]]\nname = \"b\"\nfetch_bytes_per_sec = 1\n\
         [[policy]]\nname = \"c\"\ngroup = 5\nbogus = true\nrequests_per_sec = 1\n",
    );
    assert_eq!(
        paths,
        [
            "policy[a].host",
            "policy[a].requests_per_sec",
            "policy[b].match",
            "policy[c].bogus",
            "policy[c].group",
        ]
    );
    assert!(
        text.starts_with("invalid configuration: 5 problems"),
        "{text}"
    );
}

#[test]
fn malformed_files_are_errors() {
    let (paths, text) = bad("[[policy]\n");
    assert_eq!(paths, ["policy file"]);
    assert!(text.contains("not valid TOML"), "{text}");
    let (paths, _) = bad("policy = 1\n");
    assert_eq!(paths, ["policy"]);
    let (paths, _) = bad("policy = [1]\n");
    assert_eq!(paths, ["policy[#1]"]);
}

#[test]
fn load_reads_the_file_and_reports_a_missing_one() {
    let err = load(Path::new("/nonexistent/policies.toml")).unwrap_err();
    assert_eq!(err.paths(), ["throttle.policy_file"]);
    assert!(
        err.to_string().contains("/nonexistent/policies.toml"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(
        &path,
        "[[policy]]\nname = \"a\"\ngroup = \"g\"\nrequests_per_sec = 1\n",
    )
    .unwrap();
    assert_eq!(load(&path).unwrap().len(), 1);
    std::fs::write(&path, vec![b'#'; MAX_FILE_BYTES as usize + 1]).unwrap();
    assert!(load(&path).unwrap_err().to_string().contains("larger than"));
}

#[test]
fn an_expiry_must_be_in_the_future() {
    let t = toml::toml! {
        name = "a"
        group = "g"
        requests_per_sec = 1
        expires = "2026-06-01T00:00:01Z"
    };
    assert!(policy(&t, now()).is_ok());
    assert!(policy(&t, now() + Duration::from_secs(1)).is_err());
}

mod with_the_config {
    use std::io::Write;
    use std::time::Duration;

    use crate::Loader;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn throttle_keys_are_parsed_and_the_policies_loaded() {
        let c = Loader::new().load().unwrap();
        assert_eq!(c.throttle.policy_file, None);
        assert_eq!(c.throttle.max_hold, Duration::from_secs(10));
        assert!(c.throttle.policies.is_empty());
        let policies = file("[[policy]]\nname = \"incident-x\"\ngroup = \"orders\"\nfetch_bytes_per_sec = \"256KiB\"\n");
        let config = file(&format!(
            "[throttle]\npolicy_file = {:?}\nmax_hold = \"5s\"\n",
            policies.path().display().to_string()
        ));
        let c = Loader::new().file(config.path()).load().unwrap();
        assert_eq!(c.throttle.max_hold, Duration::from_secs(5));
        assert_eq!(c.throttle.policies.len(), 1);
        assert_eq!(c.throttle.policies[0].name, "incident-x");
        // The config's TOML form names the file, not its policies, and reads back the same.
        let shown = c.to_toml();
        assert!(shown.contains("policy_file"), "{shown}");
        assert!(!shown.contains("incident-x"), "{shown}");
        let back = file(&shown);
        assert_eq!(Loader::new().file(back.path()).load().unwrap(), c);
    }

    #[test]
    fn bad_throttle_keys_are_reported() {
        for (env, value) in [
            ("SLUICE_THROTTLE_MAX_HOLD", "0s"),
            ("SLUICE_THROTTLE_MAX_HOLD", "2m"),
            ("SLUICE_THROTTLE_MAX_HOLD", "soon"),
        ] {
            let err = Loader::new()
                .env([(env.to_owned(), value.to_owned())])
                .load()
                .unwrap_err();
            assert_eq!(err.paths(), ["throttle.max_hold"], "{value}");
        }
        let config = file("[throttle]\npolicy_file = 7\n");
        let err = Loader::new().file(config.path()).load().unwrap_err();
        assert_eq!(err.paths(), ["throttle.policy_file"]);
    }

    #[test]
    fn every_bad_policy_key_joins_the_other_bad_keys_in_one_report() {
        let policies = file(
            "[[policy]]\nname = \"a\"\nhost = \"10.0.0.1/8\"\nrequests_per_sec = 0\n\
             [[policy]]\nname = \"b\"\ngroup = \"g\"\nfetch_bytes_per_sec = 1\nmodee = \"x\"\n",
        );
        let err = Loader::new()
            .env([
                (
                    "SLUICE_THROTTLE_POLICY_FILE".to_owned(),
                    policies.path().display().to_string(),
                ),
                ("SLUICE_LISTEN".to_owned(), "nowhere".to_owned()),
            ])
            .load()
            .unwrap_err();
        let mut paths = err.paths();
        paths.sort();
        assert_eq!(
            paths,
            [
                "listen",
                "policy[a].host",
                "policy[a].requests_per_sec",
                "policy[b].modee"
            ]
        );
        let text = err.to_string();
        let named = format!("policy[a].host (file {})", policies.path().display());
        assert!(text.contains(&named), "{text}");
    }

    #[test]
    fn a_missing_policy_file_names_the_key_and_where_it_was_set() {
        let err = Loader::new()
            .flag(
                "throttle.policy_file",
                "--policy-file",
                "/nonexistent/p.toml",
            )
            .load()
            .unwrap_err();
        assert_eq!(err.paths(), ["throttle.policy_file"]);
        let text = err.to_string();
        assert!(
            text.contains(
                "throttle.policy_file (flag --policy-file): /nonexistent/p.toml: cannot read"
            ),
            "{text}"
        );
    }
}
