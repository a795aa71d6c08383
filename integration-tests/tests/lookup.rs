//! The group lookup against a real broker, asked directly at its own listener (as a sidecar
//! asks its upstream): a Java classic consumer group, a Java KIP-848 consumer
//! (`--group-protocol consumer`) and a librdkafka consumer, each committing, each with its own
//! `client.id`. The lookup must find each client's group from its `client.id` alone (a blind
//! sidecar's question), then name each group's protocol, member, host and assignment, and its
//! committed offsets — equal to what the clients report having consumed. Asked through the
//! proxy instead (as a lookup reaches another broker, through that broker's sidecar), it
//! learns the same, on one connection that the tap sees with `client.id` `sluice-lookup`. The
//! cost of a round goes to the detection report.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice::lookup::{
    ClientInterest, GroupLookup, GroupProtocol, GroupsView, Interest, LOOKUP_CLIENT_ID,
};
use sluice_config::LookupConfig;
use sluice_integration_tests::clients::{consume_report, Running};
use sluice_integration_tests::net::wait_until;
use sluice_integration_tests::{findings, unique, Client, Cluster};
use sluice_protocol::TapEvent;
use tokio::sync::watch;

const BACKLOG: u64 = 3_000;
const LATER: u64 = 600;
const LOCALHOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// One consumer of the test: its library, group, `client.id` and group protocol.
struct Member {
    client: Client,
    group: String,
    client_id: String,
    protocol: GroupProtocol,
}

/// A lookup running on its own thread; the latest view is kept, the interest can be changed.
struct LookupThread {
    latest: Arc<Mutex<Option<GroupsView>>>,
    interest: watch::Sender<Interest>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LookupThread {
    fn start(cluster: &Cluster, interest: Interest) -> LookupThread {
        let settings = LookupConfig {
            interval: Duration::from_secs(1),
            ..LookupConfig::default()
        };
        let lookup = GroupLookup::new(
            &settings,
            cluster.broker_addr.to_string(),
            Some(cluster.proxy_addr),
        );
        let latest = Arc::new(Mutex::new(None));
        let (tx, rx) = watch::channel(interest);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let keep = latest.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(lookup.run(
                rx,
                move |view| *keep.lock().unwrap() = Some(view),
                async move {
                    let _ = stopped.await;
                },
            ));
        });
        LookupThread {
            latest,
            interest: tx,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Waits until the latest view satisfies `cond`; returns that view.
    fn wait(&self, what: &str, cond: impl Fn(&GroupsView) -> bool) -> GroupsView {
        let mut found = None;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_until(what, Duration::from_secs(90), || {
                let latest = self.latest.lock().unwrap();
                match latest.as_ref() {
                    Some(v) if cond(v) => {
                        found = Some(v.clone());
                        true
                    }
                    _ => false,
                }
            })
        }));
        if let Err(e) = result {
            let latest = self.latest.lock().unwrap();
            eprintln!("last view: {latest:#?}");
            std::panic::resume_unwind(e);
        }
        found.unwrap()
    }
}

