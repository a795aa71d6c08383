//! The open file limit: each proxied connection holds two descriptors (the client's socket and
//! the broker's), so 20,000 connections need 40,000 — far above the usual default soft limit
//! of 1,024. At start the soft limit is raised to the hard limit (which needs no privilege),
//! and a limit that still cannot hold `max_connections` is warned about: past it, `accept()`
//! fails with "too many open files" (the accept loop backs off and goes on) and new upstream
//! connections fail.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Descriptors one proxied connection holds: its client socket and its broker socket.
pub const PER_CONNECTION: u64 = 2;

/// Descriptors kept for everything but proxied connections: standard streams, the listeners,
/// the admin API and its clients, the group lookup, telemetry export, the runtime.
pub const MARGIN: u64 = 256;

/// Descriptors `max_connections` connections need, with [`MARGIN`].
pub fn needed(max_connections: usize) -> u64 {
    (max_connections as u64)
        .saturating_mul(PER_CONNECTION)
        .saturating_add(MARGIN)
}

/// Raises the soft open file limit to the hard limit, logs what it did, and warns if the
/// limit is below [`needed`] for `max_connections`. Returns the soft limit now in force, or
/// `None` if it cannot be read.
pub fn raise_open_file_limit(max_connections: usize) -> Option<u64> {
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open file limit");
            return None;
        }
    };
    let mut limit = soft;
    if soft < hard {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => {
                limit = hard;
                tracing::info!(from = soft, to = hard, "raised the open file limit");
            }
            Err(e) => {
                tracing::warn!(error = %e, soft, hard, "cannot raise the open file limit")
            }
        }
    }
    let need = needed(max_connections);
    if limit < need {
        tracing::warn!(
            limit,
            needed = need,
            max_connections,
            fit = limit.saturating_sub(MARGIN) / PER_CONNECTION,
            "open file limit below what max_connections needs (2 per connection + {MARGIN}): \
             raise the hard limit (LimitNOFILE= under systemd, ulimit -Hn, the container's \
             nofile ulimit) or lower max_connections"
        );
    }
    Some(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_descriptors_per_connection_and_a_margin() {
        assert_eq!(needed(20_000), 40_256);
        assert_eq!(needed(0), MARGIN);
        assert_eq!(needed(usize::MAX), u64::MAX);
    }
}
