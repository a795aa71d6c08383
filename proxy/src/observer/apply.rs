//! How each tap event changes the model: one method per kind of event, applied by the
//! observer's task to the connection the event came on.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use sluice_protocol::event::{Assignment, CommittedOffset, FetchPartitionDelivered, TopicRef};
use sluice_protocol::event::{FetchRequestInfo, ProducePartition, RequestSeen, ResponseSeen};
use sluice_protocol::TapEvent;

use super::config::DetectConfig;
use super::model::conn::PendingCommit;
use super::model::inner::MAX_PENDING_OFFSETS;
use super::model::{java_default_group, topic_name, Assigned, Attribution, Conn, Inner, Model};

/// API key of OffsetCommit.
const OFFSET_COMMIT: i16 = 8;
/// API key of TxnOffsetCommit.
const TXN_OFFSET_COMMIT: i16 = 28;

/// One event of one connection, about to be applied.
pub(crate) struct Apply<'a> {
    /// The connection it came on.
    pub conn: &'a mut Conn,
    /// The model.
    pub model: &'a mut Model,
    /// Caps and windows.
    pub cfg: &'a DetectConfig,
    /// When the tap read it.
    pub now: Instant,
}

/// Whether the observer applies events of this kind (others are not copied to its queue).
pub(crate) fn wanted(event: &TapEvent) -> bool {
    matches!(
        event,
        TapEvent::Request(_)
            | TapEvent::Response(_)
            | TapEvent::ClientSoftware(_)
            | TapEvent::Sasl(_)
            | TapEvent::FetchRequest(_)
            | TapEvent::FetchPartition(_)
            | TapEvent::ProducePartition(_)
            | TapEvent::JoinGroup { .. }
            | TapEvent::JoinGroupResponse { .. }
            | TapEvent::SyncGroup { .. }
            | TapEvent::SyncGroupResponse { .. }
            | TapEvent::Heartbeat { .. }
            | TapEvent::LeaveGroup { .. }
            | TapEvent::ConsumerGroupHeartbeat { .. }
            | TapEvent::ConsumerGroupHeartbeatResponse { .. }
            | TapEvent::OffsetCommit { .. }
            | TapEvent::OffsetCommitResponse { .. }
            | TapEvent::TxnOffsetCommit { .. }
    )
}

/// A copy of `event` for the observer's queue, and how many of its offsets were left out: a
/// commit's offsets beyond what a connection's pending commits may hold
/// ([`MAX_PENDING_OFFSETS`]) would be refused anyway, so they are not copied on the forwarding
/// path.
pub(crate) fn copy(event: &TapEvent) -> (TapEvent, usize) {
    match event {
        TapEvent::OffsetCommit {
            group_id,
            generation_id,
            member_id,
            offsets,
        } if offsets.len() > MAX_PENDING_OFFSETS => (
            TapEvent::OffsetCommit {
                group_id: group_id.clone(),
                generation_id: *generation_id,
                member_id: member_id.clone(),
                offsets: offsets[..MAX_PENDING_OFFSETS].to_vec(),
            },
            offsets.len() - MAX_PENDING_OFFSETS,
        ),
        TapEvent::TxnOffsetCommit {
            transactional_id,
            group_id,
            generation_id,
            member_id,
            offsets,
        } if offsets.len() > MAX_PENDING_OFFSETS => (
            TapEvent::TxnOffsetCommit {
                transactional_id: transactional_id.clone(),
                group_id: group_id.clone(),
                generation_id: *generation_id,
                member_id: member_id.clone(),
                offsets: offsets[..MAX_PENDING_OFFSETS].to_vec(),
            },
            offsets.len() - MAX_PENDING_OFFSETS,
        ),
        _ => (event.clone(), 0),
    }
}

fn assigned(a: &Assignment) -> Assigned {
    a.iter()
        .map(|(t, ps)| (topic_name(t), ps.clone()))
        .collect()
}

