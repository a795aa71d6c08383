//! Issue 20's real tests: a real broker with secured listeners (certificates made by the
//! test), Sluice terminating TLS in front of it, and the Java client and librdkafka over TLS,
//! SASL_SSL (SCRAM-SHA-512, PLAIN) and mTLS.
//!
//! One broker and one Sluice (the `sluice` binary, four listeners in one process: see
//! [`SecuredBroker`]) serve every test, each with its own topics and groups. The direct
//! round trips (clients to the broker's own `SSL` and `SASL_SSL` listeners) show the broker's
//! setup and each client's settings work without Sluice.

use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;
use sluice_integration_tests::certs::CLIENT_SUBJECT;
use sluice_integration_tests::clients::{consume_report, Running};
use sluice_integration_tests::net::wait_until;
use sluice_integration_tests::process::SluiceProcess;
use sluice_integration_tests::scenario::{args, consume_loop, poison_backlog_with};
use sluice_integration_tests::secured::{
    check_round_trip, Route, SecuredBroker, Security, PLAIN_PASSWORD, SCRAM_PASSWORD,
};
use sluice_integration_tests::{unique, Client};

fn broker() -> &'static SecuredBroker {
    static SHARED: OnceLock<SecuredBroker> = OnceLock::new();
    SHARED.get_or_init(SecuredBroker::start)
}

fn sluice() -> &'static SluiceProcess {
    static SHARED: OnceLock<SluiceProcess> = OnceLock::new();
    SHARED.get_or_init(|| broker().start_sluice())
}

const COUNT: u64 = 200;

fn round_trip(client: Client, route: Route, security: Security) {
    let what = format!("{} {security:?} via {route:?}", client.name());
    let (p, c) = broker()
        .round_trip(client, route, security, COUNT)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    check_round_trip(&what, COUNT, &p, &c);
}

#[test]
fn direct_ssl_and_sasl_ssl_round_trips() {
    for client in [Client::Java, Client::Python] {
        round_trip(client, Route::DirectSsl, Security::Ssl);
        round_trip(client, Route::DirectSasl, Security::Scram);
        round_trip(client, Route::DirectSasl, Security::Plain);
    }
}

#[test]
fn round_trips_through_sluice_terminating_tls() {
    sluice();
    for client in [Client::Java, Client::Python] {
        round_trip(client, Route::Tls, Security::Ssl);
        round_trip(client, Route::Sasl, Security::Scram);
        round_trip(client, Route::Sasl, Security::Plain);
        round_trip(client, Route::Mtls, Security::Mtls);
        round_trip(client, Route::Reencrypt, Security::Ssl);
    }
}

/// Every finding, active and cleared.
fn findings() -> Vec<Value> {
    let f = sluice().get("/api/v1/findings");
    let mut all: Vec<Value> = f["active"].as_array().cloned().unwrap_or_default();
    all.extend(f["cleared"].as_array().cloned().unwrap_or_default());
    all
}

/// `more` plus the `--client-config` of `client` with `security`.
fn with_config(client: Client, security: Security, more: &[&str]) -> Vec<String> {
    let mut a = args(more);
    a.extend(broker().config_args(client, security));
    a
}

