//! Traffic shared by several test binaries: the incident's poisoned backlog.

use std::time::Duration;

use crate::{unique, Client, Cluster};

/// Owned command-line arguments.
pub fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_owned()).collect()
}

/// The incident's backlog: a new topic with 3,000 JSON records of 1 KB on partition 0, the
/// one at offset 100 malformed (a consumer that cannot parse it seeks back to it forever).
pub fn poisoned_topic(cluster: &Cluster, name: &str) -> String {
    let topic = unique(name);
    cluster.create_topic(&topic, 1);
    Client::Java
        .spawn(
            &cluster.tools,
            &args(&[
                "produce-json",
                "--bootstrap",
                &cluster.bootstrap(),
                "--topic",
                &topic,
                "--count",
                "3000",
                "--partition",
                "0",
                "--poison-at",
                "100",
                "--client-id",
                "backfill",
            ]),
        )
        .finish(Duration::from_secs(120))
        .unwrap();
    topic
}
