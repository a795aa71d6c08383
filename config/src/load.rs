//! Merging defaults, file, environment and flags, then validating everything at once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{ConfigError, ConfigErrors, Origin};
use crate::keys::{self, KEYS};
use crate::model::Config;
use crate::value::Raw;

/// Collects the layers of a configuration; [`Loader::load`] validates them together.
///
/// ```
/// let config = sluice_config::Loader::new()
///     .env([("SLUICE_UPSTREAM".to_owned(), "broker:19093".to_owned())])
///     .flag("listen", "--listen", "127.0.0.1:9093")
///     .load()
///     .unwrap();
/// assert_eq!(config.upstream.to_string(), "broker:19093");
/// ```
#[derive(Default)]
pub struct Loader {
    file: Option<PathBuf>,
    env: Vec<(String, String)>,
    flags: Vec<(String, String, String)>,
}

/// Names the layers without their values: a value may be a secret.
impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("file", &self.file)
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field(
                "flags",
                &self.flags.iter().map(|(_, f, _)| f).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Loader {
    /// An empty loader: only defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads this TOML file (a missing or unreadable file is an error).
    pub fn file(mut self, path: impl AsRef<Path>) -> Self {
        self.file = Some(path.as_ref().to_owned());
        self
    }

    /// Takes `SLUICE_*` variables from this environment; other variables are ignored.
    pub fn env(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        self.env = vars
            .into_iter()
            .filter(|(k, _)| k.starts_with("SLUICE_"))
            .collect();
        self
    }

    /// Sets `path` from command-line flag `flag` (highest precedence).
    pub fn flag(mut self, path: &str, flag: &str, value: impl Into<String>) -> Self {
        self.flags
            .push((path.to_owned(), flag.to_owned(), value.into()));
        self
    }

    /// Merges the layers and validates. Every bad key is reported, not just the first.
    pub fn load(self) -> Result<Config, ConfigErrors> {
        let mut errors = Vec::new();
        // path -> (raw value, origin); later layers overwrite earlier ones.
        let mut chosen: BTreeMap<&'static str, (Raw, Origin)> = BTreeMap::new();

        let mut listeners = None;
        if let Some(path) = &self.file {
            listeners = read_file(path, &mut chosen, &mut errors);
        }
        for key in KEYS {
            if let Some((_, v)) = self.env.iter().find(|(k, _)| k == key.env) {
                chosen.insert(
                    key.path,
                    (Raw::Text(v.clone()), Origin::Env(key.env.to_owned())),
                );
            }
        }
        for (path, flag, v) in &self.flags {
            match keys::find(path) {
                Some(key) => {
                    chosen.insert(key.path, (Raw::Text(v.clone()), Origin::Flag(flag.clone())));
                }
                None => errors.push(ConfigError {
                    path: path.clone(),
                    origin: Origin::Flag(flag.clone()),
                    message: "unknown key".to_owned(),
                }),
            }
        }

        let mut config = Config::default();
        for (path, (raw, origin)) in &chosen {
            let key = keys::find(path).expect("chosen keys come from the schema");
            if let Err(message) = (key.set)(&mut config, raw) {
                errors.push(ConfigError {
                    path: (*path).to_owned(),
                    origin: origin.clone(),
                    message,
                });
            }
        }
        if let (Some(value), Some(file)) = (&listeners, &self.file) {
            let origin = Origin::File(file.clone());
            config.listeners = crate::listener::parse(value, &origin, &mut errors);
        }
        // The policy file is validated with the rest: its problems join the same report.
        if let Some(file) = config.throttle.policy_file.clone() {
            match crate::policy_file::load(&file) {
                Ok(policies) => config.throttle.policies = policies,
                Err(bad) => errors.extend(bad.0.into_iter().map(|mut e| {
                    if e.path == "throttle.policy_file" {
                        // The key's own origin says where the path came from.
                        let (_, origin) = &chosen["throttle.policy_file"];
                        e.message = format!("{}: {}", file.display(), e.message);
                        e.origin = origin.clone();
                    }
                    e
                })),
            }
        }
        if errors.is_empty() {
            check_combinations(&config, &mut errors);
            check_admin(&config, &mut errors);
            check_listeners(&config, &chosen, &mut errors);
        }
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(errors))
        }
    }
}

