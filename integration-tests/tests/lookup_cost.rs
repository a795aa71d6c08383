//! What a lookup round costs a real broker with 200 consumer groups (committed offsets, no
//! members, made with Kafka's own `kafka-consumer-groups` tool): the request count must follow
//! the cost model — Metadata every round; the listing only when due or needed; per
//! coordinator, one describe and one OffsetFetch per 32 groups of interest — and the bytes go
//! to the detection report.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::Command;

use sluice::lookup::{ClientInterest, GroupLookup, GroupsView, Interest};
use sluice_config::LookupConfig;
use sluice_integration_tests::{findings, unique, Client, Cluster};

const GROUPS: usize = 200;

/// `GROUPS` groups with offset 50 committed on each of `topic`'s partitions.
fn make_groups(cluster: &Cluster, topic: &str) -> Vec<String> {
    let prefix = unique("cost");
    let groups: Vec<String> = (0..GROUPS).map(|i| format!("{prefix}-g{i:03}")).collect();
    let java = std::env::var_os("JAVA_HOME")
        .map(|h| std::path::PathBuf::from(h).join("bin/java"))
        .unwrap_or_else(|| "java".into());
    let mut cmd = Command::new(java);
    cmd.arg("-cp")
        .arg(cluster.tools.kafka_libs.join("*"))
        .arg("org.apache.kafka.tools.consumer.group.ConsumerGroupCommand")
        .args(["--bootstrap-server", &cluster.broker_addr.to_string()])
        .args(["--reset-offsets", "--to-offset", "50", "--execute"])
        .args(["--topic", topic]);
    for g in &groups {
        cmd.args(["--group", g]);
    }
    let out = cmd.output().expect("run kafka-consumer-groups");
    assert!(
        out.status.success(),
        "kafka-consumer-groups: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    groups
}

fn report(label: &str, view: &GroupsView) {
    let r = &view.round;
    findings::report(&format!(
        "lookup cost, {GROUPS} groups in the cluster, {label}: {} requests, {} B sent, \
         {} B received{}",
        r.requests,
        r.bytes_sent,
        r.bytes_received,
        if r.listed { " (listing included)" } else { "" }
    ));
    assert!(view.issues.is_empty(), "{label}: {:?}", view.issues);
}

#[test]
fn a_round_costs_what_the_groups_of_interest_cost() {
    let cluster = Cluster::start();
    let topic = unique("cost");
    cluster.create_topic(&topic, 3);
    Client::Java
        .produce(&cluster.tools, &cluster.bootstrap(), &topic, 300, 1)
        .unwrap();
    let groups = make_groups(&cluster, &topic);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut lookup = GroupLookup::new(
        &LookupConfig::default(),
        cluster.broker_addr.to_string(),
        Some(cluster.proxy_addr),
    );
    let batches = GROUPS.div_ceil(32) as u32;

    // A client without a group: the first round connects (ApiVersions), lists and sweeps.
    let nobody = Interest {
        groups: BTreeSet::new(),
        topic_ids: Default::default(),
        clients: vec![ClientInterest {
            host: IpAddr::from([127, 0, 0, 1]),
            client_id: unique("nobody"),
            partitions: Vec::new(),
        }],
    };
    let v = rt.block_on(lookup.round(&nobody));
    report("first round, a sweep", &v);
    assert_eq!(v.round.groups_listed as usize, GROUPS);
    assert_eq!(v.round.groups_described as usize, GROUPS);
    assert_eq!(
        v.round.requests,
        3 + batches,
        "ApiVersions, Metadata, ListGroups, describes"
    );

    // Nothing of interest: Metadata only.
    let v = rt.block_on(lookup.round(&Interest::default()));
    report("nothing of interest", &v);
    assert_eq!(v.round.requests, 1);

    for n in [10, GROUPS] {
        let interest = Interest {
            groups: groups.iter().take(n).cloned().collect(),
            topic_ids: Default::default(),
            clients: Vec::new(),
        };
        let v = rt.block_on(lookup.round(&interest));
        report(&format!("{n} groups of interest"), &v);
        assert!(!v.round.listed);
        let per_kind = n.div_ceil(32) as u32;
        assert_eq!(
            v.round.requests,
            1 + 2 * per_kind,
            "Metadata, describes, offset fetches"
        );
        assert_eq!(v.round.groups_committed as usize, n);
        let g = v.group(&groups[0]).unwrap();
        let committed = &g.committed.as_ref().unwrap().offsets;
        assert_eq!(
            committed.values().copied().collect::<Vec<_>>(),
            [50, 50, 50]
        );
    }
}
