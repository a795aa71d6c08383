//! Traffic shared by several test binaries: the incident's poisoned backlog, its producer
//! trickle and its looping consumer.

use std::time::Duration;

use crate::clients::Running;
use crate::tools::Tools;
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
    poison_backlog(&cluster.tools, &cluster.bootstrap(), &topic);
    topic
}

/// Writes the incident's backlog into partition 0 of an existing `topic`: 3,000 JSON
/// records of 1 KB, the one at offset 100 malformed.
pub fn poison_backlog(tools: &Tools, bootstrap: &str, topic: &str) {
    poison_backlog_with(tools, bootstrap, topic, &[]);
}

/// Like [`poison_backlog`], with more options for the Java client (`--client-config`).
pub fn poison_backlog_with(tools: &Tools, bootstrap: &str, topic: &str, extra: &[&str]) {
    let mut more = vec![
        "--partition",
        "0",
        "--poison-at",
        "100",
        "--client-id",
        "backfill",
    ];
    more.extend_from_slice(extra);
    produce_json(tools, bootstrap, topic, 3000, &more)
        .finish(Duration::from_secs(120))
        .unwrap();
}

/// Starts a trickle of `count` JSON records at 5 per second into `topic`, as a new
/// `order-api` client.
pub fn json_trickle(tools: &Tools, bootstrap: &str, topic: &str, count: u32) -> Running {
    let id = unique("order-api");
    produce_json(
        tools,
        bootstrap,
        topic,
        count,
        &["--rate", "5", "--client-id", &id],
    )
}

/// Starts the Java client's `produce-json` of `count` records into `topic`.
fn produce_json(tools: &Tools, bootstrap: &str, topic: &str, count: u32, more: &[&str]) -> Running {
    let mut a = args(&[
        "produce-json",
        "--bootstrap",
        bootstrap,
        "--topic",
        topic,
        "--count",
        &count.to_string(),
    ]);
    a.extend(args(more));
    Client::Java.spawn(tools, &a)
}

/// Starts the incident's consumer: `consume-loop` of `topic` in `group` as `client_id` for
/// 30 s, seeking back to any record it cannot parse; `extra` are more options.
pub fn consume_loop(
    client: Client,
    tools: &Tools,
    bootstrap: &str,
    topic: &str,
    group: &str,
    client_id: &str,
    extra: &[&str],
) -> Running {
    let mut a = args(&[
        "consume-loop",
        "--bootstrap",
        bootstrap,
        "--topic",
        topic,
        "--group",
        group,
        "--duration-s",
        "30",
        "--client-id",
        client_id,
    ]);
    a.extend(args(extra));
    client.spawn(tools, &a)
}