impl Drop for LookupThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn consume(cluster: &Cluster, m: &Member, topic: &str) -> Running {
    let count = (BACKLOG + LATER).to_string();
    let mut args = vec![
        "consume",
        "--bootstrap",
        &cluster.proxy_addr.to_string(),
        "--topic",
        topic,
        "--group",
        &m.group,
        "--count",
        &count,
        "--timeout-s",
        "150",
        "--client-id",
        &m.client_id,
        "--commit",
        "sync",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect::<Vec<_>>();
    if m.protocol == GroupProtocol::Consumer {
        args.extend(["--group-protocol".to_owned(), "consumer".to_owned()]);
    }
    m.client.spawn(&cluster.tools, &args)
}

/// Whether `view` shows `m` as the one member of its group, with `topic`'s three partitions
/// and `committed` records committed in all.
fn settled(view: &GroupsView, m: &Member, topic: &str, committed: u64) -> bool {
    let Some(g) = view.group(&m.group) else {
        return false;
    };
    let members_ok = g.members.as_ref().is_some_and(|ms| {
        ms.members.len() == 1
            && ms.members[0].client_id == m.client_id
            && ms.members[0].client_host == Some(LOCALHOST)
            && ms.members[0].assignment == [(topic.to_owned(), vec![0, 1, 2])]
    });
    members_ok && g.protocol == m.protocol && committed_sum(view, &m.group) == Some(committed)
}

fn committed_sum(view: &GroupsView, group: &str) -> Option<u64> {
    let c = view.group(group)?.committed.as_ref()?;
    Some(c.offsets.values().map(|o| *o as u64).sum())
}

fn cost(label: &str, view: &GroupsView) {
    let r = &view.round;
    findings::report(&format!(
        "lookup round ({label}): {} requests, {} B sent, {} B received, {} groups listed, \
         {} described, {} with offsets, {:?}",
        r.requests,
        r.bytes_sent,
        r.bytes_received,
        r.groups_listed,
        r.groups_described,
        r.groups_committed,
        r.took
    ));
}

#[test]
fn lookup_names_groups_members_and_commits() {
    let cluster = Cluster::start();
    let boot = cluster.bootstrap();
    let topic = unique("lookup");
    cluster.create_topic(&topic, 3);
    Client::Java
        .produce(&cluster.tools, &boot, &topic, BACKLOG, 1)
        .unwrap();

    let members = [
        (Client::Java, "lk-java", GroupProtocol::Classic),
        (Client::Java, "lk-java-848", GroupProtocol::Consumer),
        (Client::Python, "lk-rdkafka", GroupProtocol::Classic),
    ]
    .map(|(client, name, protocol)| Member {
        client,
        group: unique(&format!("{name}-group")),
        client_id: unique(name),
        protocol,
    });
    let consumers: Vec<Running> = members
        .iter()
        .map(|m| consume(&cluster, m, &topic))
        .collect();

    // A blind sidecar knows only who fetches: host and client.id.
    let clients: Vec<ClientInterest> = members
        .iter()
        .map(|m| ClientInterest {
            host: LOCALHOST,
            client_id: m.client_id.clone(),
            partitions: vec![(topic.clone(), 0)],
        })
        .collect();
    let lookup = LookupThread::start(
        &cluster,
        Interest {
            groups: BTreeSet::new(),
            topic_ids: Default::default(),
            clients: clients.clone(),
        },
    );
    let view = lookup.wait("each client's group found by the sweep", |v| {
        members.iter().zip(&clients).all(|(m, c)| {
            let groups = v.groups_of(c);
            groups.len() == 1 && groups[0].group_id == m.group && settled(v, m, &topic, BACKLOG)
        })
    });
    assert!(view.round.swept);
    cost("sweep, 3 clients without a group", &view);
    assert_eq!(view.brokers.len(), 1);
    assert!(view.brokers[0].fronted, "{:?}", view.brokers);
    for m in &members {
        let g = view.group(&m.group).unwrap();
        assert!(g.coordinator.fronted);
        assert_eq!(g.coordinator.addr, cluster.broker_addr.to_string());
        assert!(g.listed_at.is_some());
    }

    // The observer has attributed them: it now asks for the three groups by name.
    let wanted: BTreeSet<String> = members.iter().map(|m| m.group.clone()).collect();
    lookup.interest.send_replace(Interest {
        groups: wanted.clone(),
        topic_ids: Default::default(),
        clients: Vec::new(),
    });
    let view = lookup.wait("a steady round", |v| {
        !v.round.swept && v.round.groups_committed == 3
    });
    assert!(view.issues.is_empty(), "{:?}", view.issues);
    cost("steady, 3 groups of interest", &view);

    // The rest of the records; each client reports what it consumed, and its committed
    // offsets must say the same once it has left its group.
    Client::Java
        .produce(&cluster.tools, &boot, &topic, LATER, 2)
        .unwrap();
    let mut consumed = Vec::new();
    for (m, c) in members.iter().zip(consumers) {
        let v = c
            .finish(Duration::from_secs(180))
            .unwrap_or_else(|e| panic!("{}: {e}", m.client_id));
        let report = consume_report(&v);
        assert_eq!(report.bad, 0);
        consumed.push(report.consumed);
    }
    let view = lookup.wait("every group empty with its final commits", |v| {
        members.iter().zip(&consumed).all(|(m, n)| {
            let empty = v
                .group(&m.group)
                .and_then(|g| g.members.as_ref())
                .is_some_and(|ms| ms.members.is_empty());
            empty && committed_sum(v, &m.group) == Some(*n)
        })
    });
    for (m, n) in members.iter().zip(&consumed) {
        assert_eq!(*n, BACKLOG + LATER, "{} consumed", m.client_id);
        let offsets = &view
            .group(&m.group)
            .unwrap()
            .committed
            .as_ref()
            .unwrap()
            .offsets;
        assert_eq!(offsets.len(), 3, "{}: {offsets:?}", m.group);
    }
    assert!(view.issues.is_empty(), "{:?}", view.issues);
    assert_eq!(
        view.totals.connects, 1,
        "one connection, kept across rounds"
    );
    assert!(view.totals.errors.is_empty(), "{:?}", view.totals.errors);
    findings::report(&format!(
        "lookup totals: {} rounds, {} requests, {} B sent, {} B received, {} connection(s)",
        view.totals.rounds,
        view.totals.requests,
        view.totals.bytes_sent,
        view.totals.bytes_received,
        view.totals.connects
    ));

    // The same questions through the proxy: what another sidecar's lookup does.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let settings = LookupConfig::default();
    let mut through = GroupLookup::new(&settings, cluster.bootstrap(), None);
    let interest = Interest {
        groups: wanted,
        topic_ids: Default::default(),
        clients: Vec::new(),
    };
    let hop = rt.block_on(through.round(&interest));
    assert!(hop.issues.is_empty(), "{:?}", hop.issues);
    for (m, n) in members.iter().zip(&consumed) {
        assert_eq!(
            committed_sum(&hop, &m.group),
            Some(*n),
            "{} through the proxy",
            m.group
        );
        assert_eq!(hop.group(&m.group).unwrap().protocol, m.protocol);
    }
    let lookup_conns = cluster.events.connections_where(
        |e| matches!(e, TapEvent::Request(r) if r.client_id.as_deref() == Some(LOOKUP_CLIENT_ID)),
    );
    assert_eq!(
        lookup_conns.len(),
        1,
        "one lookup connection through the proxy"
    );
    let apis: BTreeSet<i16> = cluster
        .events
        .of_connection(lookup_conns[0])
        .iter()
        .filter_map(|e| match e {
            TapEvent::Request(r) => Some(r.api_key),
            _ => None,
        })
        .collect();
    // Metadata, OffsetFetch, DescribeGroups, ListGroups, ApiVersions, ConsumerGroupDescribe:
    // questions only.
    assert_eq!(apis, BTreeSet::from([3, 9, 15, 16, 18, 69]), "{apis:?}");
}
