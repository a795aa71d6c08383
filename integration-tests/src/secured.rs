//! A broker with secured client listeners, and the client settings to reach it: TLS (with
//! certificates from [`Pki`]), SASL PLAIN and SCRAM-SHA-512, mutual TLS.
//!
//! One broker serves every case, each on its own listener, so that each can be advertised
//! as the Sluice listener in front of it:
//!
//! | broker listener | protocol         | advertised as                  |
//! |-----------------|------------------|--------------------------------|
//! | `PLAINTEXT`     | `PLAINTEXT`      | [`Route::Tls`]'s Sluice port   |
//! | `SASL`          | `SASL_PLAINTEXT` | [`Route::Sasl`]'s Sluice port  |
//! | `MTLS`          | `PLAINTEXT`      | [`Route::Mtls`]'s Sluice port  |
//! | `SECURE`        | `SSL`            | [`Route::Reencrypt`]'s port    |
//! | `DSSL`          | `SSL`            | itself (clients direct)        |
//! | `DSASL`         | `SASL_SSL`       | itself (clients direct)        |
//!
//! The `SASL` and `DSASL` listeners take PLAIN (user [`PLAIN_USER`], in the listener's JAAS
//! config) and SCRAM-SHA-512 (user [`SCRAM_USER`], written at format time). The plaintext
//! listeners are on loopback only, as a sidecar's broker listener is.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::certs::Pki;
use crate::clients::{consume_report, ConsumeReport, ProduceReport};
use crate::net::free_ports;
use crate::process::SluiceProcess;
use crate::scenario::args;
use crate::{Broker, Client, Tools};

/// The SCRAM-SHA-512 user.
pub const SCRAM_USER: &str = "orders-scram";
/// Its password (tests check it never shows in Sluice's output).
pub const SCRAM_PASSWORD: &str = "scram-pw-5d1e9c7a";
/// The PLAIN user.
pub const PLAIN_USER: &str = "billing-plain";
/// Its password (tests check it never shows in Sluice's output).
pub const PLAIN_PASSWORD: &str = "plain-pw-83b0f2e4";

/// How a client talks to the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Security {
    /// `SSL`, trusting the test CA, no client certificate.
    Ssl,
    /// `SASL_SSL` with SCRAM-SHA-512 as [`SCRAM_USER`].
    Scram,
    /// `SASL_SSL` with PLAIN as [`PLAIN_USER`].
    Plain,
    /// `SSL` with the good client certificate.
    Mtls,
    /// `SSL` trusting another CA (it refuses the server's certificate).
    WrongCa,
    /// `SSL` with the expired client certificate.
    ExpiredCert,
    /// `SSL` with a client certificate from another CA.
    ForeignCert,
}

impl Security {
    /// Short name, for file names and messages.
    pub fn name(self) -> &'static str {
        match self {
            Security::Ssl => "ssl",
            Security::Scram => "scram",
            Security::Plain => "plain",
            Security::Mtls => "mtls",
            Security::WrongCa => "wrong-ca",
            Security::ExpiredCert => "expired-cert",
            Security::ForeignCert => "foreign-cert",
        }
    }

    /// The SASL user, if any.
    pub fn user(self) -> Option<&'static str> {
        match self {
            Security::Scram => Some(SCRAM_USER),
            Security::Plain => Some(PLAIN_USER),
            _ => None,
        }
    }
}

/// Which way into the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Sluice terminates TLS; broker `PLAINTEXT`.
    Tls,
    /// Sluice terminates TLS; broker `SASL_PLAINTEXT` (SASL passes through).
    Sasl,
    /// Sluice terminates TLS and asks for a client certificate; broker `PLAINTEXT`.
    Mtls,
    /// Sluice terminates TLS and opens TLS to the broker's `SSL` listener.
    Reencrypt,
    /// The broker's own `SSL` listener, no Sluice.
    DirectSsl,
    /// The broker's own `SASL_SSL` listener, no Sluice.
    DirectSasl,
}