/// Reads the file's keys into `chosen`; returns its `listeners` array, parsed apart.
fn read_file(
    path: &Path,
    chosen: &mut BTreeMap<&'static str, (Raw, Origin)>,
    errors: &mut Vec<ConfigError>,
) -> Option<toml::Value> {
    let origin = Origin::File(path.to_owned());
    let fail = |message: String| ConfigError {
        path: "config file".to_owned(),
        origin: origin.clone(),
        message,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            errors.push(fail(format!("cannot read: {e}")));
            return None;
        }
    };
    let mut table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            errors.push(fail(format!("not valid TOML: {}", e.to_string().trim())));
            return None;
        }
    };
    let listeners = table.remove("listeners");
    walk(&table, "", &origin, chosen, errors);
    listeners
}

fn walk(
    table: &toml::Table,
    prefix: &str,
    origin: &Origin,
    chosen: &mut BTreeMap<&'static str, (Raw, Origin)>,
    errors: &mut Vec<ConfigError>,
) {
    for (name, value) in table {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match (value, keys::find(&path)) {
            (toml::Value::Table(inner), None) if keys::is_section(&path) => {
                walk(inner, &path, origin, chosen, errors);
            }
            (_, Some(key)) => {
                chosen.insert(key.path, (Raw::Toml(value.clone()), origin.clone()));
            }
            (_, None) => {
                let hint = KEYS
                    .iter()
                    .find(|k| edit_distance(k.path, &path) <= 2)
                    .map(|k| format!(" (did you mean `{}`?)", k.path))
                    .unwrap_or_default();
                let what = if keys::is_section(&path) {
                    format!("`{path}` must be a table ([{path}])")
                } else {
                    format!("unknown key{hint}")
                };
                errors.push(ConfigError {
                    path,
                    origin: origin.clone(),
                    message: what,
                });
            }
        }
    }
}

/// Levenshtein distance, for "did you mean" hints on misspelt keys.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn check_combinations(config: &Config, errors: &mut Vec<ConfigError>) {
    if config.listen == config.admin.listen && config.listen.port() != 0 {
        errors.push(ConfigError {
            path: "admin.listen".to_owned(),
            origin: Origin::Combination,
            message: format!("same address as `listen` ({})", config.listen),
        });
    }
    if config.upstream.port == config.listen.port()
        && config.listen.port() != 0
        && (config.listen.ip().is_unspecified()
            || config.upstream.host == config.listen.ip().to_string())
    {
        errors.push(ConfigError {
            path: "upstream".to_owned(),
            origin: Origin::Combination,
            message: format!(
                "`{}` would forward to the proxy's own listener `{}`",
                config.upstream, config.listen
            ),
        });
    }
}

/// Every listener's TLS settings and files; listen addresses and names unique.
fn check_listeners(
    config: &Config,
    chosen: &BTreeMap<&'static str, (Raw, Origin)>,
    errors: &mut Vec<ConfigError>,
) {
    let origin_of = |key: &str| {
        chosen
            .get(key)
            .map(|(_, o)| o.clone())
            .unwrap_or(Origin::Default)
    };
    let all = config.all_listeners();
    let mut names: Vec<&str> = Vec::new();
    let mut addrs = vec![(config.admin.listen, "admin.listen".to_owned())];
    addrs.extend(
        config
            .admin
            .metrics_listen
            .map(|a| (a, "admin.metrics_listen".to_owned())),
    );
    for l in &all {
        // The top-level listener's keys each have their own origin; a listener's, the file.
        let origin = if l.prefix.is_empty() {
            ["tls.cert", "tls.key", "tls.client_ca", "upstream_tls.ca"]
                .iter()
                .map(|k| origin_of(k))
                .find(|o| *o != Origin::Default)
                .unwrap_or(Origin::Default)
        } else {
            origin_of_listeners(chosen)
        };
        let mut found = Vec::new();
        crate::tls::check(l, &origin, &mut found);
        // A top-level key names where its own value came from (file, env or flag).
        for e in &mut found {
            if let Some((_, own)) = chosen.get(e.path.as_str()) {
                e.origin = own.clone();
            }
        }
        errors.extend(found);
        if l.prefix.is_empty() {
            names.push(l.name);
            addrs.push((l.listen, "listen".to_owned()));
            continue;
        }
        if names.contains(&l.name) {
            errors.push(ConfigError {
                path: format!("{}name", l.prefix),
                origin: Origin::Combination,
                message: format!(
                    "`{}` names another listener too (`main` is the top-level one)",
                    l.name
                ),
            });
        }
        names.push(l.name);
        if let Some((_, other)) = addrs.iter().find(|(a, _)| *a == l.listen && a.port() != 0) {
            errors.push(ConfigError {
                path: format!("{}listen", l.prefix),
                origin: Origin::Combination,
                message: format!("same address as `{other}` ({})", l.listen),
            });
        }
        addrs.push((l.listen, format!("{}listen", l.prefix)));
    }
}

