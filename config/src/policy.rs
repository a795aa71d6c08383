//! Throttle policies: whom a policy matches and what it does to them. A policy comes from the
//! policy file (`throttle.policy_file`, reloaded on SIGHUP or change) or is added at run time
//! through the admin API with an expiry; the proxy's `throttle` module enforces them.

use std::net::IpAddr;
use std::time::SystemTime;

use serde::Serialize;

/// One policy, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicySpec {
    /// Unique among all policies; names the policy in logs, metrics and the admin API.
    pub name: String,
    /// Whom it applies to: a connection matches when every given criterion does.
    #[serde(rename = "match")]
    pub matcher: Match,
    /// What it does to a matching connection.
    pub action: Action,
    /// When it stops applying (`None`: never).
    #[serde(skip_serializing_if = "Option::is_none", with = "rfc3339_opt")]
    pub expires: Option<SystemTime>,
}

impl PolicySpec {
    /// True once `now` is at or past its expiry.
    pub fn expired(&self, now: SystemTime) -> bool {
        self.expires.is_some_and(|at| now >= at)
    }
}

/// Whom a policy matches. Every criterion given must hold; at least one is given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Match {
    /// Consumer group the connection's client belongs to (exact, or a glob with `*` and `?`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<Glob>,
    /// The connection's `client.id` (exact or glob).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<Glob>,
    /// The client's address: one IP or a CIDR block.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<Cidr>,
    /// SASL principal, when known (exact or glob).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<Glob>,
    /// Whatever an active finding of this kind currently names (e.g. `fetch_without_commit`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finding: Option<String>,
}

impl Match {
    /// True when no criterion is given (a policy must give one).
    pub fn is_empty(&self) -> bool {
        self == &Match::default()
    }
}

/// What a policy does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Action {
    /// Most bytes per second sent to a matching client in responses (its fetched data), per
    /// policy and client key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fetch_bytes_per_sec: Option<u64>,
    /// Most requests per second forwarded from a matching client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests_per_sec: Option<u32>,
    /// Enforce, or only log and count what would have been held back.
    pub mode: Mode,
}

/// Whether a policy acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Hold matching traffic back to the caps.
    Enforce,
    /// Change nothing; log and count what would have been held back.
    DryRun,
}

/// A name pattern: exact text, or `*` (any run of characters) and `?` (one character).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Glob(pub String);

impl Glob {
    /// Whether `text` matches the pattern.
    pub fn matches(&self, text: &str) -> bool {
        let (p, t): (Vec<char>, Vec<char>) = (self.0.chars().collect(), text.chars().collect());
        // Iterative wildcard match with one backtrack point: linear in practice.
        let (mut pi, mut ti) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while ti < t.len() {
            if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
                pi += 1;
                ti += 1;
            } else if pi < p.len() && p[pi] == '*' {
                star = Some((pi, ti));
                pi += 1;
            } else if let Some((sp, st)) = star {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            } else {
                return false;
            }
        }
        p[pi..].iter().all(|&c| c == '*')
    }
}

/// An IP network: an address and a prefix length (a single address has the full length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// Network address (host bits zero).
    pub addr: IpAddr,
    /// Prefix length: 0..=32 for IPv4, 0..=128 for IPv6.
    pub prefix: u8,
}

impl Cidr {
    /// Parses `10.0.0.0/8`, `::1/128` or a bare address. Host bits set under the prefix are an
    /// error (`10.0.0.1/8` is probably a typo).
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or CIDR block"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| format!("`{s}`: prefix length must be 0..={max}"))?,
        };
        let cidr = Cidr { addr, prefix };
        if cidr.network() != addr {
            return Err(format!(
                "`{s}` has host bits set; the block is {}/{prefix}",
                cidr.network()
            ));
        }
        Ok(cidr)
    }

    fn mask(bits: u32, prefix: u8) -> u128 {
        if prefix == 0 {
            0
        } else {
            (!0u128 << (bits - u32::from(prefix))) & (!0u128 >> (128 - bits))
        }
    }

    fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let m = Self::mask(32, self.prefix) as u32;
                IpAddr::V4((u32::from(a) & m).into())
            }
            IpAddr::V6(a) => IpAddr::V6((u128::from(a) & Self::mask(128, self.prefix)).into()),
        }
    }

    /// Whether `ip` is in the block (an IPv4-mapped IPv6 address counts as its IPv4 one).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let m = Self::mask(32, self.prefix) as u32;
                u32::from(a) & m == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                u128::from(a) & Self::mask(128, self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

mod rfc3339_opt {
    use std::time::SystemTime;

    pub fn serialize<S: serde::Serializer>(
        v: &Option<SystemTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(t) => s.collect_str(&humantime::format_rfc3339_seconds(*t)),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let g = |p: &str| Glob(p.to_owned());
        assert!(g("orders").matches("orders"));
        assert!(!g("orders").matches("orders-1"));
        assert!(g("orders-*").matches("orders-1"));
        assert!(g("orders-*").matches("orders-"));
        assert!(g("*-loop").matches("a-b-loop"));
        assert!(g("a?c").matches("abc"));
        assert!(!g("a?c").matches("ac"));
        assert!(g("*").matches(""));
        assert!(g("a*b*c").matches("axxbyyc"));
        assert!(!g("a*b*c").matches("axxbyy"));
    }

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.1/8").unwrap_err().contains("host bits"));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("nope").is_err());
        let one = Cidr::parse("127.0.0.1").unwrap();
        assert_eq!(one.prefix, 32);
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("1.2.3.4".parse().unwrap()));
        assert!(Cidr::parse("fd00::/8")
            .unwrap()
            .contains("fd12::1".parse().unwrap()));
    }
}