impl Apply<'_> {
    /// Applies `event` (kinds not [`wanted`] change nothing).
    pub fn event(mut self, event: &TapEvent) {
        match event {
            TapEvent::Request(r) => self.request(r),
            TapEvent::Response(r) => self.response(r),
            TapEvent::ClientSoftware(s) => self.software(&s.name, &s.version),
            TapEvent::Sasl(info) => self.sasl(info),
            TapEvent::FetchRequest(f) => self.fetch_request(f),
            TapEvent::FetchPartition(p) => self.fetch_partition(p),
            TapEvent::ProducePartition(p) => self.produce_partition(p),
            TapEvent::JoinGroup {
                group_id,
                member_id,
                ..
            } => self.join_group(group_id, member_id),
            TapEvent::JoinGroupResponse {
                generation_id,
                member_id,
                error_code: 0,
                ..
            } => self.joined(*generation_id, member_id),
            TapEvent::SyncGroup {
                group_id,
                generation_id,
                member_id,
            } => self.sync_group(group_id, *generation_id, member_id),
            TapEvent::SyncGroupResponse {
                assignment: Some(a),
                error_code: 0,
            } => self.assigned(None, None, Some(a)),
            TapEvent::Heartbeat {
                group_id,
                member_id,
                ..
            } => self.heartbeat(group_id, member_id),
            TapEvent::LeaveGroup {
                group_id,
                member_ids,
            } => self.leave_group(group_id, member_ids),
            TapEvent::ConsumerGroupHeartbeat {
                group_id,
                member_id,
                member_epoch,
                ..
            } => self.consumer_heartbeat(group_id, member_id, *member_epoch),
            TapEvent::ConsumerGroupHeartbeatResponse {
                member_epoch,
                member_id,
                assignment,
                error_code: 0,
            } => self.assigned(
                Some(*member_epoch),
                member_id.as_deref(),
                assignment.as_ref(),
            ),
            TapEvent::OffsetCommit {
                group_id,
                member_id,
                offsets,
                ..
            }
            | TapEvent::TxnOffsetCommit {
                group_id,
                member_id,
                offsets,
                ..
            } => self.offset_commit(group_id, member_id, offsets),
            TapEvent::OffsetCommitResponse { errors, .. } => self.commit_response(errors),
            _ => {}
        }
    }

    /// Every request: the connection's counts, its client key (counted open from its first
    /// request, when its `client.id` is known; moved if the `client.id` changes).
    fn request(&mut self, r: &RequestSeen) {
        self.conn.last_request = r.correlation_id;
        if let Some(id) = &r.client_id {
            if self.conn.client_id.as_ref() != Some(id) {
                self.conn.client_id = Some(id.clone());
            }
        }
        let n = self.conn.api_count(r.api_key, r.api_version);
        n.requests += 1;
        n.bytes_in += r.size;
        self.conn.bytes_in += r.size;
        self.conn.last_activity = self.now;
        let key = self.conn.key();
        if self.conn.counted_as.as_ref() == Some(&key) {
            return;
        }
        let cap = self.cfg.max_clients;
        match self.conn.counted_as.replace(key.clone()) {
            // Its `client.id` changed: the open connection moves to the new key.
            Some(old) => {
                if let Some(c) = self.model.client(&old, self.now, cap) {
                    c.open = c.open.saturating_sub(1);
                }
                if let Some(c) = self.model.client(&key, self.now, cap) {
                    c.open += 1;
                }
            }
            None => {
                if let Some(c) = self.model.client(&key, self.now, cap) {
                    c.open += 1;
                    c.opened += 1;
                    c.recent_opens.push_back(self.conn.opened);
                }
                if let Some(g) = java_default_group(&key.1) {
                    let g = g.to_owned();
                    self.model.attribute(
                        &key,
                        &g,
                        Attribution::ClientIdPattern,
                        self.now,
                        self.cfg.max_groups,
                    );
                }
            }
        }
        self.client_principal();
    }

    fn response(&mut self, r: &ResponseSeen) {
        self.conn.api_count(r.api_key, r.api_version).bytes_out += r.size;
        self.conn.bytes_out += r.size;
        self.conn.last_activity = self.now;
        if r.api_key != OFFSET_COMMIT && r.api_key != TXN_OFFSET_COMMIT {
            return;
        }
        // A commit whose body never told its errors (it did not decode): taken as accepted.
        if let Some(earlier) = self.conn.answered.take() {
            self.apply_commit(earlier, &HashSet::new());
        }
        let Some(commit) = self.conn.commit_answered(r.correlation_id) else {
            return;
        };
        if r.api_key == OFFSET_COMMIT {
            self.conn.answered = Some(commit); // its body, with the refused partitions, is next
        } else {
            self.apply_commit(commit, &HashSet::new()); // TxnOffsetCommit bodies are not decoded
        }
    }

    fn software(&mut self, name: &str, version: &str) {
        let software = Some((name.to_owned(), version.to_owned()));
        let key = self.conn.key();
        if let Some(c) = self.model.client(&key, self.now, self.cfg.max_clients) {
            c.software = software.clone();
        }
        self.conn.software = software;
    }

    fn fetch_request(&mut self, f: &FetchRequestInfo) {
        if f.replica {
            self.conn.replica = true;
            return;
        }
        let key = self.conn.key();
        if let Some(c) = self.model.client(&key, self.now, self.cfg.max_clients) {
            c.fetch_requests += 1;
        }
        for p in &f.partitions {
            self.model.on_fetch_offset(
                &key,
                self.conn.client_addr,
                (topic_name(&p.topic), p.partition),
                p.fetch_offset,
                self.now,
                self.cfg.max_partitions,
            );
        }
    }

    fn fetch_partition(&mut self, p: &FetchPartitionDelivered) {
        let (topic, now, cap) = (topic_name(&p.topic), self.now, self.cfg.max_partitions);
        if self.conn.replica {
            if let Some(t) = self.model.topic(topic, now, cap) {
                t.replica_out += p.records_bytes;
            }
            return;
        }
        let key = self.conn.key();
        let (bytes, again) =
            self.model
                .on_delivered(&key, self.conn.client_addr, (topic.clone(), p), now, cap);
        let clients = (now, self.cfg.max_clients);
        self.model
            .client_topic_bytes(&key, &topic, false, bytes, clients);
        if let Some((t, inner)) = self.model.topic_inner(topic, now, cap) {
            t.bytes_out += bytes;
            t.unique_out += bytes - again;
            if let Some(e) = t.partition(p.partition, inner) {
                e.0 = e.0.max(p.high_watermark);
                if let Some(last) = p.last_offset {
                    e.1 = e.1.max(last);
                }
            }
        }
    }

    fn produce_partition(&mut self, p: &ProducePartition) {
        let (topic, now) = (topic_name(&p.topic), self.now);
        let key = self.conn.key();
        let clients = (now, self.cfg.max_clients);
        self.model
            .client_topic_bytes(&key, &topic, true, p.records_bytes, clients);
        if let Some(t) = self.model.topic(topic, now, self.cfg.max_partitions) {
            t.bytes_in += p.records_bytes;
        }
    }

    /// This connection's coordinator traffic names `group` (and its member `member`).
    fn coordinator(&mut self, group: &str, member: &str) {
        self.conn.saw_group(group);
        self.conn.pending_group = Some((group.into(), member.to_owned()));
        let key = self.conn.key();
        self.model.attribute(
            &key,
            group,
            Attribution::Coordinator,
            self.now,
            self.cfg.max_groups,
        );
    }

    fn join_group(&mut self, group: &str, member: &str) {
        self.coordinator(group, member);
    }

    /// A JoinGroup response: the member's id and the generation it joined.
    fn joined(&mut self, generation: i32, member: &str) {
        let Some((group, _)) = self.conn.pending_group.clone() else {
            return;
        };
        self.conn.pending_group = Some((group.clone(), member.to_owned()));
        let (key, now) = (self.conn.key(), self.now);
        if let Some((g, inner)) = self.model.group_inner(&group, now, self.cfg.max_groups) {
            g.new_generation(generation, now);
            g.member(member, &key, now, inner);
        }
    }

    fn sync_group(&mut self, group: &str, generation: i32, member: &str) {
        self.coordinator(group, member);
        let (key, now) = (self.conn.key(), self.now);
        if let Some((g, inner)) = self.model.group_inner(group, now, self.cfg.max_groups) {
            g.generation = g.generation.max(generation);
            g.member(member, &key, now, inner);
        }
    }

    /// A SyncGroup or ConsumerGroupHeartbeat response: the member of the pending request (or
    /// the one the response names) and, when given, its assignment and new epoch.
    fn assigned(&mut self, epoch: Option<i32>, member: Option<&str>, a: Option<&Assignment>) {
        let Some((group, pending)) = self.conn.pending_group.clone() else {
            return;
        };
        // A KIP-848 member's first heartbeat has no id yet: the response gives it.
        let member = member.filter(|m| !m.is_empty()).unwrap_or(&pending);
        let (key, now) = (self.conn.key(), self.now);
        if let Some((g, inner)) = self.model.group_inner(&group, now, self.cfg.max_groups) {
            if let Some(epoch) = epoch {
                g.new_generation(epoch, now);
            }
            match a {
                Some(a) => g.assign((member, &key), assigned(a), now, inner),
                None => {
                    g.member(member, &key, now, inner);
                }
            }
        }
    }

    /// Heartbeats and commits: this connection speaks for `member` of `group`, which is alive.
    fn member_active(&mut self, group: &str, member: &str) -> Option<&mut super::model::Group> {
        let (key, now) = (self.conn.key(), self.now);
        self.model.attribute(
            &key,
            group,
            Attribution::Coordinator,
            now,
            self.cfg.max_groups,
        );
        let g = self.model.group(group, now, self.cfg.max_groups)?;
        if let Some(m) = g.members.get_mut(member) {
            m.seen = now;
        }
        Some(g)
    }

    fn heartbeat(&mut self, group: &str, member: &str) {
        self.member_active(group, member);
    }

    fn leave_group(&mut self, group: &str, members: &[String]) {
        if let Some(g) = self.model.group(group, self.now, self.cfg.max_groups) {
            for m in members {
                g.remove_member(m);
            }
        }
    }

    fn consumer_heartbeat(&mut self, group: &str, member: &str, epoch: i32) {
        self.coordinator(group, member);
        let (key, now) = (self.conn.key(), self.now);
        if let Some((g, inner)) = self.model.group_inner(group, now, self.cfg.max_groups) {
            if epoch < 0 {
                g.remove_member(member);
            } else if !member.is_empty() {
                g.member(member, &key, now, inner);
            }
        }
    }

    /// An OffsetCommit request: waits for the broker's answer (the offsets beyond what a
    /// connection's pending commits may hold are refused and counted).
    fn offset_commit(&mut self, group: &str, member: &str, offsets: &[CommittedOffset]) {
        self.conn.saw_group(group);
        self.member_active(group, member);
        let held = self.conn.pending_offsets();
        let n = self
            .model
            .inner
            .admit_many(Inner::PendingOffsets, held, offsets.len());
        let commit = PendingCommit {
            correlation_id: self.conn.last_request,
            group: Arc::from(group),
            offsets: offsets[..n]
                .iter()
                .map(|o| (topic_name(&o.topic), o.partition, o.offset))
                .collect(),
        };
        self.conn.commit_sent(commit);
    }

    /// The body of an OffsetCommit response: the partitions the broker refused.
    fn commit_response(&mut self, errors: &[(TopicRef, i32, i16)]) {
        if let Some(commit) = self.conn.answered.take() {
            let refused: HashSet<(Arc<str>, i32)> =
                errors.iter().map(|(t, p, _)| (topic_name(t), *p)).collect();
            self.apply_commit(commit, &refused);
        }
    }

    /// A commit the broker accepted, but for the `refused` partitions: the group's committed
    /// offsets move (partitions new to a group without room are refused and counted), and its
    /// cadence learns one more commit.
    fn apply_commit(&mut self, commit: PendingCommit, refused: &HashSet<(Arc<str>, i32)>) {
        let now = self.now;
        self.model
            .inner
            .release(Inner::PendingOffsets, commit.offsets.len());
        // Named as the model names the topics (see [`Model::topic_key`]).
        let offsets: Vec<_> = commit
            .offsets
            .into_iter()
            .map(|(topic, partition, offset)| (self.model.topic_key(topic), partition, offset))
            .collect();
        let Some((g, inner)) = self
            .model
            .group_inner(&commit.group, now, self.cfg.max_groups)
        else {
            return;
        };
        let mut any = false;
        for (topic, partition, offset) in offsets {
            let key = (topic, partition);
            if refused.contains(&key) {
                continue;
            }
            any = true;
            g.committed_offset(key, offset, now, false, inner);
        }
        if any {
            g.note_commit(now);
            g.commit_seen = Some(now);
        }
    }
}
