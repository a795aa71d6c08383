//! SASL identity: the mechanism from SaslHandshake, the principal's name from SaslAuthenticate
//! where the mechanism shows it in clear. Never a secret.
//!
//! The decoder is stateless, so it recognises the two clear-text first messages by shape:
//! - PLAIN (RFC 4616): `authzid NUL authcid NUL passwd`, exactly two NULs and non-empty
//!   `authcid` and `passwd`. The principal is the `authcid`, the name the password belongs to
//!   and the one Kafka's PLAIN server makes the principal (it refuses a different non-empty
//!   `authzid`). The password is never read past its length check, copied or stored.
//! - SCRAM client-first (RFC 5802): `gs2-header n=<user>,r=<nonce>[,ext]` with `gs2-header`
//!   one of `n,`, `y,`, `p=<cb>,` then an optional `a=<authzid>` and `,`. The user name has
//!   `=2C` and `=3D` unescaped to `,` and `=`; any other `=` escape makes it unrecognised.
//!
//! - OAUTHBEARER (RFC 7628) first message: the bearer token's unverified `sub` claim
//!   (`oauth.rs`); the token itself is never copied.
//!
//! Everything else yields no event: GSSAPI tokens, SCRAM client-final messages (they carry
//! the proof), bodies that merely look close, and names over [`MAX_PRINCIPAL`] bytes or with
//! a control character.
//!
//! The SaslAuthenticate response yields the broker's verdict ([`SaslInfo::Outcome`]): its
//! error code and message, and whether the exchange ended. Its `auth_bytes` (SCRAM's
//! server-final carries the server signature) are only looked at for emptiness and a `v=`
//! prefix, never copied.

use bytes::Bytes;
use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
};

use super::schema::{always, fields, since, Schema, Ty};
use super::{decode_body, owned};
use crate::error::TapError;
use crate::event::{SaslInfo, TapEvent, MAX_SASL_ERROR_MESSAGE};

/// Longest principal name kept (longer names yield no event).
pub(super) const MAX_PRINCIPAL: usize = 256;

/// Whether `name` may be a principal: non-empty, at most [`MAX_PRINCIPAL`] bytes, no control
/// character.
pub(super) fn acceptable(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_PRINCIPAL && !name.chars().any(char::is_control)
}

static SASL_HANDSHAKE_REQUEST: Schema = Schema {
    name: "SaslHandshakeRequest",
    flexible: None,
    body: fields(&[always(Ty::Str)]), // mechanism
};

/// SaslHandshake request: the mechanism the client asks for.
pub(super) fn sasl_handshake_request(
    version: i16,
    body: Bytes,
    out: &mut Vec<TapEvent>,
) -> Result<(), TapError> {
    let req: SaslHandshakeRequest = decode_body(&SASL_HANDSHAKE_REQUEST, version, body)?;
    out.push(TapEvent::Sasl(SaslInfo::Mechanism(owned(&req.mechanism))));
    Ok(())
}

static SASL_AUTHENTICATE_REQUEST: Schema = Schema {
    name: "SaslAuthenticateRequest",
    flexible: Some(2),
    body: fields(&[always(Ty::Bytes)]), // auth_bytes
};

/// SaslAuthenticate request: the principal of a PLAIN, SCRAM or OAUTHBEARER first message,
/// else nothing.
pub(super) fn sasl_authenticate_request(
    version: i16,
    body: Bytes,
    out: &mut Vec<TapEvent>,
) -> Result<(), TapError> {
    let req: SaslAuthenticateRequest = decode_body(&SASL_AUTHENTICATE_REQUEST, version, body)?;
    if let Some(name) = principal(&req.auth_bytes) {
        out.push(TapEvent::Sasl(SaslInfo::Principal(name)));
    }
    Ok(())
}

static SASL_AUTHENTICATE_RESPONSE: Schema = Schema {
    name: "SaslAuthenticateResponse",
    flexible: Some(2),
    body: fields(&[
        always(Ty::Int16),   // error_code
        always(Ty::Str),     // error_message (nullable)
        always(Ty::Bytes),   // auth_bytes
        since(1, Ty::Int64), // session_lifetime_ms
    ]),
};

/// SaslAuthenticate response: the broker's verdict on one step.
pub(super) fn sasl_authenticate_response(
    version: i16,
    body: Bytes,
    out: &mut Vec<TapEvent>,
) -> Result<(), TapError> {
    let resp: SaslAuthenticateResponse = decode_body(&SASL_AUTHENTICATE_RESPONSE, version, body)?;
    let auth = &resp.auth_bytes;
    out.push(TapEvent::Sasl(SaslInfo::Outcome {
        error_code: resp.error_code,
        error_message: resp.error_message.as_deref().map(cut),
        done: resp.error_code != 0 || auth.is_empty() || auth.starts_with(b"v="),
    }));
    Ok(())
}