/// A broker with the listeners in the module's table; the Sluice ports are chosen up front
/// (the broker advertises them) and bound by whoever starts Sluice.
#[derive(Debug)]
pub struct SecuredBroker {
    /// The certificates.
    pub pki: Pki,
    /// The broker.
    pub broker: Broker,
    /// Broker ports: `PLAINTEXT`, `SASL`, `MTLS`, `SECURE`, `DSSL`, `DSASL`.
    ports: [u16; 6],
    /// Sluice ports for [`Route::Tls`], [`Route::Sasl`], [`Route::Mtls`], [`Route::Reencrypt`].
    sluice_ports: [u16; 4],
    /// The tools.
    pub tools: Tools,
}

impl SecuredBroker {
    /// Makes the certificates and starts the broker.
    pub fn start() -> SecuredBroker {
        let tools = Tools::load();
        let pki = Pki::new();
        // Eleven ports, the broker's and those it advertises for Sluice, all distinct.
        let all: [u16; 11] = free_ports();
        let ports: [u16; 6] = std::array::from_fn(|i| all[i]);
        let sluice_ports: [u16; 4] = std::array::from_fn(|i| all[6 + i]);
        let controller = all[10];
        let loopback = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let listener = |name: &str, proto: &str, port: u16, adv: u16| {
            format!("{name}:{proto}:{port}:127.0.0.1:{adv}")
        };
        let plain_jaas = format!(
            "org.apache.kafka.common.security.plain.PlainLoginModule required \
             user_{PLAIN_USER}=\"{PLAIN_PASSWORD}\";"
        );
        let scram_jaas = "org.apache.kafka.common.security.scram.ScramLoginModule required;";
        let path = |p: &PathBuf| p.display().to_string();
        let mut extra = vec![
            "--listener".to_owned(),
            listener("SASL", "SASL_PLAINTEXT", ports[1], sluice_ports[1]),
            "--listener".to_owned(),
            listener("MTLS", "PLAINTEXT", ports[2], sluice_ports[2]),
            "--listener".to_owned(),
            listener("SECURE", "SSL", ports[3], sluice_ports[3]),
            "--listener".to_owned(),
            listener("DSSL", "SSL", ports[4], ports[4]),
            "--listener".to_owned(),
            listener("DSASL", "SASL_SSL", ports[5], ports[5]),
            "--add-scram".to_owned(),
            format!("SCRAM-SHA-512=[name={SCRAM_USER},password={SCRAM_PASSWORD}]"),
        ];
        let mut config = vec![
            "ssl.keystore.type=PEM".to_owned(),
            format!("ssl.keystore.location={}", path(&pki.server.keystore)),
            "ssl.truststore.type=PEM".to_owned(),
            format!("ssl.truststore.location={}", path(&pki.ca)),
        ];
        for l in ["sasl", "dsasl"] {
            config.push(format!(
                "listener.name.{l}.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512"
            ));
            config.push(format!(
                "listener.name.{l}.plain.sasl.jaas.config={plain_jaas}"
            ));
            config.push(format!(
                "listener.name.{l}.scram-sha-512.sasl.jaas.config={scram_jaas}"
            ));
        }
        for c in config {
            extra.push("--config".to_owned());
            extra.push(c);
        }
        let broker = Broker::start_with(
            &tools,
            ports[0],
            controller,
            loopback(sluice_ports[0]),
            extra,
        );
        SecuredBroker {
            pki,
            broker,
            ports,
            sluice_ports,
            tools,
        }
    }

    /// The broker listener behind `route`.
    pub fn broker_addr(&self, route: Route) -> SocketAddr {
        let i = match route {
            Route::Tls => 0,
            Route::Sasl => 1,
            Route::Mtls => 2,
            Route::Reencrypt => 3,
            Route::DirectSsl => 4,
            Route::DirectSasl => 5,
        };
        SocketAddr::from(([127, 0, 0, 1], self.ports[i]))
    }