/// Listeners come from the file only; the file is whichever origin a file key has.
fn origin_of_listeners(chosen: &BTreeMap<&'static str, (Raw, Origin)>) -> Origin {
    chosen
        .values()
        .map(|(_, o)| o)
        .find(|o| matches!(o, Origin::File(_)))
        .cloned()
        .unwrap_or(Origin::Combination)
}

/// The admin listeners apart from the proxy's and from each other; a token where one is
/// required.
fn check_admin(config: &Config, errors: &mut Vec<ConfigError>) {
    let admin = &config.admin;
    if let Some(m) = admin.metrics_listen {
        for (other, name) in [(config.listen, "listen"), (admin.listen, "admin.listen")] {
            if m == other && m.port() != 0 {
                errors.push(ConfigError {
                    path: "admin.metrics_listen".to_owned(),
                    origin: Origin::Combination,
                    message: format!("same address as `{name}` ({m})"),
                });
            }
        }
    }
    if admin.metrics_require_token && admin.token.is_none() {
        errors.push(ConfigError {
            path: "admin.metrics_require_token".to_owned(),
            origin: Origin::Combination,
            message: "needs `admin.token`".to_owned(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Duration;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn defaults_are_valid() {
        let c = Loader::new().load().unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.listen.to_string(), "0.0.0.0:9093");
        assert_eq!(c.upstream.to_string(), "127.0.0.1:19093");
        assert_eq!(c.admin.listen.to_string(), "127.0.0.1:9464");
    }

    #[test]
    fn flags_beat_env_beat_file() {
        let f = file("listen = \"127.0.0.1:1\"\nupstream = \"file:1\"\nshutdown_grace = \"7s\"\n[admin]\nlisten = \"127.0.0.1:3\"\n");
        let c = Loader::new()
            .file(f.path())
            .env([
                ("SLUICE_LISTEN".to_owned(), "127.0.0.1:2".to_owned()),
                ("SLUICE_UPSTREAM".to_owned(), "env:2".to_owned()),
                ("PATH".to_owned(), "ignored".to_owned()),
            ])
            .flag("listen", "--listen", "127.0.0.1:9")
            .load()
            .unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9");
        assert_eq!(c.upstream.to_string(), "env:2");
        assert_eq!(c.shutdown_grace, Duration::from_secs(7));
        assert_eq!(c.admin.listen.to_string(), "127.0.0.1:3");
    }

    #[test]
    fn every_bad_key_is_reported_with_its_origin() {
        let f = file(
            "listen = \"nowhere\"\nconect_timeout = \"5s\"\nbuffer_size = \"1TB\"\n\
             [admin]\nlisten = 9464\nport = 1\n[log]\nformat = \"xml\"\n[bogus]\nx = 1\n\
             [tap]\nmemory_budget = \"1KiB\"\n",
        );
        let err = Loader::new()
            .file(f.path())
            .env([("SLUICE_SHUTDOWN_GRACE".to_owned(), "soon".to_owned())])
            .flag("upstream", "--upstream", "no-port")
            .load()
            .unwrap_err();
        let mut paths = err.paths();
        paths.sort();
        assert_eq!(
            paths,
            [
                "admin.listen",
                "admin.port",
                "bogus",
                "buffer_size",
                "conect_timeout",
                "listen",
                "log.format",
                "shutdown_grace",
                "tap.memory_budget",
                "upstream"
            ]
        );
        let text = err.to_string();
        assert!(
            text.starts_with("invalid configuration: 10 problems"),
            "{text}"
        );
        assert!(
            text.contains("shutdown_grace (env SLUICE_SHUTDOWN_GRACE): `soon`"),
            "{text}"
        );
        assert!(
            text.contains("upstream (flag --upstream): `no-port`"),
            "{text}"
        );
        assert!(text.contains("conect_timeout"), "{text}");
        assert!(text.contains("did you mean `connect_timeout`"), "{text}");
        assert!(
            text.contains("tap.memory_budget `1024` is out of range"),
            "{text}"
        );
    }

    #[test]
    fn connection_limits_are_parsed_and_every_bad_one_reported() {
        let f = file(
            "idle_timeout = \"90s\"\nhalf_closed_timeout = \"0s\"\nmax_connections_per_host = 7\n",
        );
        let c = Loader::new().file(f.path()).load().unwrap();
        assert_eq!(c.idle_timeout, Duration::from_secs(90));
        assert_eq!(c.half_closed_timeout, Duration::ZERO);
        assert_eq!(c.max_connections_per_host, 7);
        let f = file(
            "idle_timeout = \"long\"\nhalf_closed_timeout = 5\nmax_connections_per_host = 0\n",
        );
        let err = Loader::new().file(f.path()).load().unwrap_err();
        let mut paths = err.paths();
        paths.sort();
        assert_eq!(
            paths,
            [
                "half_closed_timeout",
                "idle_timeout",
                "max_connections_per_host"
            ]
        );
    }

    #[test]
    fn worker_threads_is_parsed_and_a_bad_count_reported() {
        assert_eq!(Config::default().worker_threads, 0);
        let f = file("worker_threads = 1\n");
        assert_eq!(
            Loader::new().file(f.path()).load().unwrap().worker_threads,
            1
        );
        for bad in [
            "worker_threads = 5000\n",
            "worker_threads = -1\n",
            "worker_threads = \"two\"\n",
        ] {
            let f = file(bad);
            let err = Loader::new().file(f.path()).load().unwrap_err();
            assert_eq!(err.paths(), ["worker_threads"], "{bad}");
        }
    }

    #[test]
    fn connection_guards_are_off_by_default_parsed_and_every_bad_one_reported() {
        let c = Loader::new().load().unwrap();
        assert!(!c.guard.any(), "every guard is off by default");
        assert_eq!(c.guard.on_limit, crate::OnLimit::Refuse);
        assert_eq!(c.guard.max_wait, Duration::from_secs(5));
        let f = file(
            "[guard]\nnew_connections_per_sec_per_host = 20\nmax_connections_per_client = 4\n\
             new_connections_per_sec_per_client = 2\non_limit = \"hold\"\nmax_wait = \"750ms\"\n",
        );
        let c = Loader::new().file(f.path()).load().unwrap();
        let g = &c.guard;
        assert_eq!(g.new_connections_per_sec_per_host, 20);
        assert_eq!(g.max_connections_per_client, 4);
        assert_eq!(g.new_connections_per_sec_per_client, 2);
        assert_eq!(g.on_limit, crate::OnLimit::Hold);
        assert_eq!(g.max_wait, Duration::from_millis(750));
        assert!(g.per_client() && g.any());
        let f = file(
            "[guard]\nnew_connections_per_sec_per_host = -1\nmax_connections_per_client = \"many\"\n\
             new_connections_per_sec_per_client = 2000000\non_limit = \"drop\"\nmax_wait = \"0s\"\n\
             max_conections_per_client = 3\n",
        );
        let err = Loader::new()
            .file(f.path())
            .env([("SLUICE_GUARD_MAX_WAIT".to_owned(), "1h".to_owned())])
            .load()
            .unwrap_err();
        let mut paths = err.paths();
        paths.sort();
        assert_eq!(
            paths,
            [
                "guard.max_conections_per_client",
                "guard.max_connections_per_client",
                "guard.max_wait",
                "guard.new_connections_per_sec_per_client",
                "guard.new_connections_per_sec_per_host",
                "guard.on_limit",
            ]
        );
        let text = err.to_string();
        assert!(text.contains("`drop` is not refuse or hold"), "{text}");
        assert!(text.contains("at most 5m"), "{text}");
        assert!(
            text.contains("did you mean `guard.max_connections_per_client`"),
            "{text}"
        );
    }

    #[test]
    fn telemetry_settings_are_parsed_and_every_bad_one_reported() {
        let f = file(
            "[telemetry]\notlp_endpoint = \"http://collector:4318/\"\n\
             otlp_protocol = \"http/protobuf\"\notlp_headers = { \"x-api-key\" = \"k1\" }\n\
             resource_attributes = \"env=prod, team=data\"\nspan_sample_ratio = 0.25\n",
        );
        let c = Loader::new().file(f.path()).load().unwrap();
        let t = &c.telemetry;
        assert_eq!(t.otlp_endpoint.expose(), "http://collector:4318");
        assert_eq!(t.otlp_protocol, crate::OtlpProtocol::HttpProtobuf);
        assert_eq!(
            t.otlp_headers,
            [("x-api-key".to_owned(), crate::Secret::new("k1"))]
        );
        assert_eq!(
            t.resource_attributes,
            [
                ("env".to_owned(), "prod".to_owned()),
                ("team".to_owned(), "data".to_owned())
            ]
        );
        assert_eq!(t.span_sample_ratio, 0.25);
        let f = file(
            "[telemetry]\notlp_endpoint = \"collector:4317\"\notlp_protocol = \"thrift\"\n\
             otlp_headers = \"bad header=1\"\nspan_sample_ratio = 2.0\nmax_series = 1\n\
             metrics_interval = \"1ms\"\nresource_attributes = \"novalue\"\n",
        );
        let err = Loader::new().file(f.path()).load().unwrap_err();
        let mut paths = err.paths();
        paths.sort();
        assert_eq!(
            paths,
            [
                "telemetry.max_series",
                "telemetry.metrics_interval",
                "telemetry.otlp_endpoint",
                "telemetry.otlp_headers",
                "telemetry.otlp_protocol",
                "telemetry.resource_attributes",
                "telemetry.span_sample_ratio",
            ]
        );
    }

    #[test]
    fn lookup_settings_are_parsed_and_every_bad_one_reported() {
        let c = Loader::new().load().unwrap();
        assert!(c.lookup.enabled);
        assert_eq!(c.lookup.interval, Duration::from_secs(5));
        assert_eq!(c.lookup.bootstrap, None);
        let f = file(
            "[lookup]\nenabled = false\ninterval = \"2s\"\ntimeout = \"1500ms\"\n\
             max_groups = 20\nbootstrap = \"kafka-1:19093\"\n",
        );
        let c = Loader::new().file(f.path()).load().unwrap();
        assert!(!c.lookup.enabled);
        assert_eq!(c.lookup.interval, Duration::from_secs(2));
        assert_eq!(c.lookup.timeout, Duration::from_millis(1500));
        assert_eq!(c.lookup.max_groups, 20);
        assert_eq!(
            c.lookup.bootstrap.as_ref().unwrap().to_string(),
            "kafka-1:19093"
        );
        let back = file(&c.to_toml());
        assert_eq!(Loader::new().file(back.path()).load().unwrap(), c);
        let c = Loader::new()
            .env([("SLUICE_LOOKUP_BOOTSTRAP".to_owned(), String::new())])
            .load()
            .unwrap();
        assert_eq!(c.lookup.bootstrap, None);

        let f = file(
            "[lookup]\nenabled = \"maybe\"\ninterval = \"100ms\"\ntimeout = \"0s\"\n\
             max_groups = 0\nbootstrap = \"nowhere\"\nmax_member = 1\n",
        );
        let err = Loader::new().file(f.path()).load().unwrap_err();
        let mut paths = err.paths();
        paths.sort();
        assert_eq!(
            paths,
            [
                "lookup.bootstrap",
                "lookup.enabled",
                "lookup.interval",
                "lookup.max_groups",
                "lookup.max_member",
                "lookup.timeout",
            ]
        );
    }

    #[test]
    fn missing_file_and_bad_toml_are_errors() {
        let err = Loader::new()
            .file("/nonexistent/sluice.toml")
            .load()
            .unwrap_err();
        assert_eq!(err.paths(), ["config file"]);
        assert!(err.to_string().contains("/nonexistent/sluice.toml"));
        let f = file("listen = ");
        let err = Loader::new().file(f.path()).load().unwrap_err();
        assert!(err.to_string().contains("not valid TOML"), "{err}");
    }

    #[test]
    fn combinations_are_checked() {
        let err = Loader::new()
            .flag("listen", "--listen", "127.0.0.1:9093")
            .flag("admin.listen", "--admin-listen", "127.0.0.1:9093")
            .flag("upstream", "--upstream", "127.0.0.1:9093")
            .load()
            .unwrap_err();
        assert_eq!(err.paths(), ["admin.listen", "upstream"]);
    }

    #[test]
    fn admin_settings_are_parsed_and_every_bad_one_reported() {
        let c = Loader::new().load().unwrap();
        assert_eq!(c.admin.token, None);
        assert_eq!(c.admin.metrics_listen, None);
        assert_eq!(c.admin.max_connections, 32);
        let f = file(
            "[admin]\nmetrics_listen = \"0.0.0.0:9465\"\ntoken = \"0123456789abcdef\"\n\
             metrics_require_token = true\nmax_connections = 4\nheader_timeout = \"2s\"\n\
             idle_timeout = \"1m\"\n",
        );
        let c = Loader::new().file(f.path()).load().unwrap();
        let a = &c.admin;
        assert_eq!(a.metrics_listen.unwrap().to_string(), "0.0.0.0:9465");
        assert_eq!(a.token.as_ref().unwrap().expose(), "0123456789abcdef");
        assert!(a.metrics_require_token);
        assert_eq!(a.max_connections, 4);
        assert_eq!(a.header_timeout, Duration::from_secs(2));
        assert_eq!(a.idle_timeout, Duration::from_secs(60));
        assert!(!format!("{c:?}").contains("0123456789abcdef"));
        assert!(!c.to_toml().contains("0123456789abcdef"));

        let f = file(
            "[admin]\nmetrics_listen = \"nowhere\"\ntoken = \"short-1\"\n\
             metrics_require_token = \"yes please\"\nmax_connections = 0\n\
             header_timeout = \"0s\"\nidle_timeout = \"2h\"\n",
        );
        let err = Loader::new().file(f.path()).load().unwrap_err();
        let mut paths = err.paths();
        paths.sort();
        assert_eq!(
            paths,
            [
                "admin.header_timeout",
                "admin.idle_timeout",
                "admin.max_connections",
                "admin.metrics_listen",
                "admin.metrics_require_token",
                "admin.token",
            ]
        );
        assert!(!err.to_string().contains("short-1"), "{err}");
        let err = Loader::new()
            .env([(
                "SLUICE_ADMIN_TOKEN".to_owned(),
                "has a space in it!!".to_owned(),
            )])
            .load()
            .unwrap_err();
        assert!(!err.to_string().contains("space in"), "{err}");
        let err = Loader::new()
            .flag("admin.listen", "--admin-listen", "127.0.0.1:9464")
            .env([
                (
                    "SLUICE_ADMIN_METRICS_LISTEN".to_owned(),
                    "127.0.0.1:9464".to_owned(),
                ),
                (
                    "SLUICE_ADMIN_METRICS_REQUIRE_TOKEN".to_owned(),
                    "true".to_owned(),
                ),
            ])
            .load()
            .unwrap_err();
        assert_eq!(
            err.paths(),
            ["admin.metrics_listen", "admin.metrics_require_token"]
        );
    }

    #[test]
    fn secrets_are_redacted_in_output_and_errors() {
        let c = Loader::new()
            .env([
                (
                    "SLUICE_TELEMETRY_OTLP_HEADERS".to_owned(),
                    "x-api-key=hdr-secret-1,authorization=Bearer hdr-secret-2".to_owned(),
                ),
                (
                    "SLUICE_TELEMETRY_OTLP_ENDPOINT".to_owned(),
                    "https://user:url-secret@collector:4318".to_owned(),
                ),
                (
                    "SLUICE_ADMIN_TOKEN".to_owned(),
                    "tok-secret-0123456".to_owned(),
                ),
            ])
            .load()
            .unwrap();
        let loader = Loader::new().env([(
            "SLUICE_ADMIN_TOKEN".to_owned(),
            "tok-secret-0123456".to_owned(),
        )]);
        let shown = format!("{}{c:?}{loader:?}", c.to_toml());
        for s in [
            "hdr-secret-1",
            "hdr-secret-2",
            "url-secret",
            "tok-secret-0123456",
        ] {
            assert!(!shown.contains(s), "{s} in {shown}");
        }
        assert!(shown.contains("x-api-key = \"<redacted>\""), "{shown}");
        let err = Loader::new()
            .env([
                (
                    "SLUICE_TELEMETRY_OTLP_HEADERS".to_owned(),
                    "x-api-key hdr-secret-1".to_owned(),
                ),
                (
                    "SLUICE_TELEMETRY_OTLP_ENDPOINT".to_owned(),
                    "ftp://user:url-secret@collector:4318".to_owned(),
                ),
            ])
            .load()
            .unwrap_err();
        let text = err.to_string();
        assert_eq!(
            err.paths(),
            ["telemetry.otlp_endpoint", "telemetry.otlp_headers"]
        );
        assert!(
            !text.contains("hdr-secret-1") && !text.contains("url-secret"),
            "{text}"
        );
    }

    #[test]
    fn effective_config_round_trips_through_a_file() {
        let c = Loader::new()
            .flag("buffer_size", "--buffer-size", "64KiB")
            .flag("log.format", "--log-format", "json")
            .load()
            .unwrap();
        let f = file(&c.to_toml());
        assert_eq!(Loader::new().file(f.path()).load().unwrap(), c);
    }
}
