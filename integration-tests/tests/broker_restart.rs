//! The broker crashes (`kill -9`) and restarts while a consumer runs through Sluice: the
//! consumer recovers through the proxy and nothing is lost.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use sluice_integration_tests::clients::consume_report;
use sluice_integration_tests::net::{listening, wait_until};
use sluice_integration_tests::{unique, Client, Cluster};

fn xor_hex(a: &str, b: &str) -> String {
    let bytes = |s: &str| -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    };
    bytes(a)
        .iter()
        .zip(bytes(b))
        .map(|(x, y)| format!("{:02x}", x ^ y))
        .collect()
}

#[test]
fn consumer_recovers_through_the_proxy_after_a_broker_crash() {
    let cluster = Cluster::start();
    let bootstrap = cluster.bootstrap();
    let topic = unique("restart");
    let group = unique("group");
    cluster.create_topic(&topic, 2);

    let before = Client::Java
        .produce(&cluster.tools, &bootstrap, &topic, 2000, 1)
        .unwrap();
    let consumer = Client::Java.spawn_consume(
        &cluster.tools,
        &bootstrap,
        &topic,
        &group,
        4000,
        Duration::from_secs(150),
    );
    // Wait until the consumer is fetching through the proxy, then crash the broker.
    let fetched_before = cluster.stats.bytes_to_client.load(Relaxed);
    wait_until("consumer fetching", Duration::from_secs(60), || {
        cluster.stats.bytes_to_client.load(Relaxed) > fetched_before + 1_000_000
    });
    let failures_before = cluster.stats.upstream_connect_failures.load(Relaxed);
    {
        let mut broker = cluster.broker.lock().unwrap();
        let addr = broker.addr();
        broker.crash();
        wait_until("broker port closed", Duration::from_secs(10), || {
            !listening(addr)
        });
    }
    // While the broker is down, the client's reconnects reach the proxy and are refused
    // upstream: the proxy says so and closes them.
    wait_until(
        "reconnects refused upstream",
        Duration::from_secs(30),
        || cluster.stats.upstream_connect_failures.load(Relaxed) > failures_before,
    );
    cluster.broker.lock().unwrap().restart();
    cluster.wait_ready(Duration::from_secs(60));

    let after = Client::Java
        .produce(&cluster.tools, &bootstrap, &topic, 2000, 2)
        .unwrap();
    let v = consumer
        .finish(Duration::from_secs(180))
        .unwrap_or_else(|e| {
            panic!(
                "{e}\nbroker log:\n{}",
                cluster.broker.lock().unwrap().log_tail(30)
            )
        });
    let got = consume_report(&v);
    assert_eq!(got.consumed, 4000, "records lost across the restart");
    assert_eq!(got.bad, 0);
    assert_eq!(got.digest, xor_hex(&before.digest, &after.digest));
    cluster.stop();
}