    /// The Sluice listener the broker advertises for `route` (`None` for a direct route).
    pub fn sluice_addr(&self, route: Route) -> Option<SocketAddr> {
        let i = match route {
            Route::Tls => 0,
            Route::Sasl => 1,
            Route::Mtls => 2,
            Route::Reencrypt => 3,
            Route::DirectSsl | Route::DirectSasl => return None,
        };
        Some(SocketAddr::from(([127, 0, 0, 1], self.sluice_ports[i])))
    }

    /// Where clients of `route` bootstrap: its Sluice listener, or the broker's own.
    pub fn bootstrap(&self, route: Route) -> String {
        self.sluice_addr(route)
            .unwrap_or_else(|| self.broker_addr(route))
            .to_string()
    }

    /// The config of one Sluice in front of the four Sluice routes, as mixed listeners in one
    /// process: `main` (TLS, to `PLAINTEXT`), `sasl` (TLS, to `SASL`), `mtls` (TLS with client
    /// certificates required, to `MTLS`) and `reencrypt` (TLS, and TLS to `SECURE`).
    pub fn sluice_config(&self) -> String {
        let pki = &self.pki;
        let (cert, key, ca) = (
            pki.server.cert.display(),
            pki.server.key.display(),
            pki.ca.display(),
        );
        let tls = format!("cert = \"{cert}\"\nkey = \"{key}\"\n");
        let at = |r: Route| self.sluice_addr(r).unwrap();
        let to = |r: Route| self.broker_addr(r);
        format!(
            "listen = \"{}\"\nupstream = \"{}\"\nshutdown_grace = \"2s\"\n\
             [tls]\n{tls}\n\
             [[listeners]]\nname = \"sasl\"\nlisten = \"{}\"\nupstream = \"{}\"\n\
             [listeners.tls]\n{tls}\n\
             [[listeners]]\nname = \"mtls\"\nlisten = \"{}\"\nupstream = \"{}\"\n\
             [listeners.tls]\n{tls}client_ca = \"{ca}\"\n\n\
             [[listeners]]\nname = \"reencrypt\"\nlisten = \"{}\"\nupstream = \"{}\"\n\
             [listeners.tls]\n{tls}\
             [listeners.upstream_tls]\nca = \"{ca}\"\nserver_name = \"localhost\"\n",
            at(Route::Tls),
            to(Route::Tls),
            at(Route::Sasl),
            to(Route::Sasl),
            at(Route::Mtls),
            to(Route::Mtls),
            at(Route::Reencrypt),
            to(Route::Reencrypt),
        )
    }

    /// Starts the `sluice` binary with [`SecuredBroker::sluice_config`]; returns once every
    /// listener accepts connections.
    pub fn start_sluice(&self) -> SluiceProcess {
        let listens: Vec<SocketAddr> = [Route::Tls, Route::Sasl, Route::Mtls, Route::Reencrypt]
            .iter()
            .map(|r| self.sluice_addr(*r).unwrap())
            .collect();
        SluiceProcess::start(&self.sluice_config(), &listens)
    }

    /// Writes (once) and returns the `--client-config` file for `client` with `security`.
    pub fn client_config(&self, client: Client, security: Security) -> PathBuf {
        let file = self
            .pki
            .dir()
            .join(format!("{}-{}.properties", client.name(), security.name()));
        if !file.exists() {
            let text = client_properties(&self.pki, client, security).join("\n") + "\n";
            std::fs::write(&file, text).unwrap();
        }
        file
    }

    /// `--client-config FILE` for `client` with `security`, to add to a command line.
    pub fn config_args(&self, client: Client, security: Security) -> Vec<String> {
        let file = self.client_config(client, security);
        vec!["--client-config".to_owned(), file.display().to_string()]
    }

