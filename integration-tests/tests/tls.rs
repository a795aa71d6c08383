//! Issue 20's real tests: a real broker with secured listeners (certificates made by the
//! test), the Java client and librdkafka over TLS, SASL_SSL (SCRAM-SHA-512, PLAIN) and mTLS.
//!
//! The direct round trips (clients to the broker's own `SSL` and `SASL_SSL` listeners) show
//! the broker's setup and each client's settings work before anything goes through Sluice.

use std::sync::OnceLock;

use sluice_integration_tests::secured::{check_round_trip, Route, SecuredBroker, Security};
use sluice_integration_tests::Client;

fn broker() -> &'static SecuredBroker {
    static SHARED: OnceLock<SecuredBroker> = OnceLock::new();
    SHARED.get_or_init(SecuredBroker::start)
}

const COUNT: u64 = 200;

fn direct(client: Client, route: Route, security: Security) {
    let what = format!("{} {security:?} direct", client.name());
    let (p, c) = broker()
        .round_trip(client, route, security, COUNT)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    check_round_trip(&what, COUNT, &p, &c);
}

#[test]
fn direct_ssl_and_sasl_ssl_round_trips() {
    for client in [Client::Java, Client::Python] {
        direct(client, Route::DirectSsl, Security::Ssl);
        direct(client, Route::DirectSasl, Security::Scram);
        direct(client, Route::DirectSasl, Security::Plain);
    }
}