/// At most [`MAX_SASL_ERROR_MESSAGE`] bytes of `s`, cut at a char boundary.
fn cut(s: &str) -> String {
    let mut end = s.len().min(MAX_SASL_ERROR_MESSAGE);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// The principal's name in a PLAIN message, a SCRAM client-first message or an OAUTHBEARER
/// first message.
pub(super) fn principal(auth: &[u8]) -> Option<String> {
    plain_authcid(auth)
        .or_else(|| scram_user(auth))
        .or_else(|| super::oauth::oauth_subject(auth))
}

/// PLAIN: the `authcid` between the two NULs.
fn plain_authcid(auth: &[u8]) -> Option<String> {
    let mut parts = auth.splitn(3, |b| *b == 0);
    let authzid = parts.next()?;
    let authcid = parts.next()?;
    let passwd = parts.next()?;
    // A third NUL would sit in the password: not PLAIN. Only emptiness and the NUL are looked
    // at in the password, never its contents.
    if passwd.is_empty() || passwd.contains(&0) || authcid.is_empty() {
        return None;
    }
    std::str::from_utf8(authzid).ok()?;
    let name = std::str::from_utf8(authcid).ok()?;
    acceptable(name).then(|| name.to_owned())
}

/// SCRAM client-first: the unescaped user name.
fn scram_user(auth: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(auth).ok()?;
    let mut parts = text.split(',');
    let cbind = parts.next()?;
    if !(cbind == "n" || cbind == "y" || cbind.starts_with("p=")) {
        return None;
    }
    let authzid = parts.next()?;
    if !(authzid.is_empty() || authzid.starts_with("a=")) {
        return None;
    }
    let user = parts.next()?.strip_prefix("n=")?;
    parts.next()?.strip_prefix("r=")?;
    let name = unescape_saslname(user)?;
    acceptable(&name).then_some(name)
}

/// RFC 5802 `saslname`: `=2C` is `,`, `=3D` is `=`, no other `=`.
fn unescape_saslname(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let escape = rest.get(i + 1..i + 3)?;
        out.push(match escape {
            "2C" => ',',
            "3D" => '=',
            _ => return None,
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_takes_the_authcid() {
        assert_eq!(principal(b"\0alice\0s3cret").as_deref(), Some("alice"));
        assert_eq!(principal(b"admin\0alice\0s3cret").as_deref(), Some("alice"));
        assert_eq!(principal(b"\0alice\0"), None);
        assert_eq!(principal(b"\0\0s3cret"), None);
        assert_eq!(principal(b"\0alice\0s3\0cret"), None);
        assert_eq!(principal(b"alice\0s3cret"), None);
    }

    #[test]
    fn scram_takes_the_unescaped_user() {
        assert_eq!(
            principal(b"n,,n=alice,r=fyko+d2lbbFgONRv9qkxdawL").as_deref(),
            Some("alice")
        );
        assert_eq!(
            principal(b"y,a=bob,n=a=2Cb=3Dc,r=abc,tokenauth=true").as_deref(),
            Some("a,b=c")
        );
        assert_eq!(
            principal(b"p=tls-unique,,n=carol,r=x").as_deref(),
            Some("carol")
        );
        assert_eq!(principal(b"n,,n=a=2,r=x"), None);
        assert_eq!(principal(b"n,,n=a=41,r=x"), None);
        assert_eq!(principal(b"n,,n=alice"), None);
        assert_eq!(principal(b"c=biws,r=abc,p=dHp6cHJvb2Y="), None);
        assert_eq!(principal(b"n,,\x01auth=Bearer eyJ\x01\x01"), None);
    }

    #[test]
    fn names_are_bounded() {
        let long = "a".repeat(MAX_PRINCIPAL);
        assert_eq!(
            principal(format!("\0{long}\0pw").as_bytes()),
            Some(long.clone())
        );
        assert_eq!(principal(format!("\0{long}b\0pw").as_bytes()), None);
        assert_eq!(principal(format!("n,,n={long}b,r=x").as_bytes()), None);
    }

    #[test]
    fn error_messages_are_cut_at_a_char_boundary() {
        let m = "é".repeat(MAX_SASL_ERROR_MESSAGE);
        let c = cut(&m);
        assert!(
            c.len() <= MAX_SASL_ERROR_MESSAGE && m.starts_with(&c),
            "{}",
            c.len()
        );
        assert_eq!(cut("short"), "short");
    }
}
