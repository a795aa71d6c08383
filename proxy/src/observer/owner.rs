//! The observer's one owner: a thread that takes the sinks' messages from a bounded queue,
//! applies them to the [`State`] in order, and once per [`TICK`] runs the detectors and
//! publishes what readers see. Nothing else touches the state, so the forwarding path never
//! waits on a lock a tick or an admin call holds: it only offers messages to the queue.

use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use sluice_protocol::TapEvent;

use super::state::State;
use super::{Observer, TICK};
use crate::lookup::view::GroupsView;
use crate::sink::ConnMeta;

/// How often the owner's thread applies what waits in its queue.
pub const POLL: Duration = Duration::from_millis(50);

/// What the sinks send the owner.
#[derive(Debug)]
pub enum Msg {
    /// A connection was opened.
    Open(ConnMeta, Instant),
    /// A batch of a connection's events, in order.
    Events(ConnMeta, Vec<(TapEvent, Instant)>),
    /// A connection ended.
    Close(ConnMeta, Instant),
    /// The group lookup's latest answer.
    Groups(Box<GroupsView>),
    /// Stop the owner's thread.
    Stop,
}

/// The state and the queue's receiving end, together until a thread takes them.
#[derive(Debug)]
pub struct Owner {
    pub(super) state: State,
    pub(super) inbox: Receiver<Msg>,
}

impl Owner {
    /// Applies one message; false for [`Msg::Stop`].
    fn apply(&mut self, msg: Msg) -> bool {
        match msg {
            Msg::Open(c, at) => self.state.open(&c, at),
            Msg::Events(c, events) => self.state.events(&c, &events),
            Msg::Close(c, at) => self.state.close(&c, at),
            Msg::Groups(view) => self.state.looked_up(&view),
            Msg::Stop => return false,
        }
        true
    }

    /// Applies everything waiting, then the closes that found the queue full (after the
    /// events queued before them). False once told to stop.
    pub(super) fn drain(&mut self, observer: &Observer) -> bool {
        loop {
            match self.inbox.try_recv() {
                Ok(msg) => {
                    if !self.apply(msg) {
                        return false;
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
        for (c, at) in observer.take_late_closes() {
            self.state.close(&c, at);
        }
        true
    }

    /// The thread's loop: every [`POLL`] apply what the queue holds, every [`TICK`] tick,
    /// and build the tables when a reader asked for them (a reader's request wakes it), until
    /// told to stop. The thread polls rather than sleeping on the queue, so a sink offering a
    /// batch never has to wake it: a send is a few stores, never a system call on the
    /// forwarding path.
    pub(super) fn run(mut self, observer: &Observer) {
        let mut next_tick = Instant::now() + TICK;
        let mut served = 0;
        loop {
            if !self.drain(observer) {
                return;
            }
            let now = Instant::now();
            if now >= next_tick {
                observer.publish(observer.timed_tick(&mut self.state, now));
                // Ticks missed while busy are skipped, not caught up.
                while next_tick <= now {
                    next_tick += TICK;
                }
            }
            observer.serve_tables(&mut self.state, &mut served);
            std::thread::park_timeout(POLL.min(next_tick.saturating_duration_since(now)));
        }
    }
}