#[test]
fn fetch_loop_over_sasl_ssl_is_detected_with_its_principal() {
    let (b, s) = (broker(), sluice());
    let boot = b.bootstrap(Route::Sasl);
    let topic = unique("tls-loop");
    // The incident's backlog: 3,000 JSON records, the one at offset 100 malformed.
    let conf = b.config_args(Client::Java, Security::Scram);
    let conf: Vec<&str> = conf.iter().map(String::as_str).collect();
    poison_backlog_with(&b.tools, &boot, &topic, &conf);
    // The loop from the Java client as the SCRAM user and from librdkafka as the PLAIN user,
    // each in its own group, at once.
    let loopers: Vec<_> = [
        (Client::Java, Security::Scram, &[][..]),
        (
            Client::Python,
            Security::Plain,
            &["--fetch-max-wait-ms", "50"][..],
        ),
    ]
    .into_iter()
    .map(|(client, security, more)| {
        let group = unique(&format!("tls-billing-{}", client.name()));
        let client_id = unique(&format!("tls-billing-service-{}", client.name()));
        let extra = with_config(client, security, more);
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let run = consume_loop(client, &b.tools, &boot, &topic, &group, &client_id, &extra);
        (security.user().unwrap(), group, client_id, run)
    })
    .collect();
    for (user, group, client_id, _) in &loopers {
        let f = s.wait_finding("fetch_without_commit", Duration::from_secs(60), |e| {
            e["group"] == group.as_str()
        });
        // The finding names the looper's SASL user, and so do its connections.
        assert_eq!(f["evidence"]["principal"], *user, "{f:#}");
        let conns = s.get("/api/v1/connections");
        let mine: Vec<&Value> = conns
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["client_id"] == client_id.as_str())
            .collect();
        assert!(!mine.is_empty(), "no connection of {client_id}: {conns:#}");
        assert!(
            mine.iter().all(|c| c["principal"] == *user),
            "{client_id}'s connections are not all {user}'s: {conns:#}"
        );
    }
    drop(loopers);
    // No secret in anything Sluice shows.
    let metrics = sluice_integration_tests::admin::call(s.admin, "GET", "/metrics", None, None);
    let shown = [
        s.log(),
        s.get("/api/v1/connections").to_string(),
        s.get("/api/v1/findings").to_string(),
        s.get("/api/v1/clients").to_string(),
        metrics.body,
    ];
    for secret in [SCRAM_PASSWORD, PLAIN_PASSWORD] {
        for (i, text) in shown.iter().enumerate() {
            assert!(!text.contains(secret), "output {i} shows a password");
        }
    }
}

/// A producer at a steady rate and a consumer in a group reading every record it writes.
struct Steady {
    producer: Running,
    consumer: Running,
    count: u64,
}

impl Steady {
    /// Starts (producer, consumer) clients on `route` with their `security`, on (topic, group,
    /// consumer client.id), writing (count, records per second).
    fn start(
        clients: (Client, Client),
        route: Route,
        security: (Security, Security),
        (topic, group, client_id): (&str, &str, &str),
        (count, rate): (u64, u32),
    ) -> Steady {
        let b = broker();
        let boot = b.bootstrap(route);
        let (count_s, rate_s) = (count.to_string(), rate.to_string());
        let produce = ["produce", "--bootstrap", &boot, "--topic", topic];
        let more = ["--count", &count_s, "--rate", &rate_s];
        let producer = clients.0.spawn(
            &b.tools,
            &with_config(clients.0, security.0, &[&produce[..], &more[..]].concat()),
        );
        let consume = [
            "consume",
            "--bootstrap",
            &boot,
            "--topic",
            topic,
            "--group",
            group,
        ];
        let more = [
            "--count",
            &count_s,
            "--timeout-s",
            "60",
            "--client-id",
            client_id,
        ];
        let consumer = clients.1.spawn(
            &b.tools,
            &with_config(clients.1, security.1, &[&consume[..], &more[..]].concat()),
        );
        Steady {
            producer,
            consumer,
            count,
        }
    }

    /// Waits for both; panics unless every record came back once and intact.
    fn finish(self) {
        let p = self.producer.finish(Duration::from_secs(60)).unwrap();
        let c = consume_report(&self.consumer.finish(Duration::from_secs(90)).unwrap());
        assert_eq!((c.consumed, c.bad), (self.count, 0), "{c:?}");
        assert_eq!(p["digest"], c.digest.as_str(), "checksum of what came back");
    }
}