    /// Produces `count` records into a new topic through `route` and consumes them back in a
    /// new group; returns both reports (the caller checks them with [`check_round_trip`]).
    pub fn round_trip(
        &self,
        client: Client,
        route: Route,
        security: Security,
        count: u64,
    ) -> Result<(ProduceReport, ConsumeReport), String> {
        let bootstrap = self.bootstrap(route);
        let topic = crate::unique(&format!("tls-{}-{}", client.name(), security.name()));
        let group = crate::unique("tls-group");
        let conf = self.config_args(client, security);
        let conf: Vec<&str> = conf.iter().map(String::as_str).collect();
        let produced = client
            .spawn_produce_with(&self.tools, &bootstrap, &topic, count, 7, &conf)
            .finish(Duration::from_secs(90))?;
        let produced = ProduceReport {
            produced: produced["produced"].as_u64().unwrap_or(0),
            errors: produced["errors"].as_u64().unwrap_or(0),
            digest: produced["digest"].as_str().unwrap_or("").to_owned(),
        };
        let mut a = args(&[
            "consume",
            "--bootstrap",
            &bootstrap,
            "--topic",
            &topic,
            "--group",
            &group,
            "--count",
            &count.to_string(),
            "--timeout-s",
            "60",
        ]);
        a.extend(args(&conf));
        let consumed = client
            .spawn(&self.tools, &a)
            .finish(Duration::from_secs(90))?;
        Ok((produced, consume_report(&consumed)))
    }
}

/// Panics unless every record produced came back once, with the same checksum.
pub fn check_round_trip(what: &str, count: u64, p: &ProduceReport, c: &ConsumeReport) {
    assert_eq!((p.produced, p.errors), (count, 0), "{what}: produce: {p:?}");
    assert_eq!((c.consumed, c.bad), (count, 0), "{what}: consume: {c:?}");
    assert_eq!(c.digest, p.digest, "{what}: checksum of what came back");
}

/// The client properties for `security`, in the client's own dialect.
fn client_properties(pki: &Pki, client: Client, security: Security) -> Vec<String> {
    let protocol = if security.user().is_some() {
        "SASL_SSL"
    } else {
        "SSL"
    };
    let ca = if security == Security::WrongCa {
        &pki.other_ca
    } else {
        &pki.ca
    };
    let cert = match security {
        Security::Mtls => Some(&pki.client),
        Security::ExpiredCert => Some(&pki.expired_client),
        Security::ForeignCert => Some(&pki.foreign_client),
        _ => None,
    };
    let mut p = vec![format!("security.protocol={protocol}")];
    let password = match security {
        Security::Scram => SCRAM_PASSWORD,
        _ => PLAIN_PASSWORD,
    };
    let mechanism = match security {
        Security::Scram => "SCRAM-SHA-512",
        _ => "PLAIN",
    };
    match client {
        Client::Java => {
            p.push("ssl.truststore.type=PEM".to_owned());
            p.push(format!("ssl.truststore.location={}", ca.display()));
            if let Some(c) = cert {
                p.push("ssl.keystore.type=PEM".to_owned());
                p.push(format!("ssl.keystore.location={}", c.keystore.display()));
            }
            if let Some(user) = security.user() {
                let module = if security == Security::Scram {
                    "org.apache.kafka.common.security.scram.ScramLoginModule"
                } else {
                    "org.apache.kafka.common.security.plain.PlainLoginModule"
                };
                p.push(format!("sasl.mechanism={mechanism}"));
                p.push(format!(
                    "sasl.jaas.config={module} required username=\"{user}\" password=\"{password}\";"
                ));
            }
        }
        Client::Go => panic!("the Go client takes no --client-config"),
        Client::Python => {
            p.push(format!("ssl.ca.location={}", ca.display()));
            if let Some(c) = cert {
                p.push(format!("ssl.certificate.location={}", c.cert.display()));
                p.push(format!("ssl.key.location={}", c.key.display()));
            }
            if let Some(user) = security.user() {
                p.push(format!("sasl.mechanisms={mechanism}"));
                p.push(format!("sasl.username={user}"));
                p.push(format!("sasl.password={password}"));
            }
        }
    }
    p
}
