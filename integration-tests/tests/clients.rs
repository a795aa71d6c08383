//! Real clients through Sluice in front of a real broker: every record arrives exactly as
//! sent (checksummed per record, digest over the whole set), in consumer groups that commit.

use std::sync::atomic::Ordering::Relaxed;

use sluice_integration_tests::{unique, Client, Cluster};

const RECORDS: u64 = 3000;

fn round_trip(producer: Client, consumer: Client) {
    let cluster = Cluster::shared();
    let topic = unique(&format!("rt-{}-{}", producer.name(), consumer.name()));
    let group = unique("group");
    cluster.create_topic(&topic, 3);
    let before = cluster.stats.bytes_to_client.load(Relaxed);
    let produced = producer
        .produce(&cluster.tools, &cluster.bootstrap(), &topic, RECORDS, 42)
        .unwrap();
    assert_eq!(produced.produced, RECORDS);
    assert_eq!(produced.errors, 0);
    let consumed = consumer
        .consume(
            &cluster.tools,
            &cluster.bootstrap(),
            &topic,
            &group,
            RECORDS,
        )
        .unwrap();
    assert_eq!(consumed.consumed, RECORDS, "{producer:?} → {consumer:?}");
    assert_eq!(
        consumed.bad, 0,
        "checksum failures {producer:?} → {consumer:?}"
    );
    assert_eq!(
        consumed.digest, produced.digest,
        "record set differs {producer:?} → {consumer:?}"
    );
    // Each record is ~1 KiB before compression (franz-go compresses by default, and the
    // payloads share a pool): at least a few hundred bytes each must have come through.
    let through_proxy = cluster.stats.bytes_to_client.load(Relaxed) - before;
    assert!(
        through_proxy >= RECORDS * 200,
        "only {through_proxy} bytes reached clients through the proxy"
    );
}

#[test]
fn java_client_round_trip() {
    round_trip(Client::Java, Client::Java);
}

#[test]
fn librdkafka_client_round_trip() {
    round_trip(Client::Python, Client::Python);
}

#[test]
fn franz_go_client_round_trip() {
    round_trip(Client::Go, Client::Go);
}

#[test]
fn records_cross_client_libraries_unchanged() {
    round_trip(Client::Java, Client::Go);
    round_trip(Client::Go, Client::Python);
    round_trip(Client::Python, Client::Java);
}

#[test]
fn committed_offsets_hold_across_consumer_restarts() {
    let cluster = Cluster::shared();
    let topic = unique("commit");
    let group = unique("group");
    cluster.create_topic(&topic, 2);
    let first = Client::Go
        .produce(&cluster.tools, &cluster.bootstrap(), &topic, 500, 1)
        .unwrap();
    let got = Client::Java
        .consume(&cluster.tools, &cluster.bootstrap(), &topic, &group, 500)
        .unwrap();
    assert_eq!(got.digest, first.digest);
    // A second batch: the same group must resume from its committed offsets and see only it.
    let second = Client::Go
        .produce(&cluster.tools, &cluster.bootstrap(), &topic, 300, 2)
        .unwrap();
    let got = Client::Python
        .consume(&cluster.tools, &cluster.bootstrap(), &topic, &group, 300)
        .unwrap();
    assert_eq!(got.consumed, 300);
    assert_eq!(
        got.duplicates, 0,
        "records before the commit were delivered again"
    );
    assert_eq!(got.digest, second.digest);
}