#[test]
fn healthy_consumer_over_tls_raises_nothing() {
    sluice();
    let topic = unique("tls-healthy");
    let group = unique("tls-healthy-group");
    let client_id = unique("tls-healthy-consumer");
    let steady = Steady::start(
        (Client::Python, Client::Java),
        Route::Tls,
        (Security::Ssl, Security::Ssl),
        (&topic, &group, &client_id),
        (600, 60),
    );
    steady.finish();
    let names = [&topic, &group, &client_id].map(|n| format!("\"{n}\""));
    let raised: Vec<Value> = findings()
        .into_iter()
        .filter(|f| names.iter().any(|n| f.to_string().contains(n.as_str())))
        .collect();
    assert!(raised.is_empty(), "a healthy consumer raised: {raised:#?}");
}

/// Runs `wait-ready` of librdkafka with `config` (none: plaintext) on `route`: it must fail
/// to reach the cluster, and its diagnostics must contain `client_says` (the TLS reason).
fn refused(route: Route, config: Option<Security>, client_says: &str) {
    let b = broker();
    let mut a = args(&[
        "wait-ready",
        "--bootstrap",
        &b.bootstrap(route),
        "--timeout-s",
        "4",
    ]);
    if let Some(security) = config {
        a.extend(b.config_args(Client::Python, security));
    }
    let out = Client::Python
        .spawn(&b.tools, &a)
        .finish(Duration::from_secs(40));
    let e = out.expect_err("the client was let in");
    assert!(e.contains("\"ready\":false"), "{e}");
    assert!(e.contains(client_says), "{config:?} on {route:?}: {e}");
}

#[test]
fn refused_clients_get_a_clean_refusal_and_the_others_keep_going() {
    let s = sluice();
    let topic = unique("tls-steady");
    let group = unique("tls-steady-group");
    // A healthy client keeps consuming over mTLS while the others are refused.
    let client_id = unique("tls-steady-consumer");
    let steady = Steady::start(
        (Client::Java, Client::Python),
        Route::Mtls,
        (Security::Mtls, Security::Mtls),
        (&topic, &group, &client_id),
        (400, 25),
    );
    // Its connections carry its certificate's subject as their principal.
    wait_until(
        "a connection with the client certificate's subject",
        Duration::from_secs(30),
        || {
            let conns = s.get("/api/v1/connections");
            conns
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["principal"] == CLIENT_SUBJECT)
        },
    );
    let log_has = |what: &str, words: &[&str]| {
        // Each refusal is one line naming the listener, the client's address and the reason.
        let words: Vec<String> = words
            .iter()
            .chain(&["client.addr=127.0.0.1:"])
            .map(|w| w.to_lowercase())
            .collect();
        s.wait_log(what, Duration::from_secs(20), |l| {
            let l = l.to_lowercase();
            words.iter().all(|w| l.contains(w.as_str()))
        })
    };
    refused(
        Route::Tls,
        Some(Security::WrongCa),
        "certificate verify failed",
    );
    log_has(
        "for the client that refused the certificate",
        &["listener=main", "TLS handshake failed", "alert UnknownCA"],
    );
    refused(
        Route::Mtls,
        Some(Security::ExpiredCert),
        "alert certificate expired",
    );
    log_has(
        "for the expired client certificate",
        &[
            "listener=mtls",
            "TLS handshake failed",
            "certificate has expired",
        ],
    );
    refused(
        Route::Mtls,
        Some(Security::ForeignCert),
        "alert certificate required",
    );
    // The server names the CA it trusts; neither OpenSSL nor Java then offers a certificate
    // from another one, so the refusal is for a missing certificate.
    log_has(
        "for the certificate of another CA",
        &[
            "listener=mtls",
            "TLS handshake failed",
            "client sent no certificate",
        ],
    );
    // Sluice closes it: to the client, the broker went away.
    refused(Route::Tls, None, "Broker transport failure");
    log_has(
        "for the plaintext client",
        &["listener=main", "client sent plaintext to the TLS listener"],
    );
    steady.finish();
    let log = s.log();
    assert!(!log.contains("panicked"), "{log}");
}
