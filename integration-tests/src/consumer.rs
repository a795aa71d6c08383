//! The consumer behaviours the scenarios need, as `consume` command lines every client
//! understands (see `clients/*/`): commit modes, group protocols, long runs, slow
//! processing, crashes.

use std::time::Duration;

use crate::clients::{Client, Running};
use crate::scenario::args;
use crate::tools::Tools;

/// How a consumer commits its offsets (`--commit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// A synchronous commit after each non-empty poll.
    Sync,
    /// An asynchronous commit after each non-empty poll.
    Async,
    /// A synchronous commit of each record as it is read.
    PerRecord,
    /// The client's own auto-commit, at this interval.
    Auto(Duration),
    /// Never.
    None,
}

impl Commit {
    /// Short label for reports: `sync`, `auto-5s`, ...
    pub fn label(self) -> String {
        match self {
            Commit::Sync => "sync".into(),
            Commit::Async => "async".into(),
            Commit::PerRecord => "per-record".into(),
            Commit::Auto(d) => format!("auto-{}s", d.as_secs_f64()),
            Commit::None => "none".into(),
        }
    }
}

/// The group protocol (`--group-protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// JoinGroup / SyncGroup / Heartbeat.
    Classic,
    /// KIP-848: ConsumerGroupHeartbeat.
    Consumer,
}

/// A `consume` run of one topic, in a group or with `assign()`, built up and then spawned.
#[derive(Debug, Clone)]
pub struct Consume {
    client: Client,
    topic: String,
    group: Option<String>,
    client_id: String,
    commit: Commit,
    protocol: Option<Protocol>,
    duration: Duration,
    session_timeout: Option<Duration>,
    max_poll_interval: Option<Duration>,
    process: Option<Duration>,
    crash_after: Option<u64>,
    count: Option<u64>,
}

impl Consume {
    /// A member of `group` reading `topic` as `client_id` for `duration` (or until stopped,
    /// or [`Consume::count`] records), committing synchronously after each poll.
    pub fn group(
        client: Client,
        topic: &str,
        group: &str,
        client_id: &str,
        duration: Duration,
    ) -> Self {
        Consume {
            client,
            topic: topic.to_owned(),
            group: Some(group.to_owned()),
            client_id: client_id.to_owned(),
            commit: Commit::Sync,
            protocol: None,
            duration,
            session_timeout: None,
            max_poll_interval: None,
            process: None,
            crash_after: None,
            count: None,
        }
    }

    /// A consumer with no group, `assign()`-ing every partition of `topic` from the start.
    pub fn assign(client: Client, topic: &str, client_id: &str, duration: Duration) -> Self {
        Consume {
            group: None,
            commit: Commit::None,
            ..Consume::group(client, topic, "", client_id, duration)
        }
    }

    /// Its client library.
    pub fn client(&self) -> Client {
        self.client
    }

    /// Its group, if any.
    pub fn group_name(&self) -> Option<&str> {
        self.group.as_deref()
    }

    /// Its `client.id`.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Sets how it commits.
    pub fn commit(mut self, commit: Commit) -> Self {
        self.commit = commit;
        self
    }

    /// Sets the group protocol.
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = Some(protocol);
        self
    }

    /// Sets the classic protocol's session timeout.
    pub fn session_timeout(mut self, d: Duration) -> Self {
        self.session_timeout = Some(d);
        self
    }

    /// Sets `max.poll.interval.ms` (not franz-go: it has none).
    pub fn max_poll_interval(mut self, d: Duration) -> Self {
        self.max_poll_interval = Some(d);
        self
    }

    /// Spends `d` processing each non-empty poll before committing it.
    pub fn process(mut self, d: Duration) -> Self {
        self.process = Some(d);
        self
    }

    /// Dies (exit 3, no commit, no close) after `n` unique records.
    pub fn crash_after(mut self, n: u64) -> Self {
        self.crash_after = Some(n);
        self
    }

    /// Stops after `n` unique records (or at its run time, then failing).
    pub fn count(mut self, n: u64) -> Self {
        self.count = Some(n);
        self
    }

    /// Its command line against `bootstrap`.
    pub fn args(&self, bootstrap: &str) -> Vec<String> {
        let ms = |d: Duration| d.as_millis().to_string();
        let mut a = args(&[
            "consume",
            "--bootstrap",
            bootstrap,
            "--topic",
            &self.topic,
            "--client-id",
            &self.client_id,
        ]);
        let secs = self.duration.as_secs().max(1).to_string();
        match self.count {
            Some(n) => a.extend(args(&["--count", &n.to_string(), "--timeout-s", &secs])),
            None => a.extend(args(&["--duration-s", &secs])),
        }
        match &self.group {
            Some(g) => a.extend(args(&["--group", g])),
            None => a.push("--assign".into()),
        }
        let commit = match self.commit {
            Commit::Sync => "sync",
            Commit::Async => "async",
            Commit::PerRecord => "per-record",
            Commit::Auto(d) => {
                a.extend(args(&["--auto-commit-interval-ms", &ms(d)]));
                "auto"
            }
            Commit::None => "none",
        };
        a.extend(args(&["--commit", commit]));
        if let Some(p) = self.protocol {
            let p = match p {
                Protocol::Classic => "classic",
                Protocol::Consumer => "consumer",
            };
            a.extend(args(&["--group-protocol", p]));
        }
        for (flag, d) in [
            ("--session-timeout-ms", self.session_timeout),
            ("--max-poll-interval-ms", self.max_poll_interval),
            ("--process-ms", self.process),
        ] {
            if let Some(d) = d {
                a.extend(args(&[flag, &ms(d)]));
            }
        }
        if let Some(n) = self.crash_after {
            a.extend(args(&["--crash-after", &n.to_string()]));
        }
        a
    }

    /// Starts it against `bootstrap`.
    pub fn spawn(&self, tools: &Tools, bootstrap: &str) -> Running {
        self.client.spawn(tools, &self.args(bootstrap))
    }
}

/// Starts a checksummed producer trickle: `rate` records of 1 KB per second into `topic` as
/// `client_id`, for `duration` (librdkafka: a light process, many can run at once).
pub fn trickle(
    tools: &Tools,
    bootstrap: &str,
    topic: &str,
    rate: u32,
    duration: Duration,
    client_id: &str,
) -> Running {
    let count = u64::from(rate) * duration.as_secs();
    Client::Python.spawn_produce_with(
        tools,
        bootstrap,
        topic,
        count,
        count,
        &["--rate", &rate.to_string(), "--client-id", client_id],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines() {
        let c = Consume::group(Client::Go, "t", "g", "c", Duration::from_secs(90))
            .commit(Commit::Auto(Duration::from_secs(5)))
            .protocol(Protocol::Consumer)
            .process(Duration::from_millis(1500));
        assert_eq!(
            c.args("b:1").join(" "),
            "consume --bootstrap b:1 --topic t --client-id c --duration-s 90 --group g \
             --auto-commit-interval-ms 5000 --commit auto --group-protocol consumer --process-ms 1500"
        );
        let a = Consume::assign(Client::Java, "t", "c", Duration::from_secs(5)).crash_after(3);
        assert_eq!(
            a.args("b:1").join(" "),
            "consume --bootstrap b:1 --topic t --client-id c --duration-s 5 --assign --commit none \
             --crash-after 3"
        );
    }
}
